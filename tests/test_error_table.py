"""The one LDAP -> SCIM table (bridge/errors.py, documented in docs/errors.md): every row, and
the real conditions that produce each result code, provoked on a real slapd and on 389 DS
(with both clients)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import ldap3
import pytest
from starlette.testclient import TestClient

from bridge.directory.base import Change, Directory, SortKey
from bridge.errors import _LDAP_TO_SCIM, _UNAVAILABLE, DirectoryError
from tests.conftest import Backend, _empty, ds389_directory, make_client, slapd_directory
from tests.helpers import SCIM, USER_SCHEMA

EXPECTED = {
    "entryAlreadyExists": (409, "uniqueness"),
    "noSuchObject": (404, None),
    "constraintViolation": (400, "invalidValue"),
    "objectClassViolation": (400, "invalidValue"),
    "namingViolation": (400, "invalidValue"),
    "invalidAttributeSyntax": (400, "invalidValue"),
    "undefinedAttributeType": (400, "invalidValue"),
    "attributeOrValueExists": (400, "invalidValue"),
    "noSuchAttribute": (400, "invalidValue"),
    "invalidDNSyntax": (400, "invalidValue"),
    "notAllowedOnRDN": (400, "mutability"),
    "notAllowedOnNonLeaf": (400, "invalidValue"),
    "unwillingToPerform": (400, "invalidValue"),
    "insufficientAccessRights": (403, None),
    "strongerAuthRequired": (403, None),
    "assertionFailed": (412, None),
    "sizeLimitExceeded": (400, "tooMany"),
    "adminLimitExceeded": (400, "tooMany"),
    "resultsTooLarge": (400, "tooMany"),
    "inappropriateMatching": (400, "invalidFilter"),
    "filterError": (400, "invalidFilter"),
    "affectsMultipleDSAs": (400, "invalidValue"),
    "virtualListViewError": (400, "invalidValue"),
}


@pytest.mark.parametrize("code", sorted(EXPECTED))
def test_every_row_of_the_table(code: str) -> None:
    err = DirectoryError(code, "diagnostic text", dn="uid=x", operation="modify").to_scim()
    assert (err.status, err.scim_type) == EXPECTED[code]
    assert code in err.detail and "diagnostic text" in err.detail


def test_the_table_has_no_untested_row() -> None:
    assert set(_LDAP_TO_SCIM) == set(EXPECTED)


@pytest.mark.parametrize("code", sorted(_UNAVAILABLE))
def test_transient_results_are_503_with_retry_after(code: str) -> None:
    err = DirectoryError(code, "x").to_scim()
    assert err.status == 503 and getattr(err, "retry_after", 0) > 0


@pytest.mark.parametrize("code", ["other", "operationsError", "protocolError", "loopDetect", "x"])
def test_unknown_results_are_502_never_500(code: str) -> None:
    err = DirectoryError(code, "x", operation="add").to_scim()
    assert err.status == 502 and code in err.detail


# ----------------------------------------------------------------------------- real slapd
@pytest.fixture
def sdir(slapd_server: Any) -> Iterator[Directory]:
    directory = slapd_directory(slapd_server)
    people = slapd_server.people_dn
    for e in directory.search(people, "(objectClass=*)", ["1.1"], scope="one").entries:
        directory.delete(e.dn)
    directory.add(
        f"uid=a,{people}",
        {"objectClass": [b"inetOrgPerson"], "uid": [b"a"], "cn": [b"a"], "sn": [b"a"]},
    )
    yield directory
    for e in directory.search(people, "(objectClass=*)", ["1.1"], scope="one").entries:
        directory.delete(e.dn)
    directory.close()


P = "ou=people,dc=example,dc=org"
USER = f"uid=a,{P}"
PERSON = {"objectClass": [b"inetOrgPerson"], "uid": [b"a"], "cn": [b"a"], "sn": [b"a"]}
SCENARIOS: dict[str, tuple[str, Callable[[Directory], object]]] = {
    "duplicate add": ("entryAlreadyExists", lambda d: d.add(USER, PERSON)),
    "rename onto a taken name": (
        "entryAlreadyExists",
        lambda d: (d.add(f"uid=c,{P}", {**PERSON, "uid": [b"c"]}), d.rename(f"uid=c,{P}", "uid=a")),
    ),
    "missing MUST attribute": (
        "objectClassViolation",
        lambda d: d.add(f"uid=b,{P}", {"objectClass": [b"inetOrgPerson"], "uid": [b"b"], "cn": [b"b"]}),
    ),
    "empty groupOfNames": (
        "objectClassViolation",
        lambda d: d.add("cn=g,ou=groups,dc=example,dc=org", {"objectClass": [b"groupOfNames"], "cn": [b"g"]}),
    ),
    "two values in a SINGLE-VALUE attribute": (
        "constraintViolation",
        lambda d: d.modify(USER, [Change("replace", "displayName", (b"x", b"y"))]),
    ),
    "writing memberOf": (
        "constraintViolation",
        lambda d: d.modify(USER, [Change("replace", "memberOf", (b"cn=x",))]),
    ),
    "replacing the RDN value by modify": (
        "namingViolation",
        lambda d: d.modify(USER, [Change("replace", "uid", (b"zz",))]),
    ),
    "non-ASCII mail (IA5String)": (
        "invalidAttributeSyntax",
        lambda d: d.modify(USER, [Change("replace", "mail", ("é@x".encode(),))]),
    ),
    "unknown attribute": (
        "undefinedAttributeType",
        lambda d: d.modify(USER, [Change("replace", "fooBar", (b"x",))]),
    ),
    "adding a present value": (
        "attributeOrValueExists",
        lambda d: d.modify(USER, [Change("add", "cn", (b"a",))]),
    ),
    "deleting an absent value": (
        "noSuchAttribute",
        lambda d: d.modify(USER, [Change("delete", "title", (b"x",))]),
    ),
    "modify of a missing entry": (
        "noSuchObject",
        lambda d: d.modify(f"uid=zz,{P}", [Change("replace", "title", (b"x",))]),
    ),
    "deleting a non-leaf": ("notAllowedOnNonLeaf", lambda d: d.delete(P)),
    "failed assertion (If-Match)": (
        "assertionFailed",
        lambda d: d.modify(USER, [Change("replace", "title", (b"x",))], assertion="(title=no)"),
    ),
    "sort without an ordering rule": (
        "inappropriateMatching",
        lambda d: d.search(P, "(uid=*)", ["uid"], sort=[SortKey("uid")], size_limit=5),
    ),
    "write outside every naming context": (
        "unwillingToPerform",
        lambda d: d.add("uid=x,dc=elsewhere", PERSON),
    ),
    "malformed DN (refused by ldap3)": ("invalidDNSyntax", lambda d: d.rename(USER, "uid")),
    "malformed filter (refused by ldap3)": ("filterError", lambda d: d.search(P, "(uid=*", ["1.1"])),
}  # fmt: skip


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_real_slapd_results_map_through_the_table(sdir: Directory, scenario: str) -> None:
    code, provoke = SCENARIOS[scenario]
    with pytest.raises(DirectoryError) as caught:
        provoke(sdir)
    assert caught.value.code == code, caught.value
    err = caught.value.to_scim()
    expected = EXPECTED[code]
    assert (err.status, err.scim_type) == expected
    assert err.status < 500


# ------------------------------------------------------------------------------ real 389 DS
#: the same conditions on 389 DS where its result differs from slapd's (both clients, except
#: where a client is named); None: 389 DS accepts the operation
DS389_RESULTS: dict[str, str | None] = {
    "empty groupOfNames": None,  # member is a MAY of groupOfNames in 389 DS's schema
    "sort without an ordering rule": None,  # 389 DS sorts by the equality rule
    "two values in a SINGLE-VALUE attribute": "objectClassViolation",
    "writing memberOf": "objectClassViolation",  # a user attribute there, of nsMemberOf
    "unknown attribute": "objectClassViolation",
    "replacing the RDN value by modify": "notAllowedOnRDN",
    "write outside every naming context": "noSuchObject",
}
DS389_LIBLDAP_RESULTS = {"malformed DN (refused by ldap3)": "unwillingToPerform"}
#: conditions only 389 DS has
DS389_SCENARIOS: dict[str, tuple[str, Callable[[Directory], object]]] = {
    "non-ASCII uid (7-bit check plugin)": (
        "constraintViolation",
        lambda d: d.modify(USER, [Change("add", "uid", ("zoë".encode(),))]),
    ),
}
#: 389 DS offers no assertion control (RFC 4528): the bridge sends none there (its
#: capabilities say so), so If-Match compares the version it read instead
NO_ASSERTION = "failed assertion (If-Match)"


@pytest.fixture(params=["ldap3", "libldap"])
def dsdir(request: pytest.FixtureRequest, ds389_server: Any) -> Iterator[Directory]:
    directory = ds389_directory(ds389_server, request.param)
    mapping = request.getfixturevalue("ds389_mapping")
    _empty(directory, mapping)
    directory.add(USER, PERSON)
    yield directory
    _empty(directory, mapping)
    directory.close()


@pytest.mark.parametrize("scenario", sorted({*SCENARIOS, *DS389_SCENARIOS}))
def test_real_389ds_results_map_through_the_table(
    dsdir: Directory, request: pytest.FixtureRequest, scenario: str
) -> None:
    """389 DS's result codes for the same conditions: each is in the table and a 4xx."""
    code, provoke = {**SCENARIOS, **DS389_SCENARIOS}[scenario]
    if scenario == NO_ASSERTION:
        assert not dsdir.capabilities.assertion
        return
    expected_code = DS389_RESULTS.get(scenario, code)
    if "libldap" in request.node.callspec.id:
        expected_code = DS389_LIBLDAP_RESULTS.get(scenario, expected_code)
    if expected_code is None:
        provoke(dsdir)  # accepted
        return
    with pytest.raises(DirectoryError) as caught:
        provoke(dsdir)
    assert caught.value.code == expected_code, caught.value
    err = caught.value.to_scim()
    assert (err.status, err.scim_type) == EXPECTED[expected_code]
    assert err.status < 500


