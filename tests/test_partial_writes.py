"""Multi-step writes under injected faults, on the embedded directory and slapd.

A PUT/PATCH that renames (userName / Group displayName) and changes other attributes is two LDAP
operations: modify, then rename.  A failure at either step must leave the entry exactly as it
was (the modify is undone when the rename fails), and if the undo fails too the SCIM error says
exactly what was left.  A create is one add: a failure leaves nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from devtools.faults import FaultyDirectory
from tests.conftest import Backend, make_client
from tests.helpers import GROUP_SCHEMA, SCIM, USER_SCHEMA, create_group, create_user, patch


@pytest.fixture
def faulty(backend: Backend) -> FaultyDirectory:
    return FaultyDirectory(backend.directory)


@pytest.fixture
def fclient(backend: Backend, faulty: FaultyDirectory) -> TestClient:
    client = make_client(Backend(backend.name, faulty, backend.mapping, backend.info))
    return TestClient(
        client.app,
        base_url=str(client.base_url),
        raise_server_exceptions=False,
        headers=dict(client.headers),
    )


def people(backend: Backend) -> list[str]:
    found = backend.independent_search("ou=people,dc=example,dc=org", "(uid=*)", ["uid"])
    if backend.info is None:
        return sorted(e.text("uid") for e in found)
    return sorted(str(e.uid.value) for e in found)


def state(client: TestClient, kind: str, rid: str) -> dict[str, Any]:
    r = client.get(f"{SCIM}/{kind}/{rid}")
    assert r.status_code == 200, r.text
    body = r.json()
    body.pop("meta")
    if "members" in body:
        body["members"] = sorted(m["value"] for m in body["members"])
    return body  # type: ignore[no-any-return]


PUT_BODY = {
    "schemas": [USER_SCHEMA],
    "userName": "renamed",
    "displayName": "New Name",
    "title": "New Title",
}


@pytest.mark.parametrize("step", ["modify", "rename"])
def test_put_rename_fails_at_either_step_and_leaves_nothing(
    fclient: TestClient, faulty: FaultyDirectory, backend: Backend, step: str
) -> None:
    user = create_user(fclient, "before", displayName="Old Name", title="Old Title")
    was = state(fclient, "Users", user["id"])
    faulty.fail(step, "unavailable")
    r = fclient.put(f"{SCIM}/Users/{user['id']}", json=PUT_BODY)
    assert r.status_code == 503 and r.headers["Retry-After"], r.text
    assert state(fclient, "Users", user["id"]) == was
    assert people(backend) == ["before"]
    # and once the directory is back the same request goes through
    r = fclient.put(f"{SCIM}/Users/{user['id']}", json=PUT_BODY)
    assert r.status_code == 200, r.text
    assert (r.json()["userName"], r.json()["title"]) == ("renamed", "New Title")


def test_rename_collision_undoes_the_modify(fclient: TestClient, backend: Backend) -> None:
    """The common real failure: the new name is taken (409), found only at the rename."""
    create_user(fclient, "taken")
    user = create_user(fclient, "mine", displayName="Old Name", title="Old Title")
    was = state(fclient, "Users", user["id"])
    r = fclient.put(f"{SCIM}/Users/{user['id']}", json={**PUT_BODY, "userName": "taken"})
    assert r.status_code == 409 and r.json()["scimType"] == "uniqueness", r.text
    assert state(fclient, "Users", user["id"]) == was


def test_patch_rename_fails_and_modify_is_undone(
    fclient: TestClient, faulty: FaultyDirectory
) -> None:
    user = create_user(fclient, "p1", displayName="Old Name")
    was = state(fclient, "Users", user["id"])
    faulty.fail("rename", "busy")
    r = patch(
        fclient,
        f"/Users/{user['id']}",
        {"op": "replace", "path": "userName", "value": "p2"},
        {"op": "replace", "path": "displayName", "value": "Other"},
        {"op": "add", "path": "title", "value": "T"},
    )
    assert r.status_code == 503, r.text
    assert state(fclient, "Users", user["id"]) == was


def test_group_members_restored_exactly_when_rename_fails(
    fclient: TestClient, faulty: FaultyDirectory
) -> None:
    """The undo inverts what was applied, not what was asked: u1 was already a member (its add
    was a no-op) and must still be one after the undo; u3's removal is put back."""
    u1, u2, u3 = (create_user(fclient, n)["id"] for n in ("u1", "u2", "u3"))
    group = create_group(fclient, "team", [u1, u3])
    was = state(fclient, "Groups", group["id"])
    faulty.fail("rename", "unavailable")
    r = patch(
        fclient,
        f"/Groups/{group['id']}",
        {"op": "add", "path": "members", "value": [{"value": u1}, {"value": u2}]},
        {"op": "remove", "path": f'members[value eq "{u3}"]'},
        {"op": "replace", "path": "displayName", "value": "renamed team"},
    )
    assert r.status_code == 503, r.text
    assert state(fclient, "Groups", group["id"]) == was


