"""Smoke tests of the throwaway-slapd fixture itself (devtools/slapd.py).

They pin down the server behaviour the bridge relies on (memberOf/refint, ppolicy lock,
size limits, sort/VLV) so that a config change in slapd.py that breaks it fails here first.
"""

from __future__ import annotations

import os
import socket
import ssl
import time
from collections.abc import Callable, Iterator

import ldap3
import pytest
from ldap3 import BASE, MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE
from pyasn1.codec.ber import decoder, encoder
from pyasn1.type import namedtype, tag, univ

from devtools.slapd import Slapd, require_slapd
from devtools.slapd_ldif import (
    EMPTY_GROUP_MEMBER_DN,
    LOCKED_FOREVER,
    SEED_PASSWORD,
    SIZE_LIMIT,
    generate_seed_ldif,
)

pytestmark = pytest.mark.slapd

SORT_OID = "1.2.840.113556.1.4.473"
SORT_RESPONSE_OID = "1.2.840.113556.1.4.474"
VLV_OID = "2.16.840.1.113730.3.4.9"
VLV_RESPONSE_OID = "2.16.840.1.113730.3.4.10"
PAGED_OID = "1.2.840.113556.1.4.319"


def _need_slapd() -> None:
    try:
        require_slapd()
    except RuntimeError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but slapd is unusable: {exc}", pytrace=False)
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def seeded() -> Iterator[Slapd]:
    """One instance with 1000 users, 10 groups x 20 members, biggroup of 600."""
    _need_slapd()
    with Slapd(seed_ldif=generate_seed_ldif(1000, 10, 20, 600)) as s:
        yield s


@pytest.fixture
def slapd() -> Iterator[Slapd]:
    _need_slapd()
    with Slapd() as s:
        yield s


def _wait_for(pred: Callable[[], bool], timeout: float = 3.0) -> bool:
    """refint/memberof rewrite groups asynchronously: poll."""
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)


def _attr(conn: ldap3.Connection, dn: str, attr: str) -> list[str]:
    if not conn.search(dn, "(objectClass=*)", BASE, attributes=[attr]):
        return []
    values = conn.response[0]["attributes"].get(attr, [])
    return [str(v) for v in values] if isinstance(values, list) else [str(values)]


def _norm(values: list[str]) -> set[str]:
    return {v.lower() for v in values}


def _add_user(conn: ldap3.Connection, people: str, uid: str, **extra: object) -> str:
    dn = f"uid={uid},{people}"
    attrs: dict[str, object] = {"uid": uid, "cn": uid, "sn": uid, "userPassword": f"{uid}-pw"}
    attrs.update(extra)
    assert conn.add(dn, ["inetOrgPerson"], attrs), conn.result
    return dn


# --------------------------------------------------------------- SSS / VLV controls (pyasn1)


def _ctx(n: int, constructed: bool = False) -> tag.Tag:
    fmt = tag.tagFormatConstructed if constructed else tag.tagFormatSimple
    return tag.Tag(tag.tagClassContext, fmt, n)


class _SortKey(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("attributeType", univ.OctetString()),
        namedtype.OptionalNamedType(
            "orderingRule", univ.OctetString().subtype(implicitTag=_ctx(0))
        ),
        namedtype.DefaultedNamedType(
            "reverseOrder", univ.Boolean(False).subtype(implicitTag=_ctx(1))
        ),
    )


class _SortKeyList(univ.SequenceOf):
    componentType = _SortKey()


class _SortResult(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("sortResult", univ.Enumerated()),
        namedtype.OptionalNamedType(
            "attributeType", univ.OctetString().subtype(implicitTag=_ctx(0))
        ),
    )


class _ByOffset(univ.Sequence):
    tagSet = univ.Sequence.tagSet.tagImplicitly(_ctx(0, constructed=True))
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("offset", univ.Integer()),
        namedtype.NamedType("contentCount", univ.Integer()),
    )


class _Target(univ.Choice):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("byOffset", _ByOffset()),
        namedtype.NamedType("greaterThanOrEqual", univ.OctetString().subtype(implicitTag=_ctx(1))),
    )


