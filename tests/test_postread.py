"""PATCH/PUT with the post-read (RFC 4527) and matched-values (RFC 3876) controls (issue 4).

Where the directory offers both (slapd), adding a member to a group is three LDAP operations:
the find, which also brings the empty-group placeholder if the group holds it, the member id's
lookup, and the modify, whose post-read is the response.  Each test runs on the embedded
directory (neither control: the path of a directory without them), on slapd and on 389 DS
(post-read without matched values; groupOfUniqueNames has no placeholder to look for) with
both clients, also with the controls masked off, and checks the response against a GET
through a client that reads the entry back as before.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from bridge.directory.base import Change, Entry, Modify, Search
from bridge.directory.syntax import normalize_dn
from bridge.errors import DirectoryError
from bridge.mapping.load import parse_mapping
from bridge.service.facade import Service
from devtools.faults import Masked
from tests.conftest import Backend, make_client
from tests.helpers import PATCH_SCHEMA, SCIM, create_group, create_user, patch

NO_MEMBERS = {"excludedAttributes": "members"}
#: what each directory offers, as the tests ask for it
OFFERS = {
    "offered": {},
    "none": {"post_read": False, "matched_values": False},
    "no-deref": {"deref": False},
}


@pytest.fixture(params=list(OFFERS))
def offer(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def masked(backend: Backend, offer: str) -> Masked:
    return Masked(backend.directory, **OFFERS[offer])


@pytest.fixture
def scim(backend: Backend, masked: Masked) -> TestClient:
    """This module is about the PATCH/PUT response body: a group PATCH asking for no
    representation is answered 204 by default (issue 15, tests/test_group_patch_response.py),
    so these clients use ``BRIDGE_GROUP_PATCH_RESPONSE=full``, the 200-with-body mode."""
    return make_client(replace(backend, directory=masked), group_patch_response="full")


def _uses(masked: Masked, control: str) -> bool:
    return bool(getattr(masked.capabilities, control))


def _members(backend: Backend, dn: str) -> list[str]:
    entry = backend.directory.read(dn, [backend.member_attr])
    assert entry is not None
    return sorted(normalize_dn(v.decode()) for v in entry.get(backend.member_attr))


def _dn(backend: Backend, kind: str, rid: str) -> str:
    return backend.dn_of(kind, rid)


def _placeholder(backend: Backend) -> str:
    return normalize_dn(backend.placeholder or "")


def _empty(backend: Backend) -> list[str]:
    """The member values of an empty group: the placeholder groupOfNames needs, or none
    (groupOfUniqueNames on 389 DS)."""
    return [_placeholder(backend)] if backend.placeholder else []


@pytest.mark.parametrize("params", [NO_MEMBERS, {}], ids=["excluded-members", "default"])
def test_add_one_member(
    backend: Backend,
    scim: TestClient,
    plain: TestClient,
    masked: Masked,
    offer: str,
    params: dict[str, str],
) -> None:
    users = [create_user(plain, f"m{i}")["id"] for i in range(3)]
    g = create_group(plain, "Ops", users[:2])
    masked.calls.clear()
    r = patch(scim, f"/Groups/{g['id']}", {"op": "add", "path": "members", "value": [
        {"value": users[2]}
    ]}, params=params)  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json() == plain.get(f"{SCIM}/Groups/{g['id']}", params=params).json()
    if not params:
        assert sorted(m["value"] for m in r.json()["members"]) == sorted(users)
    # the placeholder is looked for only where the mapping has one (not on 389 DS)
    probe = backend.placeholder is not None
    vrf, deref = probe and _uses(masked, "matched_values"), _uses(masked, "deref")
    post = _uses(masked, "post_read") and (bool(params) or not deref)
    # find, the new member's id, [placeholder check], modify, [read back], [members' ids]
    expected = ["search", "search"] + ["search"] * (probe and not vrf) + ["modify"]
    expected += ["search"] * (not post) + ["search"] * (not params and not deref)
    assert masked.ops() == expected
    assert masked.asked == ["matched_values"] * vrf + ["post_read"] * post
    if backend.directory.capabilities.post_read and params and offer == "offered":
        assert masked.ops() == ["search", "search", "modify"]  # issue 4: three operations


def test_placeholder_goes_with_the_first_member_and_returns_after_the_last(
    backend: Backend, scim: TestClient, plain: TestClient, masked: Masked
) -> None:
    alice = create_user(plain, "alice")["id"]
    g = create_group(plain, "Empty")
    dn = _dn(backend, "Group", g["id"])
    assert _members(backend, dn) == _empty(backend)

    r = patch(scim, f"/Groups/{g['id']}", {"op": "add", "path": "members", "value": [
        {"value": alice}
    ]}, params=NO_MEMBERS)  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json() == plain.get(f"{SCIM}/Groups/{g['id']}", params=NO_MEMBERS).json()
    assert _members(backend, dn) == [normalize_dn(_dn(backend, "User", alice))]

    masked.calls.clear()
    r = patch(scim, f"/Groups/{g['id']}", {"op": "remove", "path": f'members[value eq "{alice}"]'})
    assert r.status_code == 200, r.text
    assert "members" not in r.json()
    assert r.json() == plain.get(f"{SCIM}/Groups/{g['id']}").json()
    assert _members(backend, dn) == _empty(backend)
    post = _uses(masked, "post_read") and not _uses(masked, "deref")
    # find, alice's id, then: the modify refused (65: no member left) and the one with the
    # placeholder; or (389 DS) the member list (uniqueMember deletes values as stored: one
    # read, nothing resolved) and the modify, with nothing to put back
    steps = ["modify", "modify"] if backend.placeholder else ["search", "modify"]
    assert masked.ops() == ["search", "search", *steps] + ["search"] * (not post)


def test_rename_reads_back(
    backend: Backend, scim: TestClient, plain: TestClient, masked: Masked
) -> None:
    """A rename follows the modify, so the modify's post-read would be stale: no post-read."""
    u = create_user(plain, "renamer")["id"]
    g = create_group(plain, "Before")
    r = patch(
        scim,
        f"/Groups/{g['id']}",
        {"op": "replace", "path": "displayName", "value": "After"},
        {"op": "add", "path": "members", "value": [{"value": u}]},
        params=NO_MEMBERS,
    )
    assert r.status_code == 200, r.text
    assert r.json()["displayName"] == "After"
    assert r.json() == plain.get(f"{SCIM}/Groups/{g['id']}", params=NO_MEMBERS).json()
    assert "post_read" not in masked.asked
    assert masked.ops()[-3:] == ["modify", "rename", "search"]


