"""The pure half of the directory inspection (bridge/service/dircheck.py, bridge/service/dirfacts.py): which
indexes a mapping needs, how olcDbIndex values read, and what each set of facts yields."""

from __future__ import annotations

from bridge.directory.base import OID_SORT, OID_VLV, Entry
from bridge.mapping.load import load_mapping
from bridge.service.dircheck import breaking, findings, needed_indexes, render
from bridge.service.dirfacts import OID_DEREF, OID_PPOLICY, Facts, parse_olc_indexes, server_kind
from tests.conftest import OPENLDAP_MAP, ROOT

BARE_MAP = ROOT / "mappings" / "openldap-bare.yaml"
AD_MAP = ROOT / "mappings" / "active-directory.yaml"
ALL_CONTROLS = frozenset({OID_SORT, OID_VLV, OID_DEREF, OID_PPOLICY})
TUNED_INDEXES = {
    "objectclass": frozenset({"eq"}),
    "entryuuid": frozenset({"eq"}),
    "uid": frozenset({"eq", "sub"}),
    "cn": frozenset({"eq", "sub"}),
    "mail": frozenset({"eq", "sub"}),
    "displayname": frozenset({"eq", "sub"}),
    "member": frozenset({"eq"}),
    "memberof": frozenset({"eq"}),
}
FEATURES = frozenset({"memberof", "refint", "ppolicy", "sssvlv", "deref"})


def _needs(path: object) -> dict[str, tuple[str, ...]]:
    return {n.attr: n.kinds for n in needed_indexes(load_mapping(path))}  # type: ignore[arg-type]


def test_openldap_mapping_needs_id_username_unique_membership_and_class_indexes() -> None:
    assert _needs(OPENLDAP_MAP) == {
        "entryUUID": ("eq",),
        "objectClass": ("eq",),
        "uid": ("eq", "sub"),
        "displayName": ("eq", "sub"),
        "mail": ("eq", "sub"),
        "memberOf": ("eq",),
        "cn": ("eq", "sub"),
        "member": ("eq",),
    }


def test_posix_mappings_need_the_allocated_numbers_indexed() -> None:
    """Every allocation searches the naming context for the candidate numbers (a number is
    never reused), so without an equality index each create scans every entry."""
    for name in ("openldap-posix", "389ds-posix"):
        needs = _needs(ROOT / "mappings" / f"{name}.yaml")
        assert needs["uidNumber"] == ("eq",) and needs["gidNumber"] == ("eq",), name
    assert "uidNumber" not in _needs(OPENLDAP_MAP)


def test_bare_mapping_needs_no_memberof_index() -> None:
    assert "memberOf" not in _needs(BARE_MAP)


def test_ad_mapping_needs_follow_its_attributes() -> None:
    needs = _needs(AD_MAP)
    assert needs["objectGUID"] == ("eq",)
    # userName is the UPN (issue 15); the sAMAccountName is derived and numbered until free
    assert needs["userPrincipalName"] == ("eq", "sub")
    assert needs["sAMAccountName"] == ("eq",)
    assert needs["member"] == ("eq",)


def test_olc_index_values_with_lists_and_default() -> None:
    kinds, lines = parse_olc_indexes(
        ["default eq,sub", "objectClass eq", "cn,uid", "mail pres,subinitial", "entryUUID eq"]
    )
    assert kinds["cn"] == kinds["uid"] == frozenset({"eq", "sub"})
    assert kinds["mail"] == frozenset({"pres", "subinitial", "sub"})
    assert kinds["objectclass"] == frozenset({"eq"})
    assert lines["uid"] == "cn,uid"
    assert "default" not in kinds


def test_server_kind_from_root_dse() -> None:
    def root(**attrs: list[bytes]) -> Entry:
        return Entry("", {k.lower(): v for k, v in attrs.items()})

    assert server_kind(root(objectClass=[b"top", b"OpenLDAProotDSE"])) == "openldap"
    assert server_kind(root(vendorName=[b"389 Project"])) == "389ds"
    assert server_kind(root(forestFunctionality=[b"7"])) == "active-directory"
    assert server_kind(root()) == "unknown"
    assert server_kind(None) == "unknown"


def test_tuned_facts_yield_nothing() -> None:
    facts = Facts("openldap", ALL_CONTROLS, TUNED_INDEXES, features=FEATURES)
    assert findings(load_mapping(OPENLDAP_MAP), facts) == []


def test_bare_facts_yield_breaking_ppolicy_and_memberof_first() -> None:
    facts = Facts("openldap", frozenset(), {"objectclass": frozenset({"eq"})}, features=frozenset())
    found = findings(load_mapping(OPENLDAP_MAP), facts)
    topics = [f.topic for f in found]
    assert topics[:2] == ["ppolicy", "memberof"]
    assert {"sssvlv", "deref", "refint", "index entryUUID"} <= set(topics)
    assert breaking(found)
    uuid = next(f for f in found if f.topic == "index entryUUID")
    assert "GET/PUT/PATCH/DELETE of a User by id" in uuid.effect
    assert "olcDbIndex: entryUUID eq" in uuid.fix
    assert "ldapmodify -Y EXTERNAL -H ldapi:///" in uuid.fix
    assert render(found)[0] == f"directory: {len(found)} finding(s), 2 breaking a mapped feature"


