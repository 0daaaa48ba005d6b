"""SCIM filter -> LDAP filter: the golden corpora (tests/corpus/filters-<mapping>.txt, one case
per line, run through parametrize) and the sortBy / CLI behaviour around them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from bridge.cli import main
from bridge.errors import ScimError
from bridge.mapping.load import load_mapping
from bridge.mapping.model import MappingConfig
from bridge.translate.filter import to_ldap
from bridge.translate.sort import sort_attribute, sort_keys

ROOT = Path(__file__).resolve().parent.parent
CORPUS = sorted((ROOT / "tests" / "corpus").glob("filters-*.txt"))


def resolver(targets: Sequence[str], rid: str) -> str | None:
    """The corpus resolver: ids starting with "missing" name no resource."""
    if rid.startswith("missing"):
        return None
    return f"uid={rid},ou=people,dc=example,dc=org"


def _cases() -> list[object]:
    out: list[object] = []
    for path in CORPUS:
        mapping = path.stem.removeprefix("filters-")
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            resource, _, rest = line.partition(":")
            scim, sep, expected = rest.rpartition(" => ")
            assert sep, f"{path.name}:{n}: expected '<Resource>: <SCIM> => <LDAP>'"
            out.append(
                pytest.param(
                    mapping, resource.strip(), scim.strip(), expected.strip(), id=f"{path.stem}:{n}"
                )
            )
    return out


_MAPPINGS: dict[str, MappingConfig] = {}


def mapping_named(name: str) -> MappingConfig:
    if name not in _MAPPINGS:
        _MAPPINGS[name] = load_mapping(ROOT / "mappings" / f"{name}.yaml")
    return _MAPPINGS[name]


@pytest.mark.parametrize(("mapping", "resource", "scim", "expected"), _cases())
def test_corpus(mapping: str, resource: str, scim: str, expected: str) -> None:
    m = mapping_named(mapping)
    rmap = m.resource(resource)
    if expected.startswith("!"):
        with pytest.raises(ScimError) as err:
            to_ldap(rmap, scim, m, resolver)
        assert err.value.status == 400
        assert err.value.scim_type == expected[1:]
        return
    assert to_ldap(rmap, scim, m, resolver) == expected


def test_corpus_files_exist_for_every_shipped_mapping() -> None:
    assert [p.stem for p in CORPUS] and all(
        (ROOT / "mappings" / f"{p.stem.removeprefix('filters-')}.yaml").exists() for p in CORPUS
    )


def test_unmapped_attribute_is_named(openldap_mapping: MappingConfig) -> None:
    rmap = openldap_mapping.resource("User")
    with pytest.raises(ScimError) as err:
        to_ldap(rmap, 'userName eq "a" or nickName eq "x"', openldap_mapping)
    assert "nickName" in err.value.detail


def test_without_resolver_references_show_a_placeholder(openldap_mapping: MappingConfig) -> None:
    rmap = openldap_mapping.resource("Group")
    assert to_ldap(rmap, 'members.value eq "abc"', openldap_mapping) == "(member=<DN of abc>)"


@pytest.mark.parametrize(
    ("sort_by", "attr"),
    [
        ("userName", "uid"),
        ("USERNAME", "uid"),
        ("urn:ietf:params:scim:schemas:core:2.0:User:userName", "uid"),
        ("name.familyName", "sn"),
        ("emails", "mail"),  # RFC 7644 §3.4.2.3: multi-valued sorts by the primary value
        ("emails.value", "mail"),
        ("phoneNumbers", "telephoneNumber"),  # the primary one
        ("meta.lastModified", "modifyTimestamp"),
        ("meta.created", "createTimestamp"),
        ("id", "entryUUID"),
        (
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
            "employeeNumber",
        ),
    ],
)
def test_sort_attribute(openldap_mapping: MappingConfig, sort_by: str, attr: str) -> None:
    assert sort_attribute(openldap_mapping.resource("User"), sort_by) == attr


@pytest.mark.parametrize(
    "sort_by",
    ["nickName", "name", "active", "password", "groups", "meta.location", "a.b.c", "urn:x:y:foo"],
)
def test_sort_attribute_refused(openldap_mapping: MappingConfig, sort_by: str) -> None:
    with pytest.raises(ScimError) as err:
        sort_attribute(openldap_mapping.resource("User"), sort_by)
    assert err.value.status == 400 and err.value.scim_type == "invalidValue"
    assert sort_by.split(":")[-1].split(".")[0] in err.value.detail or sort_by in err.value.detail


def test_sort_keys_need_an_ordering_rule_on_openldap(openldap_mapping: MappingConfig) -> None:
    """slapd: uid/cn have no ORDERING rule (18 inappropriateMatching without one); entryUUID
    (UUIDOrderingMatch) and timestamps need none; the id breaks ties so pages are stable."""
    user = openldap_mapping.resource("User")
    keys = sort_keys(user, openldap_mapping, None, False)
    assert [(k.attr, k.ordering_rule, k.reverse) for k in keys] == [
        ("uid", "caseIgnoreOrderingMatch", False),
        ("entryUUID", None, False),
    ]
    keys = sort_keys(user, openldap_mapping, "meta.lastModified", True)
    assert [(k.attr, k.ordering_rule, k.reverse) for k in keys] == [
        ("modifyTimestamp", None, True),
        ("entryUUID", None, True),
    ]
    assert [k.attr for k in sort_keys(user, openldap_mapping, "id", False)] == ["entryUUID"]


def test_cli_prints_the_ldap_filter(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            "translate-filter",
            "-m",
            str(ROOT / "mappings/openldap.yaml"),
            "-r",
            "User",
            'emails[type eq "work"].value eq "a@x" and active eq true',
        ]
    )
    assert rc == 0
    assert capsys.readouterr().out.strip() == "(&(mail=a@x)(!(pwdAccountLockedTime=*)))"


def test_cli_shows_the_caret(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            "translate-filter",
            "-m",
            str(ROOT / "mappings/openldap.yaml"),
            "-r",
            "User",
            'userName eq "a" and title xx "b"',
        ]
    )
    assert rc == 1
    err = capsys.readouterr().err
    assert "column 27" in err and "^" in err
    lines = err.splitlines()
    caret = next(i for i, line in enumerate(lines) if line.strip() == "^")
    assert lines[caret].index("^") - lines[caret - 1].index("userName") == 26


def test_cli_names_the_unmapped_attribute(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            "translate-filter",
            "-m",
            str(ROOT / "mappings/openldap.yaml"),
            "-r",
            "User",
            'nickName eq "x"',
        ]
    )
    assert rc == 1
    assert "nickName" in capsys.readouterr().err


AD_MAP = """
version: 1
dialect: active-directory
resources:
  User:
    base_dn: OU=People,DC=example,DC=test
    object_classes: [top, person, organizationalPerson, user]
    base_filter: (&(objectCategory=person)(objectClass=user))
    id: {ldap: objectGUID, type: guid}
    rdn: {ldap: cn, from: userName}
    attributes:
      userName: {ldap: sAMAccountName, required: true}
      displayName: {ldap: displayName}