def test_noop_patch_reads_back(
    backend: Backend, scim: TestClient, plain: TestClient, masked: Masked
) -> None:
    g = create_group(plain, "Same")
    masked.calls.clear()
    r = patch(scim, f"/Groups/{g['id']}", {"op": "replace", "path": "displayName", "value": "Same"})
    assert r.status_code == 200, r.text
    assert r.json() == plain.get(f"{SCIM}/Groups/{g['id']}").json() == g
    assert "modify" not in masked.ops() and "post_read" not in masked.asked


def test_if_match_goes_with_the_post_read(
    backend: Backend, scim: TestClient, plain: TestClient, masked: Masked
) -> None:
    u = create_user(plain, "matcher")["id"]
    g = create_group(plain, "Asserted")
    etag = plain.get(f"{SCIM}/Groups/{g['id']}").headers["ETag"]
    r = patch(scim, f"/Groups/{g['id']}", {"op": "add", "path": "members", "value": [
        {"value": u}
    ]}, params=NO_MEMBERS, headers={"If-Match": etag})  # fmt: skip
    assert r.status_code == 200, r.text
    after = plain.get(f"{SCIM}/Groups/{g['id']}", params=NO_MEMBERS)
    assert r.json() == after.json() and r.headers["ETag"] == after.headers["ETag"] != etag
    stale = patch(scim, f"/Groups/{g['id']}", {"op": "remove", "path": "members"}, headers={
        "If-Match": etag
    })  # fmt: skip
    assert stale.status_code == 412