class _VlvRequest(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("beforeCount", univ.Integer()),
        namedtype.NamedType("afterCount", univ.Integer()),
        namedtype.NamedType("target", _Target()),
        namedtype.OptionalNamedType("contextID", univ.OctetString()),
    )


class _VlvResponse(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("targetPosition", univ.Integer()),
        namedtype.NamedType("contentCount", univ.Integer()),
        namedtype.NamedType("virtualListViewResult", univ.Enumerated()),
        namedtype.OptionalNamedType("contextID", univ.OctetString()),
    )


def sort_control(*keys: tuple[str, str], reverse: bool = False) -> tuple[str, bool, bytes]:
    """keys: (attribute, orderingRule) pairs."""
    lst = _SortKeyList()
    for i, (attr, rule) in enumerate(keys):
        k = _SortKey()
        k["attributeType"] = attr
        k["orderingRule"] = rule
        if reverse:
            k["reverseOrder"] = True
        lst[i] = k
    return (SORT_OID, True, encoder.encode(lst))


def vlv_control(before: int, after: int, offset: int, count: int = 0) -> tuple[str, bool, bytes]:
    req = _VlvRequest()
    req["beforeCount"] = before
    req["afterCount"] = after
    by = _ByOffset()
    by["offset"] = offset
    by["contentCount"] = count
    req["target"]["byOffset"] = by
    return (VLV_OID, True, encoder.encode(req))


def _response_control(conn: ldap3.Connection, oid: str, spec: univ.Sequence) -> univ.Sequence:
    raw = conn.result["controls"][oid]["value"]
    value, _rest = decoder.decode(raw, asn1Spec=spec)
    return value


def _uids(conn: ldap3.Connection) -> list[str]:
    return [str(e["attributes"]["uid"][0]) for e in conn.response if e["type"] == "searchResEntry"]


# --------------------------------------------------------------------------- tests


def test_require_slapd_and_generator_speed() -> None:
    _need_slapd()
    t0 = time.perf_counter()
    ldif = generate_seed_ldif(100_000, 1000, 100, 5000)
    elapsed = time.perf_counter() - t0
    assert ldif.count("objectClass: inetOrgPerson") == 100_000
    assert ldif.count("objectClass: groupOfNames") == 1001
    assert elapsed < 5, f"generate_seed_ldif(100k) took {elapsed:.2f} s"


def test_start_answers_and_records_its_time(slapd: Slapd) -> None:
    info = slapd.info
    assert info.url == f"ldap://127.0.0.1:{info.port}"
    assert info.ldaps_url == f"ldaps://127.0.0.1:{info.ldaps_port}"
    assert info.base_dn == "dc=example,dc=org"
    assert info.people_dn == "ou=people,dc=example,dc=org"
    assert info.groups_dn == "ou=groups,dc=example,dc=org"
    assert info.bind_dn == "cn=scim,dc=example,dc=org"
    assert info.directory.startswith("/tmp/") and os.path.isdir(info.directory)
    # Start time is measured, not asserted tightly: CI machines are shared and noisy, and speed
    # claims belong to bench/ (timings in devtools/slapd.py's docstring).
    assert slapd.last_start_seconds is not None and 0 < slapd.last_start_seconds < 20

    conn = slapd.connection()
    assert conn.extend.standard.who_am_i() == f"dn:{info.bind_dn}"
    # anonymous: root DSE yes, data no
    anon = ldap3.Connection(info.url, auto_bind=True)
    assert anon.search("", "(objectClass=*)", BASE, attributes=["namingContexts"])
    assert anon.entries[0].namingContexts.value == info.base_dn
    anon.search(info.base_dn, "(objectClass=*)")
    assert anon.entries == []
    # admin (rootdn) works too
    admin = slapd.connection(info.admin_dn, info.admin_password)
    assert admin.search(info.base_dn, "(ou=people)")

    # a second instance gets its own ports and directory
    with Slapd() as other:
        assert {other.info.port, other.info.ldaps_port}.isdisjoint({info.port, info.ldaps_port})
        assert other.info.directory != info.directory
        c2 = other.connection()
        _add_user(c2, other.info.people_dn, "only-in-other")
    assert not conn.search(f"uid=only-in-other,{info.people_dn}", "(objectClass=*)", BASE)


