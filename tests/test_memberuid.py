"""Members held by value (issue 18 item 3): RFC 2307 ``memberUid`` groups and RFC 2307bis
groups holding ``member`` and ``memberUid`` in step, on the embedded directory, slapd and
389 DS with both clients.  Two mappings each: the shipped mappings/openldap-posix.yaml or
mappings/389ds-posix.yaml (dual: ``member`` plus a ``memberUid`` mirror) and its pure RFC 2307
variant (``memberUid`` only, a user's ``groups`` read from memberUid).  Every outcome is checked by a search of the directory that
does not go through the bridge."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from bridge.directory.base import Change
from bridge.mapping.load import parse_mapping
from devtools.faults import FaultyDirectory
from tests.conftest import Backend, make_client
from tests.helpers import GROUP_SCHEMA, SCIM, USER_SCHEMA, create_group, create_user, patch
from tests.posix_support import POSIX_BACKENDS, mapping_file, posix_backend, pure_mapping_text

GROUPS = "ou=groups,dc=example,dc=org"
PEOPLE = "ou=people,dc=example,dc=org"
OUTSIDE = "cn=svc-backup,dc=example,dc=org"  # outside every mapped base


@pytest.fixture(params=POSIX_BACKENDS)
def posix(request: pytest.FixtureRequest) -> Iterator[Backend]:
    yield from posix_backend(request, request.param)


@pytest.fixture(params=["dual", "rfc2307"])
def mb(request: pytest.FixtureRequest, posix: Backend) -> Backend:
    """The posix backend with the dual (shipped) or the pure memberUid mapping."""
    if request.param == "dual":
        return posix
    return dataclasses.replace(posix, mapping=parse_mapping(pure_mapping_text(posix_kind(posix))))


def posix_kind(b: Backend) -> str:
    """The posix_support kind whose shipped mapping ``b`` runs with."""
    return "ds389" if b.name == "ds389" else "embedded"


def dual(b: Backend) -> bool:
    member = b.mapping.resources["Group"].member_map
    return member is not None and member.mirror is not None


def held(b: Backend, cn: str) -> tuple[set[str], set[str]]:
    """(member DNs, memberUid values) of group ``cn``, read past the bridge."""
    found = b.independent_search(GROUPS, f"(cn={cn})", ["member", "memberUid"])
    assert len(found) == 1, found
    e = found[0]
    if b.info is None:
        members = {v.decode().lower() for v in e.get("member")}
        uids = {v.decode() for v in e.get("memberUid")}
    else:
        members = {str(v).lower() for v in e.entry_attributes_as_dict.get("member", [])}
        uids = {str(v) for v in e.entry_attributes_as_dict.get("memberUid", [])}
    return members, uids


def assert_members(b: Backend, cn: str, uids: set[str], groups: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    """Group ``cn`` holds exactly these users' uids (and, dual, their DNs plus ``groups``)."""
    members, values = held(b, cn)
    assert values == uids
    if dual(b):
        want = {f"uid={u},{PEOPLE}".lower() for u in uids} | {
            f"cn={g},{GROUPS}".lower() for g in groups
        }
        assert members == want
    else:
        assert members == set()


def ok(r: Any) -> None:
    """A group PATCH answers 204 (the default setting) or 200."""
    assert r.status_code in (200, 204), r.text


def shown(client: TestClient, gid: str) -> set[str]:
    r = client.get(f"{SCIM}/Groups/{gid}")
    assert r.status_code == 200, r.text
    return {m["value"] for m in r.json().get("members", [])}


