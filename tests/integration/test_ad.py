"""The Active Directory profile through SCIM against a real Samba AD DC.

What test_crud.py checks on OpenLDAP, where it applies to AD, plus what only AD has: passwords
(sign-in by simple bind), userAccountControl, sAMAccountName rules, renames keeping objectGUID,
3,000-member groups (range retrieval, single-value member writes), nested groups and each
deprovisioning policy.  Samba is more lenient than Windows AD in places (tests/integration/
SAMBA.md): enabling without a password and missing range limits are covered by unit tests.
"""

from __future__ import annotations

import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import ldap3
import pytest

from bridge.directory.base import Change
from tests.helpers import (
    ENTERPRISE,
    GROUP_SCHEMA,
    SCIM,
    USER_SCHEMA,
    create_group,
    create_user,
    patch,
)
from tests.integration.conftest import AD, TREE_DELETE, ad_mapping_text, admin, build_ad

pytestmark = pytest.mark.samba

#: the documented variant of the shipped profile for IdPs that send short logon names
SHORT_NAMES = {
    "userName:                     {ldap: userPrincipalName, required: true, unique: true}": (
        "userName: {ldap: sAMAccountName, type: ad-samaccountname, required: true, unique: true}"
    )
}
PASSWORD = "Str0ng!Passw0rd"
NEW_PASSWORD = "An0ther!Passw0rd"
BIG = 3000
DONT_EXPIRE_PASSWORD = 0x10000


def bind(info: Any, dn: str, password: str) -> tuple[bool, str]:
    tls = ldap3.Tls(
        ca_certs_file=info.ca_file, validate=ssl.CERT_REQUIRED, valid_names=["localhost"]
    )
    server = ldap3.Server(info.host, 636, use_ssl=True, tls=tls, get_info=ldap3.NONE)
    conn = ldap3.Connection(server, dn, password)
    try:
        ok = conn.bind()
        return ok, str(conn.result.get("message", ""))
    finally:
        conn.unbind()


def user_dn(ad: AD, sam: str) -> str:
    return str(ad.user(sam)["dn"])


def new_user(ad: AD, name: str, **extra: Any) -> dict[str, Any]:
    return create_user(ad.client, name, **{"password": PASSWORD, "active": True, **extra})


# ---------------------------------------------------------------------------- CRUD
def test_create_get_delete_user(ad: AD) -> None:
    boss = new_user(ad, "boss")
    body = {
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "userName": "Barbara.Jensen@example.test",
        "externalId": "okta-00u1",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "displayName": "Babs Jensen",
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": True}],
        "phoneNumbers": [
            {"value": "555-555-8377", "type": "work"},
            {"value": "555-555-0000", "type": "mobile"},
        ],
        "title": "Tour Guide",
        "active": True,
        "password": PASSWORD,
        ENTERPRISE: {
            "employeeNumber": "701984",
            "department": "Tour Operations",
            "organization": "Example",
            "manager": {"value": boss["id"]},
        },
    }
    r = ad.client.post(f"{SCIM}/Users", json=body)
    assert r.status_code == 201, r.text
    user = r.json()
    assert user["userName"] == "Barbara.Jensen@example.test"
    assert user["externalId"] == "okta-00u1"
    assert user["name"] == {"givenName": "Barbara", "familyName": "Jensen"}
    assert user["emails"] == [{"value": "bjensen@example.com", "type": "work", "primary": True}]
    assert {(p["type"], p["value"]) for p in user["phoneNumbers"]} == {
        ("work", "555-555-8377"),
        ("mobile", "555-555-0000"),
    }
    assert user[ENTERPRISE]["employeeNumber"] == "701984"
    assert user[ENTERPRISE]["organization"] == "Example"
    assert user[ENTERPRISE]["manager"]["value"] == boss["id"]
    assert user["active"] is True and "password" not in user
    # objectGUID in canonical form; AD's timestamps and uSNChanged as the version
    assert len(user["id"]) == 36 and user["id"].count("-") == 4
    assert user["meta"]["created"].endswith("Z") and "T" in user["meta"]["created"]
    assert user["meta"]["version"].startswith('W/"')
    # named CN=<userName> (the UPN) in OU=People, with the sAMAccountName derived from it,
    # enabled as a NORMAL_ACCOUNT without PASSWD_NOTREQD
    entry = ad.user("Barbara.Jensen", ["userAccountControl", "userPrincipalName", "name"])
    assert entry["dn"] == f"CN=Barbara.Jensen@example.test,{ad.info.people_dn}"
    assert entry["userprincipalname"] == [b"Barbara.Jensen@example.test"]
    assert entry["useraccountcontrol"] == [b"512"]
    assert entry["name"] == [b"Barbara.Jensen@example.test"]

    got = ad.client.get(f"{SCIM}/Users/{user['id']}")
    assert got.status_code == 200 and got.json() == user
    assert ad.client.delete(f"{SCIM}/Users/{user['id']}").status_code == 204
    assert ad.client.get(f"{SCIM}/Users/{user['id']}").status_code == 404
    assert ad.entry(ad.info.base_dn, "(sAMAccountName=Barbara.Jensen)", ["1.1"]) == []