def test_tls_ldaps_starttls_and_ldapi(slapd: Slapd) -> None:
    info = slapd.info
    tls = ldap3.Tls(ca_certs_file=info.ca_file, validate=ssl.CERT_REQUIRED)
    # LDAPS to 127.0.0.1: validated through the IP SAN (Python 3.11 + ldap3 2.9.1)
    server = ldap3.Server(info.ldaps_url, tls=tls)
    conn = ldap3.Connection(server, info.bind_dn, info.bind_password, auto_bind=True)
    assert conn.extend.standard.who_am_i() == f"dn:{info.bind_dn}"
    # StartTLS on the plain port
    conn = ldap3.Connection(ldap3.Server(info.url, tls=tls), info.bind_dn, info.bind_password)
    conn.open()
    assert conn.start_tls()
    assert conn.bind()
    # "localhost" matches DNS:localhost
    server = ldap3.Server("localhost", port=info.ldaps_port, use_ssl=True, tls=tls)
    assert ldap3.Connection(server, auto_bind=True).bound
    # without our CA the certificate is rejected
    bad = ldap3.Server(info.ldaps_url, tls=ldap3.Tls(validate=ssl.CERT_REQUIRED))
    with pytest.raises(ldap3.core.exceptions.LDAPSocketOpenError):
        ldap3.Connection(bad, auto_bind=True)
    # ldapi + SASL EXTERNAL (note: ldap3 needs sasl_credentials="", None hangs in
    # saslBindInProgress) -> manage on cn=config
    conn = ldap3.Connection(
        ldap3.Server(info.ldapi_url),
        authentication=ldap3.SASL,
        sasl_mechanism=ldap3.EXTERNAL,
        sasl_credentials="",
        auto_bind=True,
    )
    assert conn.search(
        "olcDatabase={1}mdb,cn=config",
        "(objectClass=*)",
        BASE,
        attributes=["olcDbMaxSize", "olcSuffix"],
    )
    assert conn.entries[0].olcDbMaxSize.value == 4294967296


def test_memberof_and_refint(slapd: Slapd) -> None:
    info = slapd.info
    conn = slapd.connection()
    alice = _add_user(conn, info.people_dn, "alice")
    bob = _add_user(conn, info.people_dn, "bob")
    carol = _add_user(conn, info.people_dn, "carol", manager=alice)
    group = f"cn=devs,{info.groups_dn}"
    assert conn.add(group, ["groupOfNames"], {"cn": "devs", "member": [alice, bob]}), conn.result

    # memberOf is operational: by name or "+", never for "*"
    assert _wait_for(lambda: _norm(_attr(conn, alice, "memberOf")) == {group})
    conn.search(alice, "(objectClass=*)", BASE, attributes=["*"])
    assert "memberOf" not in conn.response[0]["attributes"]
    conn.search(alice, "(objectClass=*)", BASE, attributes=["+"])
    assert _norm([str(v) for v in conn.response[0]["attributes"]["memberOf"]]) == {group}
    # ... and cannot be written
    assert not conn.modify(alice, {"memberOf": [(MODIFY_ADD, [group])]})
    assert conn.result["description"] == "constraintViolation"

    # rename: group member follows, memberOf stays on the renamed entry
    assert conn.modify_dn(alice, "uid=alice2"), conn.result
    alice2 = f"uid=alice2,{info.people_dn}"
    assert _wait_for(lambda: _norm(_attr(conn, group, "member")) == _norm([alice2, bob]))
    assert _norm(_attr(conn, alice2, "memberOf")) == {group}
    # refint on manager follows the rename too
    assert _wait_for(lambda: _norm(_attr(conn, carol, "manager")) == {alice2.lower()})

    # delete: value removed from the group.  olcRefintNothing is global, so carol, whose
    # only manager was deleted, gets the placeholder as manager (not an empty attribute)
    assert conn.delete(alice2), conn.result
    assert _wait_for(lambda: _norm(_attr(conn, group, "member")) == {bob.lower()})
    assert _wait_for(
        lambda: _norm(_attr(conn, carol, "manager")) == {EMPTY_GROUP_MEMBER_DN.lower()}
    )
    # deleting the last member leaves the refint placeholder (groupOfNames MUST member)
    assert conn.delete(bob), conn.result
    assert _wait_for(lambda: _norm(_attr(conn, group, "member")) == {EMPTY_GROUP_MEMBER_DN.lower()})
    # removing the last member by hand is a schema violation
    assert not conn.modify(group, {"member": [(MODIFY_DELETE, [])]})
    assert conn.result["description"] == "objectClassViolation"