def test_render_and_every_patch_shape(mb: Backend) -> None:
    client = make_client(mb)
    a, b, c = (
        create_user(client, n, displayName=n.upper())["id"] for n in ("mu-ada", "mu-bob", "mu-cy")
    )
    g = create_group(client, "mu-one", [a, b])
    gid = g["id"]
    assert {m["value"] for m in g["members"]} == {a, b}
    assert {m["display"] for m in g["members"]} == {"MU-ADA", "MU-BOB"}
    assert_members(mb, "mu-one", {"mu-ada", "mu-bob"})
    # Okta: add members (twice: the second is a no-op)
    for _ in range(2):
        r = patch(
            client, f"/Groups/{gid}", {"op": "add", "path": "members", "value": [{"value": c}]}
        )
        ok(r)
    assert_members(mb, "mu-one", {"mu-ada", "mu-bob", "mu-cy"})
    assert shown(client, gid) == {a, b, c}
    # Entra: remove members[value eq "id"] (twice: removing an absent member is a no-op)
    for _ in range(2):
        r = patch(client, f"/Groups/{gid}", {"op": "remove", "path": f'members[value eq "{b}"]'})
        ok(r)
    assert_members(mb, "mu-one", {"mu-ada", "mu-cy"})
    # Entra: remove with a value list
    r = patch(
        client, f"/Groups/{gid}", {"op": "remove", "path": "members", "value": [{"value": a}]}
    )
    ok(r)
    assert_members(mb, "mu-one", {"mu-cy"})
    # path-less replace with members
    r = patch(
        client,
        f"/Groups/{gid}",
        {"op": "replace", "value": {"members": [{"value": a}, {"value": b}]}},
    )
    ok(r)
    assert shown(client, gid) == {a, b}
    assert_members(mb, "mu-one", {"mu-ada", "mu-bob"})
    # remove all: the last value goes (posixGroup allows no memberUid, no placeholder)
    r = patch(client, f"/Groups/{gid}", {"op": "remove", "path": "members"})
    ok(r)
    assert_members(mb, "mu-one", set())
    assert shown(client, gid) == set()
    # PUT with members
    body = {"schemas": [GROUP_SCHEMA], "displayName": "mu-one", "members": [{"value": c}]}
    r = client.put(f"{SCIM}/Groups/{gid}", json=body)
    assert r.status_code == 200, r.text
    assert_members(mb, "mu-one", {"mu-cy"})
    # the last one removed with a filter: the attribute may become empty
    r = patch(client, f"/Groups/{gid}", {"op": "remove", "path": f'members[value eq "{c}"]'})
    ok(r)
    assert_members(mb, "mu-one", set())


def test_groups_are_user_members_only_in_the_value_attribute(mb: Backend) -> None:
    client = make_client(mb)
    a = create_user(client, "mu-ada")["id"]
    inner = create_group(client, "mu-inner")["id"]
    gid = create_group(client, "mu-outer", [a])["id"]
    r = patch(
        client, f"/Groups/{gid}", {"op": "add", "path": "members", "value": [{"value": inner}]}
    )
    if dual(mb):  # a nested group goes to member only
        ok(r)
        assert_members(mb, "mu-outer", {"mu-ada"}, {"mu-inner"})
        assert shown(client, gid) == {a, inner}
        r = patch(
            client, f"/Groups/{gid}", {"op": "remove", "path": f'members[value eq "{inner}"]'}
        )
        ok(r)
    else:  # a memberUid cannot name a group: 400 naming the id, nothing written
        assert r.status_code == 400 and r.json()["scimType"] == "invalidValue", r.text
        assert inner in r.json()["detail"]
    assert_members(mb, "mu-outer", {"mu-ada"})


def _add_raw_value(b: Backend, cn: str, value: str) -> None:
    b.directory.modify(f"cn={cn},{GROUPS}", [Change("add", "memberUid", (value.encode(),))])


def test_values_naming_no_visible_user_are_hidden_and_kept(mb: Backend) -> None:
    client = make_client(mb)
    a, b = (create_user(client, n)["id"] for n in ("mu-ada", "mu-bob"))
    gid = create_group(client, "mu-one", [a])["id"]
    _add_raw_value(mb, "mu-one", "legacy-nobody")
    hidden_dn = {OUTSIDE} if dual(mb) else set()
    if dual(mb):  # and a DN member outside every mapped base
        mb.directory.modify(f"cn=mu-one,{GROUPS}", [Change("add", "member", (OUTSIDE.encode(),))])
    assert shown(client, gid) == {a}
    body = {"schemas": [GROUP_SCHEMA], "displayName": "mu-one", "members": [{"value": b}]}
    assert client.put(f"{SCIM}/Groups/{gid}", json=body).status_code == 200
    assert held(mb, "mu-one")[1] == {"mu-bob", "legacy-nobody"}
    r = patch(client, f"/Groups/{gid}", {"op": "replace", "path": "members", "value": []})
    ok(r)
    assert held(mb, "mu-one") == (hidden_dn, {"legacy-nobody"})
    r = patch(client, f"/Groups/{gid}", {"op": "add", "path": "members", "value": [{"value": a}]})
    ok(r)
    r = patch(client, f"/Groups/{gid}", {"op": "remove", "path": "members"})
    ok(r)
    assert held(mb, "mu-one") == (hidden_dn, {"legacy-nobody"})
    assert shown(client, gid) == set()
    listed = client.get(f"{SCIM}/Groups", params={"filter": 'displayName eq "mu-one"'}).json()
    assert "members" not in listed["Resources"][0]