def test_unknown_and_malformed_ids_are_404(ad: AD) -> None:
    assert ad.client.get(f"{SCIM}/Users/not-a-guid").status_code == 404
    assert ad.client.get(f"{SCIM}/Users/6b3a0a51-0000-4000-8000-000000000000").status_code == 404


def test_duplicate_user_name_is_409(ad: AD) -> None:
    create_user(ad.client, "dup")
    r = ad.client.post(f"{SCIM}/Users", json={"schemas": [USER_SCHEMA], "userName": "dup"})
    assert r.status_code == 409 and r.json()["scimType"] == "uniqueness"


@pytest.mark.parametrize(
    ("name", "why"), [("bjensen@example.com", "@"), ("a/b", "/"), ("x" * 21, "at most 20")]
)
def test_bad_sam_account_name_is_400_saying_why(
    ad_variant: Callable[..., AD], name: str, why: str
) -> None:
    """With the short-name variant, userName is the sAMAccountName as the IdP sends it."""
    ad = ad_variant(**SHORT_NAMES)
    r = ad.client.post(f"{SCIM}/Users", json={"schemas": [USER_SCHEMA], "userName": name})
    assert r.status_code == 400 and r.json()["scimType"] == "invalidValue"
    assert why in r.json()["detail"] and "sAMAccountName" in r.json()["detail"]


def test_unknown_member_id_is_400_naming_it(ad: AD) -> None:
    missing = "6b3a0a51-0000-4000-8000-000000000000"
    r = ad.client.post(
        f"{SCIM}/Groups",
        json={"schemas": [GROUP_SCHEMA], "displayName": "X", "members": [{"value": missing}]},
    )
    assert r.status_code == 400 and r.json()["scimType"] == "invalidValue"
    assert missing in r.json()["detail"]
    assert ad.entry(ad.info.groups_dn, "(objectClass=group)", ["1.1"]) == []


def test_rename_to_an_invalid_name_is_400_and_changes_nothing(
    ad_variant: Callable[..., AD],
) -> None:
    ad = ad_variant(**SHORT_NAMES)
    u = new_user(ad, "keepme", title="Eng")
    r = ad.client.put(
        f"{SCIM}/Users/{u['id']}",
        json={"schemas": [USER_SCHEMA], "userName": "keep@me", "title": "Boss"},
    )
    assert r.status_code == 400 and "@" in r.json()["detail"]
    again = ad.client.get(f"{SCIM}/Users/{u['id']}").json()
    assert again["userName"] == "keepme" and again["title"] == "Eng"


def test_list_with_paging(ad: AD) -> None:
    for i in range(7):
        create_user(ad.client, f"user{i}")
    page = ad.client.get(f"{SCIM}/Users", params={"startIndex": 3, "count": 2}).json()
    assert page["totalResults"] == 7 and page["startIndex"] == 3 and page["itemsPerPage"] == 2
    assert [u["userName"] for u in page["Resources"]] == ["user2", "user3"]