def test_ppolicy_lock_unlock_and_hashing(slapd: Slapd) -> None:
    info = slapd.info
    conn = slapd.connection()
    dn = _add_user(conn, info.people_dn, "dave", userPassword="Cle4r-text")

    def can_bind(password: str = "Cle4r-text") -> bool:
        return ldap3.Connection(info.url, dn, password).bind()

    # clear-text password was hashed by ppolicy (olcPPolicyHashCleartext), bind works
    admin = slapd.connection(info.admin_dn, info.admin_password)
    assert _attr(admin, dn, "userPassword")[0].startswith("b'{SSHA}")
    assert can_bind()
    assert not can_bind("wrong")
    assert can_bind()  # failed binds never lock (pwdMaxFailure 0)

    # SCIM active=false: the scim account (plain write access) locks the account
    assert conn.modify(dn, {"pwdAccountLockedTime": [(MODIFY_REPLACE, [LOCKED_FOREVER])]}), (
        conn.result
    )
    assert _attr(conn, dn, "pwdAccountLockedTime") == [f"b'{LOCKED_FOREVER}'"]
    locked = ldap3.Connection(info.url, dn, "Cle4r-text")
    assert not locked.bind()
    assert locked.result["description"] == "invalidCredentials"
    # active=true: delete the attribute
    assert conn.modify(dn, {"pwdAccountLockedTime": [(MODIFY_DELETE, [])]}), conn.result
    assert can_bind()

    # password change by the scim account, written in clear, hashed again
    assert conn.modify(dn, {"userPassword": [(MODIFY_REPLACE, ["N3w-secret"])]}), conn.result
    assert can_bind("N3w-secret") and not can_bind()
    # a plain user may bind but read nothing (ACL "by * none")
    user = ldap3.Connection(info.url, dn, "N3w-secret", auto_bind=True)
    user.search(info.base_dn, "(objectClass=*)")
    assert user.entries == []