def test_filters_both_ways_and_user_groups(mb: Backend) -> None:
    client = make_client(mb)
    a, b = (create_user(client, n)["id"] for n in ("mu-ada", "mu-bob"))
    g1 = create_group(client, "mu-one", [a, b])["id"]
    g2 = create_group(client, "mu-two", [a])["id"]

    def ids(endpoint: str, flt: str) -> set[str]:
        r = client.get(f"{SCIM}/{endpoint}", params={"filter": flt})
        assert r.status_code == 200, r.text
        return {x["id"] for x in r.json()["Resources"]}

    assert ids("Groups", f'members.value eq "{a}"') == {g1, g2}
    listed = client.get(f"{SCIM}/Groups", params={"filter": 'displayName sw "mu-"'}).json()
    assert {g["id"]: {m["value"] for m in g["members"]} for g in listed["Resources"]} == {
        g1: {a, b},
        g2: {a},
    }
    assert ids("Groups", f'members.value eq "{b}"') == {g1}
    assert ids("Users", f'groups.value eq "{g2}"') == {a}
    assert ids("Users", f'userName sw "mu-" and not (groups.value eq "{g2}")') == {b}
    got = client.get(f"{SCIM}/Users/{a}").json()
    assert {x["value"] for x in got["groups"]} == {g1, g2}
    page = client.get(f"{SCIM}/Users", params={"filter": 'userName sw "mu-"'}).json()
    assert {
        u["userName"]: {x["value"] for x in u.get("groups", [])} for u in page["Resources"]
    } == {
        "mu-ada": {g1, g2},
        "mu-bob": {g1},
    }


def test_rename_updates_every_group_holding_the_old_uid(mb: Backend) -> None:
    client = make_client(mb)
    a, b = (create_user(client, n)["id"] for n in ("mu-ada", "mu-bob"))
    g1 = create_group(client, "mu-one", [a, b])["id"]
    create_group(client, "mu-two", [a])
    r = patch(client, f"/Users/{a}", {"op": "replace", "path": "userName", "value": "mu-ada2"})
    assert r.status_code == 200, r.text
    assert_members(mb, "mu-one", {"mu-ada2", "mu-bob"})
    assert_members(mb, "mu-two", {"mu-ada2"})
    assert shown(client, g1) == {a, b}
    body = {"schemas": [USER_SCHEMA], "userName": "mu-ada3"}
    r = client.put(f"{SCIM}/Users/{a}", json=body)
    assert r.status_code == 200, r.text
    assert_members(mb, "mu-one", {"mu-ada3", "mu-bob"})
    assert_members(mb, "mu-two", {"mu-ada3"})


def _faulty(b: Backend) -> tuple[FaultyDirectory, TestClient]:
    faulty = FaultyDirectory(b.directory)
    return faulty, make_client(dataclasses.replace(b, directory=faulty))


def test_rename_whose_group_update_fails_is_undone(mb: Backend) -> None:
    faulty, client = _faulty(mb)
    a = create_user(client, "mu-ada")["id"]
    for cn in ("mu-one", "mu-two", "mu-three"):
        create_group(client, cn, [a])
    # the second group's modify fails: the first group is put back, then the rename undone
    faulty.fail("modify", "busy", nth=2)
    ops = [
        {"op": "replace", "path": "userName", "value": "mu-ada2"},
        {"op": "replace", "path": "title", "value": "Countess"},
    ]
    r = patch(client, f"/Users/{a}", *ops)
    assert r.status_code == 503, r.text
    assert "the change was undone" in r.json()["detail"]
    user = client.get(f"{SCIM}/Users/{a}").json()
    assert user["userName"] == "mu-ada" and "title" not in user
    for cn in ("mu-one", "mu-two", "mu-three"):
        assert_members(mb, cn, {"mu-ada"})
    assert mb.independent_search(PEOPLE, "(uid=mu-ada2)", ["uid"]) == []


def test_failed_undo_says_what_was_left(mb: Backend) -> None:
    faulty, client = _faulty(mb)
    a = create_user(client, "mu-ada")["id"]
    for cn in ("mu-one", "mu-two"):
        create_group(client, cn, [a])
    faulty.fail("modify", "busy", nth=2)  # the second group's update
    faulty.fail("modify", "busy", nth=3)  # then putting the first group back
    r = patch(client, f"/Users/{a}", {"op": "replace", "path": "userName", "value": "mu-ada2"})
    assert r.status_code == 503, r.text
    detail = r.json()["detail"]
    first = next(dn for op, dn in faulty.calls if op == "modify" and dn.startswith("cn=mu-"))
    assert "what was left" in detail and first in detail, detail
    left = first.split(",")[0][3:]
    other = "mu-two" if left == "mu-one" else "mu-one"
    # as told: that group holds the new value, the other one the old; the user is renamed back
    assert held(mb, left)[1] == {"mu-ada2"}
    assert held(mb, other)[1] == {"mu-ada"}
    assert client.get(f"{SCIM}/Users/{a}").json()["userName"] == "mu-ada"


