"""The shipped AD profile with the names IdPs really send (issue 15), on Samba AD with both
clients and mappings/active-directory.yaml unchanged: e-mail/UPN userNames (Okta's login,
Entra's userPrincipalName, OneLogin's and JumpCloud's e-mail), the derived sAMAccountName,
collision-safe CNs, membership no-ops with AD's own result codes, startIndex past the end, and
an absent ``active``."""

from __future__ import annotations

import concurrent.futures as cf
from typing import Any

import ldap3
import pytest

from bridge.directory.base import Add, Change, Modify
from devtools.faults import FaultyDirectory
from tests.helpers import GROUP_SCHEMA, SCIM, USER_SCHEMA, create_group, create_user, patch
from tests.integration.conftest import AD

pytestmark = pytest.mark.samba


def sam_of(ad: AD, upn: str) -> str:
    found = ad.entry(ad.info.base_dn, f"(userPrincipalName={upn})", ["sAMAccountName"])
    assert len(found) == 1, found
    return str(found[0]["samaccountname"][0].decode())


def member_dns(ad: AD, gid: str) -> set[str]:
    group = ad.client.get(f"{SCIM}/Groups/{gid}").json()
    return {m["value"] for m in group.get("members", [])}


# ---------------------------------------------------------------------------- derived names
@pytest.mark.parametrize(
    ("upn", "sam"),
    [
        ("Barbara.Jensen@example.test", "Barbara.Jensen"),
        ("christopher.montgomery-smith@example.test", "christopher.montgome"),
        ("o'brien+test@example.test", "o'brien_test"),
        ('a"b/c\\d[e]f:g;h|i=j,k*l?m<n>o@example.test', "a_b_c_d_e_f_g_h_i_j_"),
        ("trailing.@example.test", "trailing"),
    ],
)
def test_idp_user_names_create_with_a_derived_logon_name(ad: AD, upn: str, sam: str) -> None:
    r = ad.client.post(
        f"{SCIM}/Users",
        json={"schemas": [USER_SCHEMA], "userName": upn, "name": {"givenName": "G"}},
    )
    assert r.status_code == 201, r.text
    assert r.json()["userName"] == upn
    assert sam_of(ad, upn) == sam
    entry = ad.user(sam, ["userPrincipalName"])
    assert entry["userprincipalname"] == [upn.encode()]
    quoted = upn.replace("\\", "\\\\").replace('"', '\\"')
    listed = ad.client.get(f"{SCIM}/Users", params={"filter": f'userName eq "{quoted}"'}).json()
    assert [u["id"] for u in listed["Resources"]] == [r.json()["id"]]


def test_same_local_part_gets_numbered_logon_names(ad: AD) -> None:
    for domain in ("a.test", "b.test", "c.test"):
        create_user(ad.client, f"jdoe@{domain}")
    assert [sam_of(ad, f"jdoe@{d}") for d in ("a.test", "b.test", "c.test")] == [
        "jdoe",
        "jdoe1",
        "jdoe2",
    ]
    long = "abcdefghijklmnopqrstuvwxyz"
    for domain in ("a.test", "b.test"):
        create_user(ad.client, f"{long}@{domain}")
    assert sam_of(ad, f"{long}@a.test") == long[:20]
    assert sam_of(ad, f"{long}@b.test") == long[:19] + "1"  # cut so the suffix fits in 20


def test_logon_name_is_unique_across_users_and_groups(ad: AD) -> None:
    """sAMAccountName is one namespace in the domain, whatever the object class.  (The UPNs
    are in another suffix than the domain's: Samba refuses helpdesk@example.test while an
    account named helpdesk exists, its implied UPN.)"""
    g = create_group(ad.client, "helpdesk")
    create_user(ad.client, "helpdesk@partner.test")
    assert sam_of(ad, "helpdesk@partner.test") == "helpdesk1"
    create_group(ad.client, "jsmith")
    assert ad.client.get(f"{SCIM}/Groups/{g['id']}").status_code == 200
    create_user(ad.client, "jsmith@partner.test")
    assert sam_of(ad, "jsmith@partner.test") == "jsmith1"
    create_group(ad.client, "Jsmith1")  # taken by the user, case-insensitively
    groups = ad.entry(ad.info.groups_dn, "(cn=Jsmith1)", ["sAMAccountName"])
    assert groups[0]["samaccountname"] == [b"Jsmith11"]


def test_racing_creates_for_one_base_name_all_succeed(ad: AD) -> None:
    def create(i: int) -> int:
        body = {"schemas": [USER_SCHEMA], "userName": f"racer@d{i}.test", "active": True}
        return ad.client.post(f"{SCIM}/Users", json=body).status_code

    with cf.ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(create, range(4)))
    assert codes == [201] * 4
    names = {sam_of(ad, f"racer@d{i}.test").lower() for i in range(4)}
    assert names == {"racer", "racer1", "racer2", "racer3"}