def test_if_match_lost_to_a_concurrent_change_writes_nothing(
    backend: Backend, scim: TestClient, plain: TestClient, masked: Masked
) -> None:
    """The version moves between the find and the modify: the assertion fails the modify
    (412), and the post-read on it returns nothing.  A directory without the assertion
    control (389 DS) cannot see the move: the member is added (docs/directories/389ds.md)."""
    u = create_user(plain, "racer")["id"]
    g = create_group(plain, "Raced")
    dn = _dn(backend, "Group", g["id"])
    etag = plain.get(f"{SCIM}/Groups/{g['id']}").headers["ETag"]
    real = masked.inner.run_modify

    def run_modify(op: Modify) -> Entry | None:
        real(Modify(op.dn, [Change("replace", "businessCategory", (b"sneaked-in",))]))
        return real(op)

    masked.inner = _Proxy(masked.inner, run_modify)
    r = patch(scim, f"/Groups/{g['id']}", {"op": "add", "path": "members", "value": [
        {"value": u}
    ]}, headers={"If-Match": etag})  # fmt: skip
    if not backend.directory.capabilities.assertion:
        assert r.status_code == 200, r.text
        assert _members(backend, dn) == [normalize_dn(_dn(backend, "User", u))]
        return
    assert r.status_code == 412, r.text
    assert _members(backend, dn) == _empty(backend)


class _Proxy:
    """``inner`` with another modify."""

    def __init__(self, inner: Any, run_modify: Any):
        self._inner, self.run_modify = inner, run_modify

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_retry_that_drops_a_present_member(
    backend: Backend, scim: TestClient, plain: TestClient, masked: Masked
) -> None:
    """An IdP re-sends a present member with a new one: the modify fails (20), the present one
    is dropped and the retry, which applies the new one, carries the post-read."""
    alice, bob = (create_user(plain, n)["id"] for n in ("alice", "bob"))
    g = create_group(plain, "Retried", [alice])
    masked.calls.clear()
    masked.asked.clear()
    r = patch(scim, f"/Groups/{g['id']}", {"op": "add", "path": "members", "value": [
        {"value": alice}, {"value": bob}
    ]}, params=NO_MEMBERS)  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json() == plain.get(f"{SCIM}/Groups/{g['id']}", params=NO_MEMBERS).json()
    full = plain.get(f"{SCIM}/Groups/{g['id']}").json()
    assert sorted(m["value"] for m in full["members"]) == sorted([alice, bob])
    ops = masked.ops()
    assert ops.count("modify") == 2
    post = _uses(masked, "post_read")
    assert masked.asked.count("post_read") == 2 * post
    assert ops[-1] == ("modify" if post else "search")  # no read-back after a post-read


def test_retry_with_nothing_left_reads_back(
    backend: Backend, scim: TestClient, plain: TestClient, masked: Masked
) -> None:
    """Only present members re-sent: after the refused modify nothing is left to apply, so no
    modify carries a post-read and the entry is read back."""
    alice = create_user(plain, "alice")["id"]
    g = create_group(plain, "Resent", [alice])
    masked.calls.clear()
    r = patch(scim, f"/Groups/{g['id']}", {"op": "add", "path": "members", "value": [
        {"value": alice}
    ]})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json() == plain.get(f"{SCIM}/Groups/{g['id']}").json()
    assert [m["value"] for m in r.json()["members"]] == [alice]
    ops = masked.ops()
    assert ops.count("modify") == 1 and ops[-1] == "search"


