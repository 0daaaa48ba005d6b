"""Adding a member that is there, or removing one that is not, is a no-op (issue 15), as the
IdPs send it: Okta's combined membership PATCH (remove by filter, then add the kept members
again), Entra's re-add, value-list removals, several operations at once, and PUT.  On the
embedded directory and slapd with both clients (tests/integration/test_ad_profile.py does the
same on Samba AD), and with the result codes Windows AD gives, which Samba does not
(``WindowsMembers``).  Also: ``startIndex`` past the end is an empty page everywhere."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import pytest
from starlette.testclient import TestClient

from bridge.directory.base import Change, Entry, Modify
from bridge.directory.syntax import normalize_dn
from bridge.errors import DirectoryError
from devtools.faults import FaultyDirectory
from tests.conftest import Backend, make_client
from tests.helpers import GROUP_SCHEMA, SCIM, create_group, create_user, patch


class WindowsMembers(FaultyDirectory):
    """``inner`` answering a member add/delete the way Windows AD does: a member already in
    the group is entryAlreadyExists with 00000562 (ERROR_MEMBER_IN_GROUP), removing one that is
    not there is unwillingToPerform with 00000561 (ERROR_MEMBER_NOT_IN_GROUP)."""

    name = "windows"

    def __init__(self, inner: Any, member_attr: str = "member"):
        super().__init__(inner)
        self.member_attr = member_attr.lower()

    def run_modify(self, op: Modify) -> Entry | None:
        dn, changes = op.dn, op.changes
        current = self.inner.read(dn, [c.attr for c in changes])
        for ch in changes:
            if ch.attr.lower() != self.member_attr or ch.op == "replace" or current is None:
                continue
            have = {normalize_dn(v.decode()) for v in current.get(ch.attr)}
            for v in ch.values:
                present = normalize_dn(v.decode()) in have
                if ch.op == "add" and present:
                    raise DirectoryError(
                        "entryAlreadyExists",
                        "00000562: UpdErr: DSID-031A11E2, problem 6005 (ENTRY_EXISTS), data 0",
                        dn=dn,
                        operation="modify",
                    )
                if ch.op == "delete" and not present:
                    raise DirectoryError(
                        "unwillingToPerform",
                        "00000561: SvcErr: DSID-031A1248, problem 5003 (WILL_NOT_PERFORM), data 0",
                        dn=dn,
                        operation="modify",
                    )
        return self.inner.run_modify(op)

    def read(self, dn: str, attributes: Sequence[str], **kw: Any) -> Entry | None:
        return self.inner.read(dn, attributes, **kw)


@pytest.fixture(params=["as-is", "windows"])
def scim_client(backend: Backend, request: pytest.FixtureRequest) -> TestClient:
    if request.param == "windows":
        return make_client(
            replace(backend, directory=WindowsMembers(backend.directory, backend.member_attr))
        )
    return make_client(backend)


def members(client: TestClient, gid: str) -> set[str]:
    return {m["value"] for m in client.get(f"{SCIM}/Groups/{gid}").json().get("members", [])}


@pytest.fixture
def team(scim_client: TestClient) -> dict[str, Any]:
    users = [create_user(scim_client, f"m{i}@example.com")["id"] for i in range(3)]
    group = create_group(scim_client, "Team", users[:2])
    return {"users": users, "group": group["id"]}


def test_okta_combined_membership_patch(scim_client: TestClient, team: dict[str, Any]) -> None:
    u0, u1, u2 = team["users"]
    r = patch(
        scim_client,
        f"/Groups/{team['group']}",
        {"op": "remove", "path": f'members[value eq "{u0}"]'},
        {"op": "add", "path": "members", "value": [{"value": u1}, {"value": u2}]},
    )
    assert r.status_code in (200, 204), r.text
    assert members(scim_client, team["group"]) == {u1, u2}


def test_entra_re_add_is_a_no_op(scim_client: TestClient, team: dict[str, Any]) -> None:
    u0, u1, _ = team["users"]
    r = patch(
        scim_client,
        f"/Groups/{team['group']}",
        {"op": "Add", "path": "members", "value": [{"value": u1}]},
    )
    assert r.status_code in (200, 204), r.text
    assert members(scim_client, team["group"]) == {u0, u1}


def test_removing_absent_members_is_a_no_op(scim_client: TestClient, team: dict[str, Any]) -> None:
    u0, u1, u2 = team["users"]
    r = patch(  # JumpCloud: a value list
        scim_client,
        f"/Groups/{team['group']}",
        {"op": "remove", "path": "members", "value": [{"value": u2}]},
    )
    assert r.status_code in (200, 204), r.text
    r = patch(
        scim_client,
        f"/Groups/{team['group']}",
        {"op": "remove", "path": f'members[value eq "{u2}"]'},
        {"op": "add", "path": "members", "value": [{"value": u0}]},
        {"op": "remove", "path": f'members[value eq "{u1}"]'},
    )
    assert r.status_code in (200, 204), r.text
    assert members(scim_client, team["group"]) == {u0}


@pytest.mark.parametrize("race", ["added", "removed"])
def test_put_after_another_writer_got_there_first(
    backend: Backend, scim_client: TestClient, team: dict[str, Any], race: str
) -> None:
    """PUT's delta comes from the entry it read; another writer makes part of it a no-op
    before the modify lands."""
    u0, u1, u2 = team["users"]
    service = scim_client.app.state.service  # type: ignore[attr-defined]
    group_dn = service.lookup.find(service.rmap("Group"), team["group"], ["1.1"]).dn
    target = service.lookup.find(service.rmap("User"), u2 if race == "added" else u1, ["1.1"]).dn
    op = "add" if race == "added" else "delete"
    change = Change(op, backend.member_attr, (target.encode(),))
    original = service.directory
    service.directory = Racing(original, lambda: backend.directory.modify(group_dn, [change]))
    want = [u0, u1, u2] if race == "added" else [u0]
    try:
        r = scim_client.put(
            f"{SCIM}/Groups/{team['group']}",
            json={
                "schemas": [GROUP_SCHEMA],
                "displayName": "Team",
                "members": [{"value": v} for v in want],
            },
        )
    finally:
        service.directory = original
    assert r.status_code == 200, r.text
    assert members(scim_client, team["group"]) == set(want)


@pytest.mark.parametrize("start", [4, 1000000, 2**31, 10**20])
def test_start_index_past_the_end_is_an_empty_page(backend: Backend, start: int) -> None:
    client = make_client(backend)
    for i in range(3):
        create_user(client, f"page{i}@example.com")
    r = client.get(f"{SCIM}/Users", params={"startIndex": str(start), "count": 5})
    assert r.status_code == 200, r.text
    assert r.json()["totalResults"] == 3 and r.json().get("Resources", []) == []


def test_windows_member_codes_are_value_no_ops() -> None:
    for code, message in (
        ("entryAlreadyExists", "00000562: UpdErr: DSID-031A11E2, problem 6005 (ENTRY_EXISTS)"),
        ("unwillingToPerform", "00000561: SvcErr: DSID-031A1248, problem 5003"),
        ("entryAlreadyExists", "Attribute member already exists for target GUID x"),  # Samba
        ("unwillingToPerform", "Attribute member doesn't exist for target GUID x"),  # Samba
        ("attributeOrValueExists", ""),  # slapd
        ("noSuchAttribute", ""),
    ):
        assert DirectoryError(code, message, operation="modify").value_noop
    assert not DirectoryError("insufficientAccessRights", "00000005: SecErr").value_noop
    assert not DirectoryError("constraintViolation", "0000202F: x").value_noop


class Racing(FaultyDirectory):
    """``inner`` that runs ``hook`` (another writer) once, right before the first modify."""

    def __init__(self, inner: Any, hook: Callable[[], object]):
        super().__init__(inner)
        self._hook: Callable[[], object] | None = hook

    @property
    def secure(self) -> bool:
        return bool(self.inner.secure)

    def run_modify(self, op: Modify) -> Entry | None:
        hook, self._hook = self._hook, None
        if hook is not None:
            hook()
        return self.inner.run_modify(op)