def test_delete_takes_the_uid_out_of_every_group(mb: Backend) -> None:
    client = make_client(mb)
    a, b = (create_user(client, n)["id"] for n in ("mu-ada", "mu-bob"))
    g1 = create_group(client, "mu-one", [a, b])["id"]
    create_group(client, "mu-two", [a])
    assert client.delete(f"{SCIM}/Users/{a}").status_code == 204
    assert_members(mb, "mu-one", {"mu-bob"})
    assert_members(mb, "mu-two", set())
    # a new account with the same uid inherits nothing
    again = create_user(client, "mu-ada")["id"]
    assert shown(client, g1) == {b}
    assert "groups" not in client.get(f"{SCIM}/Users/{again}").json()


def test_deprovision_remove_groups_takes_the_uid_out(posix: Backend) -> None:
    kind = posix_kind(posix)
    for text in (mapping_file(kind).read_text(), pure_mapping_text(kind)):
        marker = "    base_filter: (objectClass=posixAccount)\n"
        assert marker in text
        policy = "    deprovision: {on_deactivate: [disable, remove_groups]}\n"
        b = dataclasses.replace(posix, mapping=parse_mapping(text.replace(marker, marker + policy)))
        client = make_client(b)
        a, bob = (create_user(client, n)["id"] for n in ("mu-ada", "mu-bob"))
        create_group(client, "mu-one", [a, bob])
        r = patch(client, f"/Users/{a}", {"op": "replace", "path": "active", "value": False})
        assert r.status_code == 200, r.text
        assert_members(b, "mu-one", {"mu-bob"})
        for rid in (a, bob):
            client.delete(f"{SCIM}/Users/{rid}")
        gid = client.get(f"{SCIM}/Groups", params={"filter": 'displayName eq "mu-one"'})
        client.delete(f"{SCIM}/Groups/{gid.json()['Resources'][0]['id']}")


def test_value_resolution_is_batched(mb: Backend) -> None:
    """A group's values are resolved in batched ORs, never one search per value."""
    faulty, client = _faulty(mb)
    users = [create_user(client, f"mu-u{i:03d}")["id"] for i in range(30)]
    gid = create_group(client, "mu-big", users)["id"]
    faulty.calls.clear()
    assert shown(client, gid) == set(users)
    people = [dn for op, dn in faulty.calls if op == "search" and dn == PEOPLE]
    assert len(people) <= 1, faulty.calls


def test_a_retried_large_add_reads_the_values_once(mb: Backend) -> None:
    """An IdP re-sending 25 members already held: a no-op, the value attribute read once
    (not one probe per value)."""
    faulty, client = _faulty(mb)
    users = [create_user(client, f"mu-u{i:03d}")["id"] for i in range(25)]
    gid = create_group(client, "mu-big", users)["id"]
    group_dn = f"cn=mu-big,{GROUPS}"
    faulty.calls.clear()
    value = [{"value": u} for u in users]
    ok(patch(client, f"/Groups/{gid}", {"op": "add", "path": "members", "value": value}))
    assert_members(mb, "mu-big", {f"mu-u{i:03d}" for i in range(25)})
    probes = [dn for op, dn in faulty.calls if op == "search" and dn.lower() == group_dn]
    assert len(probes) <= 4, probes


def test_values_are_never_dereferenced(mb: Backend) -> None:
    """The dereference control follows DNs: a memberUid is not asked for with it."""
    from bridge.service.lookup import Lookup

    specs = Lookup(mb.mapping, mb.directory).derefs(mb.mapping.resources["Group"])
    assert all(d.attr.lower() != "memberuid" for d in specs), specs


def test_delete_keeps_a_groupofnames_placeholder_in_step(posix: Backend) -> None:
    """RFC 2307bis with groupOfNames (a MUST member): when taking the last member out is
    refused (objectClassViolation, injected here), the placeholder goes in with the same
    modify that deletes the DN and the uid."""
    placeholder = "cn=empty-placeholder,dc=example,dc=org"
    text = mapping_file(posix_kind(posix)).read_text()
    marker = "    base_filter: (objectClass=posixGroup)\n"
    assert marker in text
    mapping = parse_mapping(text.replace(marker, f"{marker}    empty_member: {placeholder}\n"))
    b = dataclasses.replace(posix, mapping=mapping)
    faulty, client = _faulty(b)
    a = create_user(client, "mu-ada")["id"]
    create_group(client, "mu-one", [a])
    faulty.fail("modify", "objectClassViolation", nth=1)
    assert client.delete(f"{SCIM}/Users/{a}").status_code == 204
    members, values = held(b, "mu-one")
    assert members == {placeholder} and values == set()
