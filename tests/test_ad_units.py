"""Active Directory pieces that need no server: codecs, the AD error table, the range-retrieval
loop, the deprovisioning rules, staged creates with compensation, the plain-LDAP refusal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge.directory.embedded import EmbeddedDirectory
from bridge.directory.ranges import complete_ranges, parse_ranged
from bridge.errors import ConfigError, DirectoryError, InvalidValue, NotImplemented_
from bridge.mapping.codecs import CODECS
from bridge.mapping.load import load_mapping, parse_mapping
from bridge.runtime import seed_structure
from bridge.service.facade import Service

ROOT = Path(__file__).resolve().parent.parent
AD_MAP = ROOT / "mappings" / "active-directory.yaml"
OPENLDAP_MAP = ROOT / "mappings" / "openldap.yaml"

enabled = CODECS["ad-enabled"]


# ---------------------------------------------------------------------------- ad-enabled
@pytest.mark.parametrize(
    ("raw", "active"),
    [
        (b"512", True),
        (b"514", False),
        (b"546", False),
        (b"66048", True),
        (b"66050", False),
        (b"544", True),
    ],
)
def test_ad_enabled_decodes_bit_2(raw: bytes, active: bool) -> None:
    assert enabled.decode_all([raw]) == [active]


def test_ad_enabled_keeps_every_other_bit() -> None:
    dont_expire_smartcard = 0x10000 | 0x40000 | 0x200
    assert enabled.encode(False, [str(dont_expire_smartcard).encode()]) == [
        str(dont_expire_smartcard | 2).encode()
    ]
    assert enabled.encode(True, [str(dont_expire_smartcard | 2).encode()]) == [
        str(dont_expire_smartcard).encode()
    ]
    assert enabled.encode("False", [b"512"]) == [b"514"]  # Entra's string booleans


def test_ad_enabled_new_account_starts_from_normal_account_not_546() -> None:
    # AD's placeholder 546 carries PASSWD_NOTREQD; a created account must not keep it
    assert enabled.encode(True, None) == [b"512"]
    assert enabled.encode(False, None) == [b"514"]


def test_ad_enabled_filters_use_the_bit_and_rule() -> None:
    rule = "(userAccountControl:1.2.840.113556.1.4.803:=2)"
    assert enabled.filter_for("userAccountControl", "eq", True) == f"(!{rule})"
    assert enabled.filter_for("userAccountControl", "eq", "false") == rule
    assert enabled.filter_for("userAccountControl", "ne", True) == rule
    assert enabled.filter_for("userAccountControl", "pr", None) == "(userAccountControl=*)"


# ---------------------------------------------------------------------------- passwords / names
def test_ad_password_is_quoted_utf16le_and_never_read() -> None:
    codec = CODECS["ad-password"]
    assert codec.encode("Pässw0rd!") == ['"Pässw0rd!"'.encode("utf-16-le")]
    assert codec.decode_all([b"anything"]) == []
    assert codec.write_only and codec.secure_transport


@pytest.mark.parametrize("name", ["bjensen", "b.jensen", "b-jensen_2", "x" * 20, "Zoë"])
def test_valid_sam_account_names(name: str) -> None:
    assert CODECS["ad-samaccountname"].encode(name) == [name.encode()]


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("bjensen@example.com", "@"),
        ("a/b", "/"),
        ("a\\b", "\\"),
        ("a[b]", "["),
        ("a:b", ":"),
        ("a;b", ";"),
        ("a|b", "|"),
        ("a=b", "="),
        ("a,b", ","),
        ("a+b", "+"),
        ("a*b", "*"),
        ("a?b", "?"),
        ("a<b>", "<"),
        ('a"b', '"'),
        ("x" * 21, "at most 20"),
        ("dot.", "period"),
        ("tab\tname", "U+0009"),
    ],
)
def test_invalid_sam_account_names_say_why(name: str, why: str) -> None:
    with pytest.raises(InvalidValue) as err:
        CODECS["ad-samaccountname"].encode(name)
    assert why in err.value.detail and "sAMAccountName" in err.value.detail


def test_sam_account_name_filters_are_not_validated() -> None:
    # Entra/Okta probe with e-mail style userNames before a create: match nothing, no 400
    assert CODECS["ad-samaccountname"].assertion("user@example.com") == "user@example.com"


def test_group_names_allow_256_and_safe_name_sanitises() -> None:
    assert CODECS["ad-group-samaccountname"].encode("g" * 256)
    assert CODECS["ad-safe-name"].encode("R&D/Labs: Berlin.") == [b"R&D_Labs_ Berlin"]
    assert CODECS["ad-safe-name"].encode("...") == [b"_"]


# ---------------------------------------------------------------------------- AD error codes
def test_ad_52d_is_a_readable_400() -> None:
    err = DirectoryError(
        "constraintViolation",
        "0000052D: Constraint violation - check_password_restrictions: the password is too short",
        operation="modify",
    ).to_scim()
    assert err.status == 400 and err.scim_type == "invalidValue"
    assert "password policy" in err.detail and "0000052D" in err.detail


def test_windows_52d_with_problem_5003_is_a_400() -> None:
    err = DirectoryError(
        "unwillingToPerform",
        "0000052D: SvcErr: DSID-031A12D2, problem 5003 (WILL_NOT_PERFORM), data 0",
        operation="modify",
    ).to_scim()
    assert err.status == 400 and "without a password" in err.detail


def test_duplicate_sam_account_name_is_409() -> None:
    err = DirectoryError(
        "entryAlreadyExists", "00002071: samldb: samAccountName 'x' already in use!"
    ).to_scim()
    assert err.status == 409 and err.scim_type == "uniqueness"


@pytest.mark.parametrize(
    ("code", "attr"), [("000021C8", "userPrincipalName"), ("000021C7", "servicePrincipalName")]
)
def test_windows_forest_wide_upn_and_spn_clashes_are_409(code: str, attr: str) -> None:
    """Windows 2012 R2+ refuses a UPN/SPN held anywhere in the forest (MS-ADTS 3.1.1.5.1.3),
    with constraintViolation and ERROR_DS_UPN/SPN_VALUE_NOT_UNIQUE_IN_FOREST in front."""
    err = DirectoryError(
        "constraintViolation", f"{code}: AtrErr: DSID-03200BBA, #1:", operation="add"
    ).to_scim()
    assert err.status == 409 and err.scim_type == "uniqueness"
    assert attr in err.detail


def test_non_ad_messages_are_unchanged() -> None:
    err = DirectoryError("constraintViolation", "some slapd text", operation="add").to_scim()
    assert err.status == 400 and err.detail == (
        "directory refused the add: constraintViolation (some slapd text)"
    )


# ---------------------------------------------------------------------------- range retrieval
def _ad_server(values: list[bytes], max_range: int = 1500) -> tuple[Any, list[str]]:
    """fetch() that answers like Windows AD with MaxValRange=max_range."""
    asked: list[str] = []

    def fetch(dn: str, attr: str) -> dict[str, list[bytes]]:
        asked.append(attr)
        name, _, rng = attr.partition(";range=")
        low = int(rng.split("-")[0])
        if low >= len(values):
            return {}
        high = min(low + max_range, len(values)) - 1
        label = "*" if high == len(values) - 1 else str(high)
        return {f"{name};range={low}-{label}": values[low : high + 1]}

    return fetch, asked


def test_range_loop_reads_to_the_end() -> None:
    values = [f"CN=u{i},OU=People,DC=x".encode() for i in range(4000)]
    fetch, asked = _ad_server(values)
    first = {"member;range=0-1499": values[:1500], "cn": [b"big"]}
    out = complete_ranges("CN=big", first, fetch)
    assert out["member"] == values and out["cn"] == [b"big"]
    assert asked == ["member;range=1500-*", "member;range=3000-*"]


def test_range_loop_exact_multiple_and_start_past_end() -> None:
    values = [str(i).encode() for i in range(3000)]
    fetch, asked = _ad_server(values)
    out = complete_ranges("CN=g", {"member;range=0-1499": values[:1500]}, fetch)
    assert out["member"] == values and asked == ["member;range=1500-*"]
    fetch2, _ = _ad_server(values[:1500])
    # a server that claimed more than it has: the next read finds nothing; stop, keep what we have
    assert (
        complete_ranges("CN=g", {"member;range=0-1499": values[:1500]}, fetch2)["member"]
        == values[:1500]
    )


def test_range_loop_failure_raises_instead_of_truncating() -> None:
    def fetch(dn: str, attr: str) -> dict[str, list[bytes]]:
        raise DirectoryError("busy", "", dn=dn)

    with pytest.raises(DirectoryError):
        complete_ranges("CN=g", {"member;range=0-1499": [b"x"] * 1500}, fetch)


def test_range_loop_refuses_an_answer_out_of_step() -> None:
    def fetch(dn: str, attr: str) -> dict[str, list[bytes]]:
        return {"member;range=0-*": [b"again"]}

    with pytest.raises(DirectoryError, match="out of step"):
        complete_ranges("CN=g", {"member;range=0-1499": [b"x"] * 1500}, fetch)


def test_parse_ranged() -> None:
    assert parse_ranged("member;range=0-1499").attr == "member"  # type: ignore[union-attr]
    assert parse_ranged("member;range=1500-*").high is None  # type: ignore[union-attr]
    assert parse_ranged("member") is None
    assert parse_ranged("userCertificate;binary;range=0-9").attr == "userCertificate;binary"  # type: ignore[union-attr]


# ---------------------------------------------------------------------------- mapping rules
def _ad_text(**replace: str) -> str:
    text = AD_MAP.read_text()
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def test_ad_mapping_loads_with_its_defaults() -> None:
    m = load_mapping(AD_MAP)
    user = m.resource("User")
    assert user.create_steps == (("unicodePwd", "pwdLastSet"), ("userAccountControl",))
    assert user.deprovision.deletes and not user.transitive_groups
    assert dict(m.resource("Group").constants) == {"groupType": (b"-2147483646",)}


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ("on_deactivate: [remove_groups]", "must include disable"),
        ("on_deactivate: [disable, delete]", "cannot delete"),
        ("on_delete: [disable]", "must move out of the search scope"),
        ("on_delete: [delete, disable]", "cannot be combined"),
        ('on_delete: [disable, {move: "OU=Old,OU=People,DC=example,DC=test"}]', "must be outside"),
        ('on_deactivate: [disable, {move: "OU=Quarantine,DC=example,DC=test"}]', "must be below"),
        ("on_delete: [shred]", "unknown action"),
        ("on_delete: [move]", "needs a target"),
    ],
)
def test_deprovision_rules_are_checked(policy: str, message: str) -> None:
    key = policy.split(":")[0]
    default = {"on_deactivate": "on_deactivate: [disable]", "on_delete": "on_delete: [delete]"}
    with pytest.raises(ConfigError) as err:
        parse_mapping(_ad_text(**{default[key]: policy}))
    assert message in str(err.value)
    assert "resources.User.deprovision" in str(err.value)


def test_transitive_groups_needs_ad() -> None:
    text = OPENLDAP_MAP.read_text().replace(
        "    rdn: {ldap: uid, from: userName}",
        "    rdn: {ldap: uid, from: userName}\n    transitive_groups: true",
    )
    with pytest.raises(ConfigError, match="LDAP_MATCHING_RULE_IN_CHAIN"):
        parse_mapping(text)


# ---------------------------------------------------------------------------- staged creates
def _service(text: str, directory: EmbeddedDirectory | None = None) -> Service:
    mapping = parse_mapping(text)
    directory = directory or EmbeddedDirectory()
    seed_structure(directory, mapping)
    return Service(mapping, directory)


def _staged_openldap() -> str:
    return OPENLDAP_MAP.read_text().replace(
        "    rdn: {ldap: uid, from: userName}",
        "    rdn: {ldap: uid, from: userName}\n    create_steps: [[userPassword]]",
    )


def test_failed_create_step_removes_the_half_made_entry() -> None:
    svc = _service(_staged_openldap())
    directory = svc.directory
    assert isinstance(directory, EmbeddedDirectory)
    directory.fail_next["modify"] = DirectoryError("constraintViolation", "0000052D: weak")
    with pytest.raises(DirectoryError) as err:
        svc.create("User", {"userName": "half", "password": "x"}, "")
    assert err.value.to_scim().status == 400
    assert directory.search("ou=people,dc=example,dc=org", "(uid=half)", ["uid"]).entries == []


def test_staged_create_writes_the_held_back_attribute_after_the_add() -> None:
    svc = _service(_staged_openldap())
    user = svc.create("User", {"userName": "staged", "password": "secret-1"}, "")
    entry = svc.directory.read("uid=staged,ou=people,dc=example,dc=org", ["userPassword"])
    assert entry is not None and entry.get("userPassword") == [b"secret-1"]
    assert "password" not in user


def test_password_must_change_marks_the_password() -> None:
    text = _staged_openldap().replace(
        "create_steps: [[userPassword]]",
        "create_steps: [[userPassword, pwdReset]]\n    password_must_change: true",
    )
    svc = _service(text)
    svc.create("User", {"userName": "temp", "password": "secret-1"}, "")
    entry = svc.directory.read("uid=temp,ou=people,dc=example,dc=org", ["pwdReset"])
    assert entry is not None and entry.get("pwdReset") == [b"TRUE"]
    svc.create("User", {"userName": "nopw"}, "")
    entry = svc.directory.read("uid=nopw,ou=people,dc=example,dc=org", ["pwdReset"])
    assert entry is not None and not entry.get("pwdReset")


class PlainDirectory(EmbeddedDirectory):
    """An embedded directory that pretends to be reached over unencrypted LDAP."""

    @property
    def secure(self) -> bool:
        return False


def test_ad_password_over_plain_ldap_is_refused_before_any_write() -> None:
    svc = _service(AD_MAP.read_text(), PlainDirectory())
    with pytest.raises(NotImplemented_) as err:
        svc.create("User", {"userName": "plain", "password": "Str0ng!Passw0rd"}, "")
    assert err.value.status == 501
    assert "LDAPS" in err.value.detail and "Str0ng" not in err.value.detail
    assert (
        svc.directory.search(
            "OU=People,DC=example,DC=test", "(objectClass=*)", ["1.1"], scope="one"
        ).entries
        == []
    )


# ---------------------------------------------------------------------------- extended DNs
def test_extended_dn_values_are_split_only_in_dn_attributes() -> None:
    from bridge.directory.connections import plain_dn as _plain_dn
    from bridge.directory.connections import split_extended as _split_extended

    guids: dict[str, bytes] = {}
    value = (
        b"<GUID=5aa6e358e7b045419f7d4f603e5d53eb>;<SID=0105000000000005150000>;"
        b"CN=u1,OU=People,DC=example,DC=test"
    )
    assert _split_extended(value, guids) == b"CN=u1,OU=People,DC=example,DC=test"
    assert guids == {
        "cn=u1,ou=people,dc=example,dc=test": bytes.fromhex("5aa6e358e7b045419f7d4f603e5d53eb")
    }
    assert _split_extended(b"CN=plain", guids) == b"CN=plain"
    assert _plain_dn("<GUID=5aa6e358e7b045419f7d4f603e5d53eb>;CN=x,DC=y") == "CN=x,DC=y"


def test_known_refs_need_one_unambiguous_guid_keyed_holder() -> None:
    import uuid

    from bridge.directory.base import Entry
    from bridge.service.nested import known_refs

    m = load_mapping(AD_MAP)
    raw = uuid.uuid4().bytes_le
    user = "CN=a,OU=People,DC=example,DC=test"
    elsewhere = "CN=b,CN=Users,DC=example,DC=test"
    entry = Entry(
        "CN=g,OU=Groups,DC=example,DC=test",
        {},
        {"cn=a,ou=people,dc=example,dc=test": raw, "cn=b,cn=users,dc=example,dc=test": raw},
    )
    refs = known_refs(m, [entry], [user, elsewhere], ["User", "Group"])
    assert list(refs) == ["cn=a,ou=people,dc=example,dc=test"]
    assert refs["cn=a,ou=people,dc=example,dc=test"].id == str(uuid.UUID(bytes_le=raw))
    assert refs["cn=a,ou=people,dc=example,dc=test"].resource == "User"
    # OpenLDAP maps are keyed by entryUUID: nothing is taken from the values
    assert known_refs(load_mapping(OPENLDAP_MAP), [entry], [user], ["User"]) == {}


def test_missing_password_is_generated_when_the_mapping_asks() -> None:
    text = _staged_openldap().replace(
        "create_steps: [[userPassword]]",
        "create_steps: [[userPassword]]\n    generate_missing_password: true",
    )
    svc = _service(text)
    svc.create("User", {"userName": "sso1"}, "")
    svc.create("User", {"userName": "sso2"}, "")
    svc.create("User", {"userName": "given", "password": "chosen-1"}, "")
    pw = {}
    for name in ("sso1", "sso2", "given"):
        entry = svc.directory.read(f"uid={name},ou=people,dc=example,dc=org", ["userPassword"])
        assert entry is not None
        pw[name] = entry.get("userPassword")[0].decode()
    assert pw["given"] == "chosen-1"
    assert len(pw["sso1"]) == 32 and pw["sso1"] != pw["sso2"]
    for cls in (str.isupper, str.islower, str.isdigit, lambda c: not c.isalnum()):
        assert any(cls(c) for c in pw["sso1"])


def test_plain_ldap_refusal_is_an_http_501(tmp_path: Path) -> None:
    from tests.conftest import Backend, make_client

    mapping = parse_mapping(AD_MAP.read_text())
    directory = PlainDirectory()
    seed_structure(directory, mapping)
    client = make_client(Backend("plain", directory, mapping))
    r = client.post("/scim/v2/Users", json={"userName": "plain", "password": "Str0ng!Passw0rd"})
    assert r.status_code == 501 and "BRIDGE_LDAP_STARTTLS" in r.json()["detail"]
    assert "Str0ng" not in r.text


# ---------------------------------------------------------------------------- deprovisioning
def test_delete_policy_is_generic_openldap_ppolicy_and_group_of_names() -> None:
    """The same policy machinery on the OpenLDAP map: ppolicy lock, groupOfNames placeholder."""
    text = OPENLDAP_MAP.read_text().replace(
        "    rdn: {ldap: uid, from: userName}",
        "    rdn: {ldap: uid, from: userName}\n"
        "    deprovision:\n"
        '      on_delete: [remove_groups, disable, {move: "ou=quarantine,dc=example,dc=org"}]',
    )
    svc = _service(text)
    directory = svc.directory
    assert isinstance(directory, EmbeddedDirectory)
    directory.seed(
        "ou=quarantine,dc=example,dc=org",
        {"objectClass": ["top", "organizationalUnit"], "ou": ["quarantine"]},
    )
    user = svc.create("User", {"userName": "leaver"}, "")
    group = svc.create("Group", {"displayName": "Only", "members": [{"value": user["id"]}]}, "")
    svc.delete("User", user["id"])
    with pytest.raises(Exception, match="not found"):
        svc.get("User", user["id"], "")
    moved = directory.read(
        "uid=leaver,ou=quarantine,dc=example,dc=org", ["pwdAccountLockedTime", "memberOf"]
    )
    assert moved is not None and moved.get("pwdAccountLockedTime") == [b"000001010000Z"]
    assert not moved.get("memberOf")
    assert "members" not in svc.get("Group", group["id"], "")  # placeholder kept it valid


def test_missing_quarantine_ou_is_503_and_the_account_is_already_disabled() -> None:
    from bridge.errors import Unavailable

    text = OPENLDAP_MAP.read_text().replace(
        "    rdn: {ldap: uid, from: userName}",
        "    rdn: {ldap: uid, from: userName}\n"
        "    deprovision:\n"
        '      on_delete: [disable, {move: "ou=nowhere,dc=example,dc=org"}]',
    )
    svc = _service(text)
    user = svc.create("User", {"userName": "stuck"}, "")
    with pytest.raises(Unavailable, match="ou=nowhere"):
        svc.delete("User", user["id"])
    assert svc.get("User", user["id"], "")["active"] is False


# ---------------------------------------------------------------------------- derived logon names
@pytest.mark.parametrize(
    ("user_name", "sam"),
    [
        ("Barbara.Jensen@example.test", "Barbara.Jensen"),
        ("christopher.montgomery-smith@example.test", "christopher.montgome"),
        ("o'brien+test@example.test", "o'brien_test"),
        ("a@b@example.test", "a_b"),
        ("trailing.@example.test", "trailing"),
        ("short", "short"),
        ("tab\there@x", "tab_here"),
    ],
)
def test_ad_logon_name_takes_the_local_part_safely(user_name: str, sam: str) -> None:
    assert CODECS["ad-logon-name"].encode(user_name) == [sam.encode()]


def test_ad_mapping_derives_a_unique_logon_name_from_the_upn() -> None:
    user = load_mapping(AD_MAP).resource("User")
    (derived,) = user.derived
    assert (derived.ldap, derived.source, derived.codec.name, derived.unique) == (
        "sAMAccountName",
        "userName",
        "ad-logon-name",
        "domain",
    )
    assert user.find("userName", None)[0].ldap == "userPrincipalName"
    assert user.rdn.source == "userName"


@pytest.mark.parametrize(
    ("spec", "path", "message"),
    [
        ("{from: userName, type: ad-logon-name, unique: forest}", "unique", "expected one of"),
        ("{from: nickName, type: ad-logon-name, unique: domain}", "from", "not a mapped"),
        ("{from: userName, type: ad-logon, unique: domain}", "type", "unknown type"),
        ("{from: userName, typo: x}", "typo", "unknown key 'typo'"),
        ("userName", "", "expected {from:"),
    ],
)
def test_derived_spec_errors_name_their_yaml_path(spec: str, path: str, message: str) -> None:
    shipped = "sAMAccountName: {from: userName, type: ad-logon-name, unique: domain}"
    with pytest.raises(ConfigError) as err:
        parse_mapping(_ad_text(**{shipped: f"sAMAccountName: {spec}"}))
    where = "resources.User.derived.sAMAccountName" + (f".{path}" if path else "")
    assert any(p.path == where and message in p.message for p in err.value.problems), (
        err.value.problems
    )


def test_derived_names_are_numbered_and_cut_to_fit() -> None:
    from bridge.service.create import _suffixed

    assert [_suffixed("jdoe", n, 20) for n in (0, 1, 2, 10)] == ["jdoe", "jdoe1", "jdoe2", "jdoe10"]
    base = "abcdefghijklmnopqrst"
    assert [_suffixed(base, n, 20) for n in (0, 1, 10, 999)] == [
        base,
        base[:19] + "1",
        base[:18] + "10",
        base[:17] + "999",
    ]