"""


def test_binary_id_and_plain_ordering_on_active_directory() -> None:
    """objectGUID is compared as escaped bytes (MS-DTYP little-endian GUID); AD orders strings
    with >= / <= itself and takes a single sort key."""
    from bridge.mapping.load import parse_mapping

    m = parse_mapping(AD_MAP)
    rmap = m.resource("User")
    guid = "6ea39cb4-8003-1041-8352-9b389f75569e"
    assert to_ldap(rmap, f'id eq "{guid}"', m) == (
        r"(objectGUID=\b4\9c\a3\6e\03\80\41\10\83\52\9b\38\9f\75\56\9e)"
    )
    assert to_ldap(rmap, 'userName gt "m"', m) == "(&(sAMAccountName>=m)(!(sAMAccountName=m)))"
    assert to_ldap(rmap, 'userName le "m"', m) == "(sAMAccountName<=m)"
    keys = sort_keys(rmap, m, "displayName", False)
    assert [(k.attr, k.ordering_rule) for k in keys] == [("displayName", None)]


def test_string_id_sorts_with_an_ordering_rule() -> None:
    """An id mapped to a plain string attribute (uid) has no ordering rule of its own on
    OpenLDAP, unlike entryUUID."""
    from bridge.mapping.load import parse_mapping

    text = (ROOT / "mappings/openldap.yaml").read_text(encoding="utf-8")
    m = parse_mapping(text.replace("id: {ldap: entryUUID, type: uuid}", "id: {ldap: uid}", 1))
    keys = sort_keys(m.resource("User"), m, None, False)
    assert [(k.attr, k.ordering_rule) for k in keys] == [("uid", "caseIgnoreOrderingMatch")]