def test_size_limits_sort_and_vlv(seeded: Slapd) -> None:
    info = seeded.info
    conn = seeded.connection()
    people = info.people_dn
    flt = "(objectClass=inetOrgPerson)"

    # root DSE advertises sort and VLV
    server = ldap3.Server(info.url, get_info=ldap3.DSA)
    ldap3.Connection(server, auto_bind=True)
    oids = {c[0] for c in server.info.supported_controls}
    assert {SORT_OID, VLV_OID, PAGED_OID} <= oids

    # size limits of the scim account: unpaged stops at 500, paged gets everything
    conn.search(people, flt, attributes=["uid"])
    assert conn.result["description"] == "sizeLimitExceeded"
    assert len(conn.entries) == SIZE_LIMIT
    entries = conn.extend.standard.paged_search(
        people, flt, attributes=["uid"], paged_size=200, generator=False
    )
    assert len(entries) == 1000
    conn.search(people, flt, attributes=["uid"], paged_size=SIZE_LIMIT + 100)
    assert conn.result["description"] == "success"  # page > 500 is allowed
    assert len(conn.entries) == SIZE_LIMIT + 100

    # (c) sort alone, no paging (small result)
    conn.search(
        people,
        "(uid=user00001*)",
        attributes=["uid"],
        controls=[sort_control(("uid", "caseIgnoreOrderingMatch"), reverse=True)],
    )
    assert conn.result["result"] == 0, conn.result
    assert _uids(conn) == [f"user{i:06d}" for i in range(19, 9, -1)]
    assert int(_response_control(conn, SORT_RESPONSE_OID, _SortResult())["sortResult"]) == 0
    # no ORDERING rule on uid -> inappropriateMatching unless a rule is named
    conn.search(
        people,
        "(uid=user00001*)",
        attributes=["uid"],
        controls=[(SORT_OID, True, encoder.encode(_one_key_without_rule("uid")))],
    )
    assert conn.result["description"] == "inappropriateMatching"
    # unpaged sort over > 500 entries: still the size limit
    conn.search(
        people, flt, attributes=["uid"], controls=[sort_control(("uid", "caseIgnoreOrderingMatch"))]
    )
    assert conn.result["description"] == "sizeLimitExceeded"

    # (c) VLV by offset over all 1000 users, as the scim account, no paging
    conn.search(
        people,
        flt,
        attributes=["uid"],
        controls=[sort_control(("uid", "caseIgnoreOrderingMatch")), vlv_control(1, 3, offset=701)],
    )
    assert conn.result["result"] == 0, conn.result
    assert _uids(conn) == [f"user{i:06d}" for i in range(699, 704)]
    vlv = _response_control(conn, VLV_RESPONSE_OID, _VlvResponse())
    assert int(vlv["targetPosition"]) == 701
    assert int(vlv["contentCount"]) == 1000
    assert int(vlv["virtualListViewResult"]) == 0
    # the window, not the list, counts against the size limit
    conn.search(
        people,
        flt,
        attributes=["uid"],
        controls=[sort_control(("uid", "caseIgnoreOrderingMatch")), vlv_control(0, 599, offset=1)],
    )
    assert conn.result["description"] == "sizeLimitExceeded"
    assert len(conn.entries) == SIZE_LIMIT
    # VLV without sort is refused with 76 virtualListViewError ("Sort control is required
    # with VLV"), a code ldap3 2.9.1 does not know: it raises KeyError while decoding
    try:
        conn.search(people, flt, attributes=["uid"], controls=[vlv_control(0, 9, offset=1)])
        code = conn.result["result"]
    except KeyError as exc:
        code = exc.args[0]
    assert code == 76

    # (d) sort + paged results: pages arrive in sort order, all 1000 for the scim account
    got: list[str] = []
    cookie: bytes | None = None
    while True:
        conn.search(
            people,
            flt,
            attributes=["uid"],
            paged_size=300,
            paged_cookie=cookie,
            controls=[sort_control(("uid", "caseIgnoreOrderingMatch"), reverse=True)],
        )
        assert conn.result["result"] == 0, conn.result
        got.extend(_uids(conn))
        cookie = conn.result["controls"][PAGED_OID]["value"]["cookie"]
        if not cookie:
            break
    assert got == [f"user{i:06d}" for i in range(999, -1, -1)]
    conn.search(
        people,
        flt,
        attributes=["uid"],
        paged_size=SIZE_LIMIT + 100,
        controls=[sort_control(("uid", "caseIgnoreOrderingMatch"))],
    )
    assert conn.result["result"] == 0 and len(conn.entries) == SIZE_LIMIT + 100
    # (d) VLV + paged results together is refused
    conn.search(
        people,
        flt,
        attributes=["uid"],
        paged_size=10,
        controls=[sort_control(("uid", "caseIgnoreOrderingMatch")), vlv_control(0, 9, offset=1)],
    )
    assert conn.result["result"] != 0
    _record("vlv+paged", conn.result["description"])


def _one_key_without_rule(attr: str) -> _SortKeyList:
    lst = _SortKeyList()
    k = _SortKey()
    k["attributeType"] = attr
    lst[0] = k
    return lst


def _record(what: str, value: object) -> None:
    print(f"[slapd-fixture] {what}: {value}")