def test_wrong_bind_password_is_503(slapd_server: Any) -> None:
    broken = slapd_directory(replace(slapd_server, bind_password="wrong"))
    with pytest.raises(DirectoryError) as caught:
        broken.search(slapd_server.people_dn, "(uid=*)", ["1.1"])
    assert caught.value.code == "invalidCredentials"
    assert caught.value.to_scim().status == 503


# ------------------------------------------------------------ insufficientAccessRights (403)
READER = "cn=reader,dc=example,dc=org"


@pytest.fixture(scope="module")
def read_only_slapd() -> Iterator[Any]:
    """A slapd of its own whose ACL gives ``cn=reader`` read access (through ldapi/EXTERNAL,
    as an administrator would), so the bridge can bind as a read-only account."""
    try:
        from devtools.slapd import Slapd, require_slapd

        require_slapd()
    except (ImportError, RuntimeError) as exc:
        from tests.conftest import unavailable

        unavailable(f"slapd is not available: {exc}")
    server = Slapd()
    info = server.start()
    admin = ldap3.Connection(info.url, info.admin_dn, info.admin_password, auto_bind=True)
    admin.add(
        READER,
        ["applicationProcess", "simpleSecurityObject"],
        {"cn": "reader", "userPassword": "reader-pw"},
    )
    assert admin.result["result"] == 0, admin.result
    admin.unbind()
    config = ldap3.Connection(
        ldap3.Server(info.ldapi_url),
        authentication=ldap3.SASL,
        sasl_mechanism=ldap3.EXTERNAL,
        sasl_credentials="",
        auto_bind=True,
    )
    mdb = "olcDatabase={1}mdb,cn=config"
    config.search(mdb, "(objectClass=*)", ldap3.BASE, attributes=["olcAccess"])
    rules = [str(v) for v in config.entries[0].olcAccess.values]
    last = rules[-1].split("}", 1)[1]  # "to * by dn.exact=... write by * none"
    reader_rule = last.replace("by * none", f'by dn.exact="{READER}" read by * none')
    ok = config.modify(mdb, {"olcAccess": [(ldap3.MODIFY_REPLACE, [*rules[:-1], reader_rule])]})
    assert ok, config.result
    config.unbind()
    yield info
    server.cleanup()