def test_bare_mapping_on_bare_facts_breaks_nothing() -> None:
    facts = Facts("openldap", frozenset(), {"objectclass": frozenset({"eq"})}, features=frozenset())
    found = findings(load_mapping(BARE_MAP), facts)
    assert not breaking(found)
    assert {f.topic for f in found} >= {"sssvlv", "deref", "refint", "index entryUUID"}


def test_an_existing_index_is_rewritten_not_duplicated() -> None:
    indexes = {**TUNED_INDEXES, "uid": frozenset({"eq"})}
    lines = {"uid": "uid eq"}
    facts = Facts("openldap", ALL_CONTROLS, indexes, lines, features=FEATURES, config_dn="db")
    (only,) = findings(load_mapping(OPENLDAP_MAP), facts)
    assert only.topic == "index uid" and "no sub index" in only.effect
    assert "delete: olcDbIndex\nolcDbIndex: uid eq\n-\nadd: olcDbIndex\nolcDbIndex: uid eq,sub" in (
        only.fix
    )


def test_unreadable_config_is_one_finding_and_controls_still_count() -> None:
    facts = Facts("openldap", ALL_CONTROLS, unreadable="cn=config is not readable")
    found = findings(load_mapping(OPENLDAP_MAP), facts)
    # no schema hint: memberOf unproven; the controls the root DSE lists do count
    assert [f.topic for f in found] == ["memberof", "configuration"]
    assert found[0].severity == "error"
    with_hint = Facts("openldap", frozenset(), memberof_in_schema=True, unreadable="denied")
    found = findings(load_mapping(OPENLDAP_MAP), with_hint)
    assert [f.topic for f in found] == ["ppolicy", "configuration", "sssvlv", "deref"]
    assert "docs/directories/openldap.md" in found[1].fix


def test_389_fixes_are_dsconf_commands() -> None:
    facts = Facts(
        "389ds", frozenset({OID_SORT, OID_VLV}), {}, features=frozenset(), config_dn="userRoot"
    )
    found = {f.topic: f for f in findings(load_mapping(OPENLDAP_MAP), facts)}
    assert found["index entryUUID"].fix.startswith(
        "dsconf <instance> backend index add --index-type eq --attr entryUUID userRoot"
    )
    assert "plugin memberof enable" in found["memberof"].fix
    assert "sssvlv" not in found


def test_ad_index_fix_sets_the_searchflags_bit() -> None:
    flags = {"mail": ("CN=E-mail-Addresses,CN=Schema,CN=Configuration,DC=x", 0x10)}
    facts = Facts(
        "active-directory",
        frozenset({OID_SORT, OID_VLV}),
        {},
        features=frozenset({"memberof", "refint"}),
        schema_flags=flags,
    )
    found = {f.topic: f for f in findings(load_mapping(AD_MAP), facts)}
    assert "deref" not in found
    assert (
        "Set-ADObject -Identity 'CN=E-mail-Addresses,CN=Schema,CN=Configuration,DC=x' "
        "-Replace @{searchFlags=17}" in found["index mail"].fix
    )


def test_overlay_fix_skips_a_loaded_module_and_names_the_suffix_and_placeholder() -> None:
    facts = Facts(
        "openldap",
        ALL_CONTROLS - {OID_PPOLICY},
        TUNED_INDEXES,
        features=frozenset({"memberof", "sssvlv", "deref"}),
        config_dn="olcDatabase={2}mdb,cn=config",
        suffix="dc=example,dc=org",
        modules=frozenset({"back_mdb", "ppolicy"}),
    )
    found = {f.topic: f for f in findings(load_mapping(OPENLDAP_MAP), facts)}
    assert set(found) == {"ppolicy", "refint"}
    assert "olcModuleLoad" not in found["ppolicy"].fix  # loaded already: adding it would fail
    assert "olcPPolicyDefault: cn=default,ou=policies,dc=example,dc=org" in found["ppolicy"].fix
    assert "dn: olcOverlay=ppolicy,olcDatabase={2}mdb,cn=config" in found["ppolicy"].fix
    assert "olcModuleLoad: refint" in found["refint"].fix
    assert (
        "olcRefintNothing: cn=empty-membership-placeholder,dc=example,dc=org" in found["refint"].fix
    )


def test_memberof_fix_suggests_reading_groups_from_the_group_side() -> None:
    """Without memberof the fix offers the overlay AND the mapping change that needs none."""
    facts = Facts("openldap", frozenset(), {"objectclass": frozenset({"eq"})}, features=frozenset())
    found = {f.topic: f for f in findings(load_mapping(OPENLDAP_MAP), facts)}
    assert "olcOverlay: memberof" in found["memberof"].fix
    assert "groups: {from_member: member, to: [Group]}" in found["memberof"].fix
    assert "memberof" not in {f.topic for f in findings(load_mapping(BARE_MAP), facts)}