def test_put_replaces_clears_and_keeps_user_account_control(ad: AD) -> None:
    u = new_user(ad, "carol", displayName="Carol", title="Eng")
    # an administrator set "password never expires": PUTs must keep that bit
    ad.ldap(
        lambda c: c.modify(
            user_dn(ad, "carol"),
            {"userAccountControl": [(ldap3.MODIFY_REPLACE, [str(512 | DONT_EXPIRE_PASSWORD)])]},
        )
    )
    r = ad.client.put(
        f"{SCIM}/Users/{u['id']}",
        json={"schemas": [USER_SCHEMA], "userName": "carol", "displayName": "Carol C"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["displayName"] == "Carol C" and "title" not in r.json()
    assert r.json()["active"] is True  # a PUT without active leaves the account as it is
    assert ad.uac("carol") == 512 | DONT_EXPIRE_PASSWORD
    sent = [c.attr.lower() for _, changes in ad.directory.modifies for c in changes]
    assert "useraccountcontrol" not in sent[-2:]  # nothing sent when nothing changed (LAM#340)


# ---------------------------------------------------------------------------- passwords, active
def test_password_sign_in_disable_and_re_enable(ad: AD) -> None:
    u = new_user(ad, "signin")
    dn = user_dn(ad, "signin")
    assert bind(ad.info, dn, PASSWORD)[0]
    ad.ldap(
        lambda c: c.modify(
            dn, {"userAccountControl": [(ldap3.MODIFY_REPLACE, [str(512 | DONT_EXPIRE_PASSWORD)])]}
        )
    )

    body = {"schemas": [USER_SCHEMA], "userName": "signin", "active": False}
    r = ad.client.put(f"{SCIM}/Users/{u['id']}", json=body)
    assert r.status_code == 200 and r.json()["active"] is False
    assert ad.uac("signin") == 512 | DONT_EXPIRE_PASSWORD | 2  # only bit 0x2 changed
    ok, message = bind(ad.info, dn, PASSWORD)
    assert not ok and "data 533" in message  # AD: account disabled

    r = ad.client.put(f"{SCIM}/Users/{u['id']}", json={**body, "active": True})
    assert r.status_code == 200 and r.json()["active"] is True
    assert ad.uac("signin") == 512 | DONT_EXPIRE_PASSWORD
    assert bind(ad.info, dn, PASSWORD)[0]


def test_patch_deactivate_keeps_other_bits_then_reactivate(ad: AD) -> None:
    """Okta and Entra deactivate with PATCH replace active=false (Entra: the string "False")."""
    u = new_user(ad, "patched")
    dn = user_dn(ad, "patched")
    ad.ldap(
        lambda c: c.modify(
            dn, {"userAccountControl": [(ldap3.MODIFY_REPLACE, [str(512 | DONT_EXPIRE_PASSWORD)])]}
        )
    )
    r = patch(ad.client, f"/Users/{u['id']}", {"op": "Replace", "path": "active", "value": "False"})
    assert r.status_code in (200, 204), r.text
    assert ad.uac("patched") == 512 | DONT_EXPIRE_PASSWORD | 2
    assert not bind(ad.info, dn, PASSWORD)[0]
    r = patch(ad.client, f"/Users/{u['id']}", {"op": "replace", "value": {"active": True}})
    assert r.status_code in (200, 204), r.text
    assert ad.uac("patched") == 512 | DONT_EXPIRE_PASSWORD
    assert bind(ad.info, dn, PASSWORD)[0]


def test_patch_password_and_rename(ad: AD) -> None:
    u = new_user(ad, "pwpatch@example.test")
    r = patch(
        ad.client,
        f"/Users/{u['id']}",
        {"op": "replace", "path": "password", "value": NEW_PASSWORD},
        {"op": "replace", "path": "userName", "value": "pwpatched@example.test"},
    )
    assert r.status_code in (200, 204), r.text
    got = ad.client.get(f"{SCIM}/Users/{u['id']}").json()
    assert got["userName"] == "pwpatched@example.test"
    # the derived sAMAccountName is kept; the entry is renamed after the new UPN
    entry = ad.user("pwpatch", ["userPrincipalName"])
    assert entry["dn"] == f"CN=pwpatched@example.test,{ad.info.people_dn}"
    assert bind(ad.info, entry["dn"], NEW_PASSWORD)[0]


def test_patch_weak_password_is_400(ad: AD) -> None:
    u = new_user(ad, "weakpatch")
    r = patch(ad.client, f"/Users/{u['id']}", {"op": "replace", "path": "password", "value": "abc"})
    assert r.status_code == 400 and "password policy" in r.json()["detail"]
    assert bind(ad.info, user_dn(ad, "weakpatch"), PASSWORD)[0]


def test_password_change_by_put(ad: AD) -> None:
    u = new_user(ad, "changer")
    r = ad.client.put(
        f"{SCIM}/Users/{u['id']}",
        json={"schemas": [USER_SCHEMA], "userName": "changer", "password": NEW_PASSWORD},
    )
    assert r.status_code == 200, r.text
    dn = user_dn(ad, "changer")
    assert bind(ad.info, dn, NEW_PASSWORD)[0] and not bind(ad.info, dn, PASSWORD)[0]


def test_weak_password_is_400_and_leaves_nothing_behind(ad: AD) -> None:
    r = ad.client.post(
        f"{SCIM}/Users",
        json={"schemas": [USER_SCHEMA], "userName": "weak", "password": "abc", "active": True},
    )
    assert r.status_code == 400 and r.json()["scimType"] == "invalidValue"
    assert "password policy" in r.json()["detail"] and "abc" not in r.json()["detail"]
    assert ad.entry(ad.info.base_dn, "(sAMAccountName=weak)", ["1.1"]) == []  # compensated


def test_create_order_is_add_then_password_then_enable(ad: AD) -> None:
    new_user(ad, "ordered")
    dn = user_dn(ad, "ordered")
    steps = [[c.attr for c in changes] for d, changes in ad.directory.modifies if d == dn]
    assert steps == [["unicodePwd"], ["userAccountControl"]]


def test_create_without_password_gets_a_random_one_and_can_be_enabled(ad: AD) -> None:
    """Entra sends no password for federated users; Windows AD refuses to enable an account
    without one (Samba does not), so the AD map generates one nobody knows."""
    u = create_user(ad.client, "sso-only", active=True)
    assert u["active"] is True and "password" not in u
    entry = ad.user("sso-only", ["userAccountControl", "pwdLastSet"])
    assert entry["useraccountcontrol"] == [b"512"]
    assert int(entry["pwdlastset"][0]) > 0  # a password was set
    dn = entry["dn"]
    steps = [[c.attr for c in changes] for d, changes in ad.directory.modifies if d == dn]
    assert steps == [["unicodePwd"], ["userAccountControl"]]


@pytest.mark.parametrize("extra", [{}, {"active": None}], ids=["absent", "null"])
def test_create_without_active_is_active(ad: AD, extra: dict[str, Any]) -> None:
    """An absent (or null, RFC 7643 §2.5) active means active, as on slapd and the embedded
    directory (AD itself would create the account disabled)."""
    u = create_user(ad.client, "noflag@example.test", password=PASSWORD, **extra)
    assert u["active"] is True
    assert ad.uac("noflag") == 512
    assert bind(ad.info, user_dn(ad, "noflag"), PASSWORD)[0]


def test_create_without_active_or_password_is_active_with_a_generated_password(ad: AD) -> None:
    """OneLogin and JumpCloud send neither: the account is still usable through the IdP."""
    u = create_user(ad.client, "nothing@example.test")
    assert u["active"] is True
    entry = ad.user("nothing", ["userAccountControl", "pwdLastSet"])
    assert entry["useraccountcontrol"] == [b"512"] and int(entry["pwdlastset"][0]) > 0


def test_password_must_change(ad_variant: Callable[..., AD]) -> None:
    ad = ad_variant(**{"password_must_change: false": "password_must_change: true"})
    new_user(ad, "mustchange")
    entry = ad.user("mustchange", ["pwdLastSet"])
    assert entry["pwdlastset"] == [b"0"]
    ok, message = bind(ad.info, entry["dn"], PASSWORD)
    assert not ok and "data 773" in message  # AD: must change password at next logon


def test_start_tls_carries_passwords_too(samba_server: Any) -> None:
    from tests.integration.conftest import empty_ous

    empty_ous(samba_server)
    ad = build_ad(samba_server, urls=(samba_server.ldap_url,), start_tls=True)
    assert ad.directory.secure
    new_user(ad, "starttls")
    assert bind(samba_server, user_dn(ad, "starttls"), PASSWORD)[0]
    ad.directory.close()


# ---------------------------------------------------------------------------- rename / move
def test_rename_keeps_the_id_and_the_logon_name(ad: AD) -> None:
    u = new_user(ad, "dave@example.test")
    r = ad.client.put(
        f"{SCIM}/Users/{u['id']}",
        json={"schemas": [USER_SCHEMA], "userName": "david.jones@example.test"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["id"] == u["id"] and r.json()["userName"] == "david.jones@example.test"
    entry = ad.user("dave", ["cn", "name", "userPrincipalName"])  # sAMAccountName kept
    assert entry["dn"] == f"CN=david.jones@example.test,{ad.info.people_dn}"
    assert entry["name"] == [b"david.jones@example.test"]
    assert entry["userprincipalname"] == [b"david.jones@example.test"]
    got = ad.client.get(f"{SCIM}/Users/{u['id']}").json()
    assert got["userName"] == "david.jones@example.test"
    assert bind(ad.info, entry["dn"], PASSWORD)[0]


def test_group_rename_keeps_members_and_id(ad: AD) -> None:
    u = new_user(ad, "member1")
    g = create_group(ad.client, "Old Name", [u["id"]])
    r = ad.client.put(
        f"{SCIM}/Groups/{g['id']}",
        json={
            "schemas": [GROUP_SCHEMA],
            "displayName": "New Name",
            "members": [{"value": u["id"]}],
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["id"] == g["id"] and r.json()["displayName"] == "New Name"
    assert [m["value"] for m in r.json()["members"]] == [u["id"]]
    groups = ad.client.get(f"{SCIM}/Users/{u['id']}").json()["groups"]
    assert groups[0]["display"] == "New Name"


# ---------------------------------------------------------------------------- groups
GROUP_NAMES = ["Engineering", "R&D/Labs: Berlin", "a,b+c=d", 'quo"te <x>', "Zoë Ångström", "日本語"]


@pytest.mark.parametrize("name", GROUP_NAMES)
def test_group_names_round_trip(ad: AD, name: str) -> None:
    u = new_user(ad, "gm")
    g = create_group(ad.client, name, [u["id"]])
    assert g["displayName"] == name
    again = ad.client.get(f"{SCIM}/Groups/{g['id']}").json()
    assert again["displayName"] == name and [m["value"] for m in again["members"]] == [u["id"]]
    entry = ad.entry(ad.info.groups_dn, "(objectClass=group)", ["sAMAccountName", "groupType"])[0]
    assert entry["grouptype"] == [b"-2147483646"]
    sam = entry["samaccountname"][0].decode()
    assert not set(sam) & set('"/\\[]:;|=,+*?<>@')
    assert ad.client.delete(f"{SCIM}/Groups/{g['id']}").status_code == 204


def test_group_membership_by_put_and_empty_group(ad: AD) -> None:
    a, b = new_user(ad, "alice"), new_user(ad, "bob")
    g = create_group(ad.client, "Team", [a["id"], b["id"]])
    assert sorted(m["value"] for m in g["members"]) == sorted([a["id"], b["id"]])
    assert all(m["type"] == "User" for m in g["members"])
    put = ad.client.put(
        f"{SCIM}/Groups/{g['id']}",
        json={"schemas": [GROUP_SCHEMA], "displayName": "Team", "members": []},
    )
    assert put.status_code == 200, put.text
    assert "members" not in put.json()  # AD groups may be empty: no placeholder
    assert "groups" not in ad.client.get(f"{SCIM}/Users/{a['id']}").json()


def test_nested_groups(ad: AD, ad_variant: Callable[..., AD]) -> None:
    u = new_user(ad, "nested")
    inner = create_group(ad.client, "Inner", [u["id"]])
    outer = create_group(ad.client, "Outer", [inner["id"]])
    assert outer["members"] == [
        {
            "value": inner["id"],
            "$ref": f"https://scim.example.test{SCIM}/Groups/{inner['id']}",
            "display": "Inner",
            "type": "Group",
        }
    ]
    direct = ad.client.get(f"{SCIM}/Users/{u['id']}").json()["groups"]
    assert [(g["value"], g["type"]) for g in direct] == [(inner["id"], "direct")]
    # transitive groups (LDAP_MATCHING_RULE_IN_CHAIN), when the mapping asks for them
    deep = build_ad(
        ad.info, ad_mapping_text(**{"transitive_groups: false": "transitive_groups: true"})
    )
    groups = deep.client.get(f"{SCIM}/Users/{u['id']}").json()["groups"]
    assert sorted((g["value"], g["type"]) for g in groups) == sorted(
        [(inner["id"], "direct"), (outer["id"], "indirect")]
    )
    listed = deep.client.get(f"{SCIM}/Users").json()["Resources"]
    assert {g["type"] for g in listed[0]["groups"]} == {"direct", "indirect"}
    assert {g["display"] for g in listed[0]["groups"]} == {"Inner", "Outer"}
    deep.directory.close()


# ---------------------------------------------------------------------------- large groups
@pytest.fixture(scope="module")
def big(samba_server: Any) -> Iterator[dict[str, Any]]:
    """3,000 users in OU=BigPeople and one group holding all of them in OU=BigGroups, seeded
    once over LDAP (not through SCIM: 3,000 staged creates would take minutes)."""
    info = samba_server
    people, groups = f"OU=BigPeople,{info.base_dn}", f"OU=BigGroups,{info.base_dn}"
    conn = admin(info)
    t0 = time.monotonic()
    for ou in (groups, people):
        conn.delete(ou, controls=[TREE_DELETE])
    for ou in (people, groups):
        assert conn.add(ou, ["top", "organizationalUnit"]), conn.result
    dns = []
    for i in range(BIG):
        dn = f"CN=big{i:04d},{people}"
        assert conn.add(
            dn, ["top", "person", "organizationalPerson", "user"], {"sAMAccountName": f"big{i:04d}"}
        ), conn.result
        dns.append(dn)
    group_dn = f"CN=Everyone Big,{groups}"
    assert conn.add(group_dn, ["top", "group"], {"sAMAccountName": "everyone-big"}), conn.result
    assert conn.modify(group_dn, {"member": [(ldap3.MODIFY_ADD, dns)]}), conn.result
    extra = f"CN=big-extra,{people}"
    assert conn.add(
        extra, ["top", "person", "organizationalPerson", "user"], {"sAMAccountName": "big-extra"}
    ), conn.result
    conn.unbind()
    print(f"\nseeded {BIG} users and a {BIG}-member group in {time.monotonic() - t0:.1f}s")
    text = ad_mapping_text(
        **{
            "base_dn: OU=People,DC=example,DC=test": f"base_dn: {people}",
            "base_dn: OU=Groups,DC=example,DC=test": f"base_dn: {groups}",
        }
    )
    built = build_ad(info, text)
    yield {"ad": built, "group_dn": group_dn, "extra_dn": extra, "dns": dns}
    built.directory.close()


def test_big_group_reads_back_every_member(big: dict[str, Any]) -> None:
    ad: AD = big["ad"]
    found = ad.client.get(f"{SCIM}/Groups", params={"count": 10}).json()["Resources"]
    assert len(found) == 1
    t0 = time.monotonic()
    r = ad.client.get(f"{SCIM}/Groups/{found[0]['id']}")
    elapsed = time.monotonic() - t0
    assert r.status_code == 200
    members = r.json()["members"]
    assert len(members) == BIG and len({m["value"] for m in members}) == BIG
    assert {m["type"] for m in members} == {"User"}
    # the ids came with the member values (extended DN): they are the users' objectGUIDs
    first = ad.entry(
        members[0]["$ref"] and ad.info.base_dn, "(sAMAccountName=big0000)", ["objectGUID"]
    )[0]
    assert str(uuid.UUID(bytes_le=first["objectguid"][0])) in {m["value"] for m in members}
    assert elapsed < 10, f"GET of a {BIG}-member group took {elapsed:.1f}s"
    print(f"\nGET of a {BIG}-member group: {elapsed:.2f}s")
    slim = ad.client.get(
        f"{SCIM}/Groups/{found[0]['id']}", params={"excludedAttributes": "members"}
    ).json()
    assert "members" not in slim


def test_big_group_ranged_read_path(big: dict[str, Any]) -> None:
    """Samba does not enforce MaxValRange, so ask for a range explicitly: the answer comes back
    as member;range=0-999 and the client's own loop must read the other 2,000."""
    ad: AD = big["ad"]
    entry = ad.directory.read(big["group_dn"], ["member;range=0-999"])
    assert entry is not None and len(entry.get("member")) == BIG
    assert {v.decode().lower() for v in entry.get("member")} == {d.lower() for d in big["dns"]}


def test_big_group_patch_adds_and_removes_one_member(big: dict[str, Any]) -> None:
    ad: AD = big["ad"]
    gid = ad.client.get(f"{SCIM}/Groups").json()["Resources"][0]["id"]
    raw = ad.user("big-extra", ["objectGUID"])["objectguid"][0]
    extra_id = str(uuid.UUID(bytes_le=raw))
    ad.directory.modifies.clear()
    r = patch(
        ad.client,
        f"/Groups/{gid}",
        {"op": "add", "path": "members", "value": [{"value": extra_id}]},
    )
    assert r.status_code in (200, 204), r.text
    assert ad.directory.modifies == [
        (big["group_dn"], [Change("add", "member", (big["extra_dn"].encode(),))])
    ]
    ad.directory.modifies.clear()
    r = patch(
        ad.client, f"/Groups/{gid}", {"op": "remove", "path": f'members[value eq "{extra_id}"]'}
    )
    assert r.status_code in (200, 204), r.text
    assert ad.directory.modifies == [
        (big["group_dn"], [Change("delete", "member", (big["extra_dn"].encode(),))])
    ]
    members = ad.client.get(f"{SCIM}/Groups/{gid}").json()["members"]
    assert len(members) == BIG and extra_id not in {m["value"] for m in members}


def test_big_group_membership_changes_are_single_values(big: dict[str, Any]) -> None:
    ad: AD = big["ad"]
    gid = ad.client.get(f"{SCIM}/Groups").json()["Resources"][0]["id"]
    group = ad.client.get(f"{SCIM}/Groups/{gid}").json()
    listed = ad.client.get(f"{SCIM}/Users", params={"count": 1}).json()
    assert listed["totalResults"] == BIG + 1
    raw = ad.user("big-extra", ["objectGUID"])["objectguid"][0]
    extra_id = str(uuid.UUID(bytes_le=raw))
    members = [{"value": m["value"]} for m in group["members"]]
    ad.directory.modifies.clear()
    r = ad.client.put(
        f"{SCIM}/Groups/{gid}",
        json={
            "schemas": [GROUP_SCHEMA],
            "displayName": "Everyone Big",
            "members": [*members, {"value": extra_id}],
        },
    )
    assert r.status_code == 200 and len(r.json()["members"]) == BIG + 1
    assert ad.directory.modifies == [
        (big["group_dn"], [Change("add", "member", (big["extra_dn"].encode(),))])
    ]
    ad.directory.modifies.clear()
    r = ad.client.put(
        f"{SCIM}/Groups/{gid}",
        json={"schemas": [GROUP_SCHEMA], "displayName": "Everyone Big", "members": members},
    )
    assert r.status_code == 200 and len(r.json()["members"]) == BIG
    assert ad.directory.modifies == [
        (big["group_dn"], [Change("delete", "member", (big["extra_dn"].encode(),))])
    ]


# ---------------------------------------------------------------------------- deprovisioning
QUARANTINE = "OU=Quarantine,DC=example,DC=test"
DISABLED = "OU=Disabled,OU=People,DC=example,DC=test"


def test_delete_policy_default_deletes(ad: AD) -> None:
    u = new_user(ad, "gone")
    assert ad.client.delete(f"{SCIM}/Users/{u['id']}").status_code == 204
    assert ad.entry(ad.info.base_dn, "(sAMAccountName=gone)", ["1.1"]) == []
    assert ad.client.delete(f"{SCIM}/Users/{u['id']}").status_code == 404


def test_delete_policy_disable_strip_groups_quarantine(ad_variant: Callable[..., AD]) -> None:
    ad = ad_variant(
        **{"on_delete: [delete]": f'on_delete: [disable, remove_groups, {{move: "{QUARANTINE}"}}]'}
    )
    u = new_user(ad, "leaver")
    g = create_group(ad.client, "Staff", [u["id"]])
    assert ad.client.delete(f"{SCIM}/Users/{u['id']}").status_code == 204
    assert ad.client.get(f"{SCIM}/Users/{u['id']}").status_code == 404  # RFC 7644 §3.6
    entry = ad.user("leaver", ["userAccountControl", "memberOf"])
    assert entry["dn"] == f"CN=leaver,{QUARANTINE}"
    assert int(entry["useraccountcontrol"][0]) & 2 and not entry.get("memberof")
    assert "members" not in ad.client.get(f"{SCIM}/Groups/{g['id']}").json()
    assert not bind(ad.info, entry["dn"], PASSWORD)[0]
    assert ad.client.delete(f"{SCIM}/Users/{u['id']}").status_code == 404


def test_deactivate_policy_strip_groups_and_move_then_reactivate(
    ad_variant: Callable[..., AD],
) -> None:
    ad = ad_variant(
        **{
            "on_deactivate: [disable]": f'on_deactivate: [disable, remove_groups, {{move: "{DISABLED}"}}]'
        }
    )
    ad.ldap(lambda c: c.add(DISABLED, ["top", "organizationalUnit"]))
    u = new_user(ad, "pauser")
    g = create_group(ad.client, "Crew", [u["id"]])
    body = {"schemas": [USER_SCHEMA], "userName": "pauser", "active": False}
    r = ad.client.put(f"{SCIM}/Users/{u['id']}", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["active"] is False and "groups" not in r.json()
    assert r.json()["id"] == u["id"]
    assert ad.user("pauser")["dn"] == f"CN=pauser,{DISABLED}"
    assert "members" not in ad.client.get(f"{SCIM}/Groups/{g['id']}").json()
    assert ad.client.get(f"{SCIM}/Users/{u['id']}").json()["active"] is False  # still visible
    r = ad.client.put(f"{SCIM}/Users/{u['id']}", json={**body, "active": True})
    assert r.status_code == 200 and r.json()["active"] is True
    assert ad.user("pauser")["dn"] == f"CN=pauser,{ad.info.people_dn}"  # moved back
    assert bind(ad.info, user_dn(ad, "pauser"), PASSWORD)[0]


def test_patch_deactivate_runs_the_policy(ad_variant: Callable[..., AD]) -> None:
    ad = ad_variant(**{"on_deactivate: [disable]": "on_deactivate: [disable, remove_groups]"})
    u = new_user(ad, "okta-off")
    g = create_group(ad.client, "Okta Crew", [u["id"]])
    r = patch(ad.client, f"/Users/{u['id']}", {"op": "replace", "path": "active", "value": False})
    assert r.status_code in (200, 204), r.text
    assert ad.client.get(f"{SCIM}/Users/{u['id']}").json()["active"] is False
    assert "members" not in ad.client.get(f"{SCIM}/Groups/{g['id']}").json()


def test_deactivate_default_only_disables(ad: AD) -> None:
    u = new_user(ad, "stays")
    g = create_group(ad.client, "Keep", [u["id"]])
    r = ad.client.put(
        f"{SCIM}/Users/{u['id']}",
        json={"schemas": [USER_SCHEMA], "userName": "stays", "active": False},
    )
    assert r.status_code == 200 and r.json()["active"] is False
    assert [x["value"] for x in r.json()["groups"]] == [g["id"]]
    assert ad.user("stays")["dn"] == f"CN=stays,{ad.info.people_dn}"