def test_lost_race_for_a_logon_name_retries_with_the_next(ad: AD) -> None:
    """The name is taken between the search and the add (entryAlreadyExists, 00002071 on
    Samba): the create takes the next free name instead of failing."""

    def steal() -> None:
        ad.ldap(
            lambda c: c.add(
                f"CN=thief,{ad.info.people_dn}",
                ["top", "person", "organizationalPerson", "user"],
                {"sAMAccountName": "victim"},
            )
        )

    racing = _Racing(ad.directory, "add", steal)
    client = _client(ad, racing)
    r = client.post(f"{SCIM}/Users", json={"schemas": [USER_SCHEMA], "userName": "victim@x.test"})
    assert r.status_code == 201, r.text
    assert sam_of(ad, "victim@x.test") == "victim1"


def test_user_name_taken_between_check_and_add_is_409(ad: AD) -> None:
    """Another account gets the UPN after the uniqueness check (in a child OU, so the CNs do
    not collide): AD refuses the add with constraintViolation 0000202F, a 409 here."""
    sub = f"OU=Sub,{ad.info.people_dn}"

    def steal() -> None:
        def add(c: ldap3.Connection) -> None:
            assert c.add(sub, ["top", "organizationalUnit"]), c.result
            assert c.add(
                f"CN=other,{sub}",
                ["top", "person", "organizationalPerson", "user"],
                {"sAMAccountName": "other", "userPrincipalName": "taken@example.test"},
            ), c.result

        ad.ldap(add)

    client = _client(ad, _Racing(ad.directory, "add", steal))
    r = client.post(
        f"{SCIM}/Users", json={"schemas": [USER_SCHEMA], "userName": "taken@example.test"}
    )
    assert r.status_code == 409 and r.json()["scimType"] == "uniqueness", r.text
    assert ad.entry(ad.info.people_dn, "(sAMAccountName=taken)", ["1.1"]) == []


def test_same_display_name_in_one_ou(ad: AD) -> None:
    a = create_user(ad.client, "john.smith@example.test", displayName="John Smith")
    b = create_user(ad.client, "john.smith2@example.test", displayName="John Smith")
    assert a["id"] != b["id"]
    found = ad.entry(ad.info.people_dn, "(displayName=John Smith)", ["cn"])
    assert len(found) == 2


def test_same_user_name_twice_is_409(ad: AD) -> None:
    create_user(ad.client, "dup@example.test")
    r = ad.client.post(
        f"{SCIM}/Users", json={"schemas": [USER_SCHEMA], "userName": "DUP@example.test"}
    )
    assert r.status_code == 409 and r.json()["scimType"] == "uniqueness"
    assert len(ad.entry(ad.info.base_dn, "(userPrincipalName=dup@example.test)", ["1.1"])) == 1


def test_concurrent_creates_of_one_user_name_one_wins(ad: AD) -> None:
    body = {"schemas": [USER_SCHEMA], "userName": "once@example.test", "active": True}
    with cf.ThreadPoolExecutor(4) as pool:
        codes = sorted(
            pool.map(lambda _: ad.client.post(f"{SCIM}/Users", json=body).status_code, range(4))
        )
    assert codes == [201, 409, 409, 409]
    assert len(ad.entry(ad.info.base_dn, "(userPrincipalName=once@example.test)", ["1.1"])) == 1


# ---------------------------------------------------------------------------- absent active
def test_create_without_active_is_enabled(ad: AD) -> None:
    u = create_user(ad.client, "Kim.Lee@example.test", name={"givenName": "Kim"})
    assert u["active"] is True
    assert ad.uac("Kim.Lee") == 512
    listed = ad.client.get(f"{SCIM}/Users", params={"filter": "active eq true"}).json()
    assert [x["id"] for x in listed["Resources"]] == [u["id"]]


# ---------------------------------------------------------------------------- memberships
@pytest.fixture
def team(ad: AD) -> dict[str, Any]:
    users = [create_user(ad.client, f"m{i}@example.test") for i in range(3)]
    group = create_group(ad.client, "Team", [users[0]["id"], users[1]["id"]])
    return {"users": [u["id"] for u in users], "group": group["id"]}


def test_okta_combined_membership_patch(ad: AD, team: dict[str, Any]) -> None:
    """Okta removes by filter, then adds back the members it keeps (already there: AD answers
    entryAlreadyExists for them)."""
    u0, u1, u2 = team["users"]
    r = patch(
        ad.client,
        f"/Groups/{team['group']}",
        {"op": "remove", "path": f'members[value eq "{u0}"]'},
        {"op": "add", "path": "members", "value": [{"value": u1}, {"value": u2}]},
    )
    assert r.status_code in (200, 204), r.text
    assert member_dns(ad, team["group"]) == {u1, u2}