def test_put_group_members_restored_when_rename_fails(
    fclient: TestClient, faulty: FaultyDirectory
) -> None:
    u1, u2 = (create_user(fclient, n)["id"] for n in ("m1", "m2"))
    group = create_group(fclient, "crew", [u1])
    was = state(fclient, "Groups", group["id"])
    faulty.fail("rename", "unavailable")
    r = fclient.put(
        f"{SCIM}/Groups/{group['id']}",
        json={"schemas": [GROUP_SCHEMA], "displayName": "crew2", "members": [{"value": u2}]},
    )
    assert r.status_code == 503, r.text
    assert state(fclient, "Groups", group["id"]) == was


def test_failed_undo_is_reported_exactly(
    fclient: TestClient,
    faulty: FaultyDirectory,
    backend: Backend,
    caplog: pytest.LogCaptureFixture,
) -> None:
    user = create_user(fclient, "half", displayName="Old Name", title="Old Title")
    faulty.fail("rename", "unavailable")
    faulty.fail("modify", "unavailable", nth=2)  # the first modify applies, the undo fails
    r = fclient.put(f"{SCIM}/Users/{user['id']}", json=PUT_BODY)
    assert r.status_code == 503, r.text
    detail = r.json()["detail"]
    assert "uid=half,ou=people,dc=example,dc=org" in detail
    assert "replace displayName" in detail and "replace title" in detail
    assert "remain applied under the old name" in detail
    assert "New Title" not in detail  # attribute names, never values
    now = state(fclient, "Users", user["id"])
    assert (now["userName"], now["displayName"], now["title"]) == ("half", "New Name", "New Title")
    logged = [r for r in caplog.records if r.getMessage() == "partial write left behind"]
    assert len(logged) == 1 and logged[0].levelname == "ERROR"
    assert logged[0].dn == "uid=half,ou=people,dc=example,dc=org"  # type: ignore[attr-defined]


def test_unknown_directory_failure_is_502_and_changes_nothing(
    fclient: TestClient, faulty: FaultyDirectory
) -> None:
    user = create_user(fclient, "gw", title="Old Title")
    was = state(fclient, "Users", user["id"])
    faulty.fail("modify", "operationsError")
    r = patch(fclient, f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": "x"})
    assert r.status_code == 502, r.text
    assert r.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert "operationsError" in r.json()["detail"]
    assert state(fclient, "Users", user["id"]) == was


def test_failed_create_leaves_nothing(
    fclient: TestClient, faulty: FaultyDirectory, backend: Backend
) -> None:
    u1 = create_user(fclient, "x1")["id"]
    faulty.fail("add", "unavailable")
    r = fclient.post(
        f"{SCIM}/Groups",
        json={"schemas": [GROUP_SCHEMA], "displayName": "g", "members": [{"value": u1}]},
    )
    assert r.status_code == 503, r.text
    assert fclient.get(f"{SCIM}/Groups").json()["totalResults"] == 0
    assert people(backend) == ["x1"]


def test_no_such_object_target_vs_reference(
    fclient: TestClient, faulty: FaultyDirectory, backend: Backend
) -> None:
    """RFC 7644 §3.12: noSuchObject for the resource itself is 404; for an entry the request
    refers to (the directory checked a member/manager DN) it is 400 invalidValue."""
    user = create_user(fclient, "target")
    faulty.fail("modify", "noSuchObject")  # the entry is still there: a reference is missing
    r = fclient.put(f"{SCIM}/Users/{user['id']}", json={**PUT_BODY, "userName": "target"})
    assert r.status_code == 400 and r.json()["scimType"] == "invalidValue", r.text

    dn = "uid=target,ou=people,dc=example,dc=org"
    faulty.fail("modify", "noSuchObject", before=lambda: backend.directory.delete(dn))
    r = fclient.put(f"{SCIM}/Users/{user['id']}", json={**PUT_BODY, "userName": "target"})
    assert r.status_code == 404, r.text