def test_put_takes_the_post_read_too(
    backend: Backend, scim: TestClient, plain: TestClient, masked: Masked
) -> None:
    u = create_user(plain, "putter")["id"]
    g = create_group(plain, "Put")
    masked.calls.clear()
    body = {"displayName": "Put", "externalId": "x-1", "members": [{"value": u}]}
    r = scim.put(f"{SCIM}/Groups/{g['id']}", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == plain.get(f"{SCIM}/Groups/{g['id']}").json()
    post = _uses(masked, "post_read") and not _uses(masked, "deref")
    assert ("post_read" in masked.asked) == post


def test_deactivation_that_strips_groups_reads_back(backend: Backend, offer: str) -> None:
    """``on_deactivate: [disable, remove_groups]`` changes the user after the PATCH's modify:
    the response is read after that, not taken from the modify's post-read."""
    text = (
        Path(backend.mapping.source)
        .read_text()
        .replace(
            "    rdn: {ldap: uid, from: userName}",
            "    rdn: {ldap: uid, from: userName}\n"
            "    deprovision:\n"
            "      on_deactivate: [disable, remove_groups]",
        )
    )
    masked = Masked(backend.directory, **OFFERS[offer])
    svc = Service(parse_mapping(text), masked)
    user = svc.create("User", {"userName": "leaver"}, "")
    svc.create("Group", {"displayName": "Stays", "members": [{"value": user["id"]}]}, "")
    body = {
        "schemas": [PATCH_SCHEMA],
        "Operations": [{"op": "replace", "value": {"active": False}}],
    }
    r = svc.patch("User", user["id"], body, "")
    assert r["active"] is False and "groups" not in r
    assert r == svc.get("User", user["id"], "")
    # the post-read (memberOf still listing the group) was asked for, and not used: asked
    # wherever the directory offers it (with deref offered, the find carries the dereference)
    offered = backend.directory.capabilities.post_read
    assert ("post_read" in masked.asked) == (offered and offer != "none")


def test_a_patch_adding_no_member_does_not_ask_for_the_placeholder(
    backend: Backend, scim: TestClient, plain: TestClient, masked: Masked
) -> None:
    g = create_group(plain, "Tagged")
    masked.calls.clear()
    r = patch(scim, f"/Groups/{g['id']}", {"op": "replace", "path": "externalId", "value": "t-1"})
    assert r.status_code == 200, r.text
    assert r.json()["externalId"] == "t-1"
    assert r.json() == plain.get(f"{SCIM}/Groups/{g['id']}").json()
    assert "matched_values" not in masked.asked
    post = _uses(masked, "post_read") and not _uses(masked, "deref")
    assert masked.ops() == ["search", "modify"] + ["search"] * (not post)


@pytest.mark.parametrize(
    ("ops", "adds"),
    [
        ([{"op": "add", "path": "members", "value": [{"value": "1"}]}], True),
        ([{"op": "Add", "path": "Members", "value": [{"value": "1"}]}], True),
        ([{"op": "replace", "path": "members", "value": []}], True),
        ([{"op": "add", "value": {"members": [{"value": "1"}]}}], True),
        ([{"op": "add", "value": {"urn:ietf:params:scim:schemas:core:2.0:Group:members": []}}], True),
        ([{"op": "remove", "path": 'members[value eq "1"]'}], False),
        ([{"op": "replace", "path": "displayName", "value": "x"}], False),
        ([{"op": "replace", "value": {"displayName": "x"}}], False),
        ([{"op": "nonsense"}], False),
    ],
)  # fmt: skip
def test_which_patches_may_add_members(ops: list[dict[str, Any]], adds: bool) -> None:
    from bridge.service.facade import _parse
    from bridge.translate.members import may_add_members

    # the body is parsed once, by the service; one that does not parse adds nothing
    parsed, _refused = _parse({"schemas": [PATCH_SCHEMA], "Operations": ops})
    assert may_add_members(parsed) is adds


class _RefusesMatchedValues(Masked):
    """Advertises matched values, then refuses the control (an ACL, a proxy in between)."""

    @property
    def capabilities(self) -> Any:
        return replace(self.inner.capabilities, matched_values=True)

    def run(self, search: Search) -> Any:
        if search.matched_values:
            self.asked.append("matched_values")
            self.calls.append(("search", search.base))
            raise DirectoryError("unavailableCriticalExtension", "refused", operation="search")
        return super().run(search)


def test_a_refused_matched_values_control_falls_back_and_is_not_sent_again(
    backend: Backend, plain: TestClient
) -> None:
    users = [create_user(plain, f"r{i}")["id"] for i in range(3)]
    g = create_group(plain, "Refusers")
    refusing = _RefusesMatchedValues(backend.directory)
    scim = make_client(replace(backend, directory=refusing))
    for uid in users[:2]:
        r = patch(scim, f"/Groups/{g['id']}", {"op": "add", "path": "members", "value": [
            {"value": uid}
        ]}, params=NO_MEMBERS)  # fmt: skip
        assert r.status_code == 200, r.text
    # refused once, then never sent; never sent where there is no placeholder to look for
    assert refusing.asked.count("matched_values") == (1 if backend.placeholder else 0)
    got = plain.get(f"{SCIM}/Groups/{g['id']}").json()
    assert sorted(m["value"] for m in got["members"]) == sorted(users[:2])
    dn = _dn(backend, "Group", g["id"])
    if backend.placeholder:
        assert _placeholder(backend) not in _members(backend, dn)  # planned without the probe


def test_a_user_patch_is_the_find_and_the_modify(
    backend: Backend, scim: TestClient, plain: TestClient, masked: Masked, offer: str
) -> None:
    """The find carries the dereference of the user's groups and manager, the modify the
    post-read: no read-back, and the response equals a GET (groups with their ids and
    display names, the manager).  A manager set by the PATCH itself is one the find could
    not bring: it is looked up after the modify."""
    boss, other = create_user(plain, "boss")["id"], create_user(plain, "other")["id"]
    u = create_user(plain, "worker")["id"]
    for name in ("Alpha", "Beta"):
        create_group(plain, name, [u])
    manager = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"
    assert patch(plain, f"/Users/{u}", {"op": "add", "path": manager, "value": {"value": boss}}
                 ).status_code == 200  # fmt: skip
    post, deref = _uses(masked, "post_read"), _uses(masked, "deref")
    cases = [
        ({"op": "replace", "path": "displayName", "value": "Worker W"}, ["search", "modify"]),
        (  # the new manager's id -> DN before, its DN -> id after
            {"op": "replace", "path": manager, "value": {"value": other}},
            ["search", "search", "modify", "search"],
        ),
    ]
    for op, lean in cases:
        masked.calls.clear()
        masked.asked.clear()
        r = patch(scim, f"/Users/{u}", op)
        assert r.status_code == 200, r.text
        assert r.json() == plain.get(f"{SCIM}/Users/{u}").json()
        assert sorted(g["display"] for g in r.json()["groups"]) == ["Alpha", "Beta"]
        assert r.json()[manager.rsplit(":", 1)[0]]["manager"]["value"] in (boss, other)
        if post and deref:
            assert masked.ops() == lean and masked.asked == ["post_read"]
        if backend.directory.capabilities.post_read and offer == "offered":
            assert masked.ops() == lean  # was one search more: the read-back
    ext = plain.get(f"{SCIM}/Users/{u}").json()[manager.rsplit(":", 1)[0]]
    assert ext["manager"]["value"] == other


class _JoinsMeanwhile(Masked):
    """Adds the user to one more group just before the PATCH's modify, as another client
    might: the find's dereference does not have that group."""

    def __init__(self, inner: Any, group_dn: str, user_dn: str, member_attr: str, **off: bool):
        super().__init__(inner, **off)
        self.join = (group_dn, user_dn)
        self.member_attr = member_attr

    def run_modify(self, op: Modify) -> Any:
        if op.dn == self.join[1]:
            change = Change("add", self.member_attr, (self.join[1].encode(),))
            self.inner.modify(self.join[0], [change])
        return super().run_modify(op)


def test_a_group_joined_between_find_and_modify_is_in_the_response(
    backend: Backend, plain: TestClient, offer: str
) -> None:
    """Which groups the user is in comes from the post-read, not from the find: a group
    joined meanwhile is listed (looked up by search), exactly as a GET lists it."""
    u = create_user(plain, "joiner")["id"]
    create_group(plain, "Before", [u])
    late = create_group(plain, "Later")
    racer = _JoinsMeanwhile(
        backend.directory, _dn(backend, "Group", late["id"]), _dn(backend, "User", u),
        backend.member_attr, **OFFERS[offer],
    )  # fmt: skip
    scim = make_client(replace(backend, directory=racer))
    r = patch(scim, f"/Users/{u}", {"op": "replace", "path": "displayName", "value": "J"})
    assert r.status_code == 200, r.text
    assert sorted(g["display"] for g in r.json()["groups"]) == ["Before", "Later"]
    assert r.json() == plain.get(f"{SCIM}/Users/{u}").json()