def test_entra_re_add_of_a_member_is_a_no_op(ad: AD, team: dict[str, Any]) -> None:
    u0, u1, _ = team["users"]
    r = patch(
        ad.client,
        f"/Groups/{team['group']}",
        {"op": "Add", "path": "members", "value": [{"value": u0}]},
    )
    assert r.status_code in (200, 204), r.text
    assert member_dns(ad, team["group"]) == {u0, u1}


def test_removing_an_absent_member_is_a_no_op(ad: AD, team: dict[str, Any]) -> None:
    u0, u1, u2 = team["users"]
    r = patch(
        ad.client,
        f"/Groups/{team['group']}",
        {"op": "Remove", "path": "members", "value": [{"value": u2}]},
    )
    assert r.status_code in (200, 204), r.text
    r = patch(  # both at once, and a real change with them
        ad.client,
        f"/Groups/{team['group']}",
        {"op": "remove", "path": f'members[value eq "{u2}"]'},
        {"op": "add", "path": "members", "value": [{"value": u0}]},
        {"op": "remove", "path": f'members[value eq "{u1}"]'},
    )
    assert r.status_code in (200, 204), r.text
    assert member_dns(ad, team["group"]) == {u0}


@pytest.mark.parametrize("race", ["added", "removed"])
def test_put_members_when_another_writer_got_there_first(
    ad: AD, team: dict[str, Any], race: str
) -> None:
    """PUT computes its member delta from the entry it read; another writer may make it a
    no-op before the modify lands (AD: entryAlreadyExists / unwillingToPerform)."""
    u0, u1, u2 = team["users"]
    group_dn = ad.entry(ad.info.groups_dn, "(cn=Team)", ["1.1"])[0]["dn"]
    target = ad.user("m2" if race == "added" else "m1")["dn"]
    op = ldap3.MODIFY_ADD if race == "added" else ldap3.MODIFY_DELETE
    racing = _Racing(
        ad.directory,
        "modify",
        lambda: ad.ldap(lambda c: c.modify(group_dn, {"member": [(op, [target])]})),
    )
    want = [u0, u1, u2] if race == "added" else [u0]
    r = _client(ad, racing).put(
        f"{SCIM}/Groups/{team['group']}",
        json={
            "schemas": [GROUP_SCHEMA],
            "displayName": "Team",
            "members": [{"value": v} for v in want],
        },
    )
    assert r.status_code == 200, r.text
    assert member_dns(ad, team["group"]) == set(want)


def test_direct_modify_keeps_refusing_real_errors(ad: AD, team: dict[str, Any]) -> None:
    """Only values that are really present/absent are dropped: a member DN that does not
    exist is still refused on add."""
    group_dn = ad.entry(ad.info.groups_dn, "(cn=Team)", ["1.1"])[0]["dn"]
    service = ad.client.app.state.service  # type: ignore[attr-defined]
    missing = f"CN=nobody,{ad.info.people_dn}".encode()
    with pytest.raises(Exception) as caught:
        service.writer.modify(group_dn, [Change("add", "member", (missing,))])
    assert "noSuchObject" in str(caught.value) or "does not exist" in str(caught.value)


# ---------------------------------------------------------------------------- paging
@pytest.mark.parametrize("start", [4, 1000000, 2**31, 10**20])
def test_start_index_past_the_end_is_an_empty_page(ad: AD, start: int) -> None:
    for i in range(3):
        create_user(ad.client, f"page{i}@example.test")
    r = ad.client.get(f"{SCIM}/Users", params={"startIndex": str(start), "count": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["totalResults"] == 3 and body.get("Resources", []) == []
    assert body["itemsPerPage"] == 0


# ---------------------------------------------------------------------------- helpers
class _Racing(FaultyDirectory):
    """Runs ``hook`` once, right before the first ``op`` (another writer getting there
    first), then lets the operation go to the directory."""

    def __init__(self, inner: Any, op: str, hook: Any):
        super().__init__(inner)
        self._op, self._hook = op, hook

    @property
    def secure(self) -> bool:  # LDAPS: the staged create may send passwords
        return bool(self.inner.secure)

    def _fire(self, op: str) -> None:
        if op == self._op and self._hook is not None:
            hook, self._hook = self._hook, None
            hook()

    def run_add(self, op: Add) -> Any:
        self._fire("add")
        return self.inner.run_add(op)

    def run_modify(self, op: Modify) -> Any:
        self._fire("modify")
        return self.inner.run_modify(op)


def _client(ad: AD, directory: Any) -> Any:
    from tests.conftest import Backend, make_client

    return make_client(Backend("samba", directory, ad.mapping, ad.info))