def test_seeded_start(seeded: Slapd) -> None:
    info = seeded.info
    conn = seeded.connection()
    _record("seeded start (1000 users) s", seeded.last_start_seconds)
    assert seeded.last_start_seconds is not None and seeded.last_start_seconds < 5
    entries = conn.extend.standard.paged_search(
        info.people_dn,
        "(objectClass=inetOrgPerson)",
        attributes=["uid"],
        paged_size=500,
        generator=False,
    )
    assert len(entries) == 1000
    groups = conn.extend.standard.paged_search(
        info.groups_dn, "(objectClass=groupOfNames)", attributes=["cn"], generator=False
    )
    assert sorted(g["attributes"]["cn"][0] for g in groups) == sorted(
        [f"group{j:04d}" for j in range(10)] + ["biggroup"]
    )
    # memberOf written by the generator matches the groups' members
    g3 = f"cn=group0003,{info.groups_dn}"
    members = _attr(conn, g3, "member")
    assert len(members) == 20
    assert f"uid=user000060,{info.people_dn}" in members
    u60 = f"uid=user000060,{info.people_dn}"
    assert _norm(_attr(conn, u60, "memberOf")) == {g3, f"cn=biggroup,{info.groups_dn}"}
    u900 = f"uid=user000900,{info.people_dn}"
    assert _attr(conn, u900, "memberOf") == []
    # memberOf is indexed and searchable
    conn.search(info.people_dn, f"(memberOf={g3})", attributes=["uid"])
    assert len(conn.entries) == 20
    big = _attr(conn, f"cn=biggroup,{info.groups_dn}", "member")
    assert len(big) == 600
    # entryUUID generated by slapadd; attributes as documented
    conn.search(u60, "(objectClass=*)", BASE, attributes=["*", "entryUUID"])
    attrs = conn.response[0]["attributes"]
    assert attrs["entryUUID"] and attrs["mail"] == ["user000060@example.org"]
    assert attrs["employeeNumber"] == "60" and attrs["displayName"] == "Test User 000060"
    # seeded users can bind; memberOf stays maintained online for seeded groups
    assert ldap3.Connection(info.url, u60, SEED_PASSWORD).bind()
    assert conn.modify(g3, {"member": [(MODIFY_DELETE, [u60])]}), conn.result
    assert _wait_for(
        lambda: _norm(_attr(conn, u60, "memberOf")) == {f"cn=biggroup,{info.groups_dn}"}
    )
    assert conn.modify(g3, {"member": [(MODIFY_ADD, [u60])]}), conn.result
    assert _wait_for(lambda: len(_attr(conn, u60, "memberOf")) == 2)


def test_restart_kill_keep_data(slapd: Slapd) -> None:
    info = slapd.info
    conn = slapd.connection()
    dn = _add_user(conn, info.people_dn, "persist")
    pid = slapd.pid

    t0 = time.perf_counter()
    slapd.stop()
    stop_s = time.perf_counter() - t0
    assert not slapd.running
    with pytest.raises(ldap3.core.exceptions.LDAPException):
        ldap3.Connection(ldap3.Server(info.url, connect_timeout=1), auto_bind=True)
    info2 = slapd.start()
    assert info2 == info and slapd.pid != pid
    assert slapd.connection().search(dn, "(objectClass=*)", BASE)

    # restart() in one go, then a crash (SIGKILL) and start again: data survives
    assert slapd.restart() == info
    dn2 = _add_user(slapd.connection(), info.people_dn, "after-restart")
    slapd.kill()
    assert not slapd.running
    slapd.start()
    conn = slapd.connection()
    assert conn.search(dn, "(objectClass=*)", BASE)
    assert conn.search(dn2, "(objectClass=*)", BASE)
    _record("stop s", round(stop_s, 3))
    _record("restart s", slapd.last_start_seconds)


def test_failed_start_reports_slapd_output(slapd: Slapd) -> None:
    info = slapd.info
    slapd.stop()
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", info.port))
    blocker.listen(1)
    try:
        with pytest.raises(RuntimeError) as exc:
            slapd.start()
        assert "slapd" in str(exc.value) and "98" in str(exc.value)
    finally:
        blocker.close()
    assert slapd.start() == info


def test_cleanup_removes_directory() -> None:
    _need_slapd()
    s = Slapd()
    info = s.start()
    assert os.path.isdir(info.directory)
    s.cleanup()
    assert not os.path.exists(info.directory)
    assert not s.running