def test_read_only_account_gets_403_with_a_detail(
    read_only_slapd: Any, openldap_mapping: Any
) -> None:
    writer = slapd_directory(read_only_slapd)
    reader = slapd_directory(replace(read_only_slapd, bind_dn=READER, bind_password="reader-pw"))
    try:
        admin_client = make_client(Backend("slapd", writer, openldap_mapping, read_only_slapd))
        r = admin_client.post(f"{SCIM}/Users", json={"schemas": [USER_SCHEMA], "userName": "ro"})
        assert r.status_code == 201, r.text
        rid = r.json()["id"]
        client: TestClient = make_client(
            Backend("slapd", reader, openldap_mapping, read_only_slapd)
        )
        assert client.get(f"{SCIM}/Users/{rid}").status_code == 200  # reading is allowed
        r = client.post(f"{SCIM}/Users", json={"schemas": [USER_SCHEMA], "userName": "ro2"})
        assert r.status_code == 403, r.text
        assert "insufficientAccessRights" in r.json()["detail"]
        r = client.patch(
            f"{SCIM}/Users/{rid}",
            json={
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "title", "value": "x"}],
            },
        )
        assert r.status_code == 403, r.text
        assert client.delete(f"{SCIM}/Users/{rid}").status_code == 403
        assert admin_client.get(f"{SCIM}/Users/{rid}").json()["userName"] == "ro"
    finally:
        writer.close()
        reader.close()
