"""PUT, renames, ETags, the enterprise extension and concurrent membership PATCHes, on both
backends (RFC 7644 §3.5.1, §3.5.2, §3.14)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from starlette.testclient import TestClient

from bridge.directory.base import Change, Modify
from bridge.directory.embedded import EmbeddedDirectory
from bridge.errors import DirectoryError
from bridge.runtime import seed_structure
from bridge.scim.messages import MAX_OPERATIONS
from tests.conftest import Backend, make_client
from tests.helpers import (
    ENTERPRISE,
    GROUP_SCHEMA,
    PATCH_SCHEMA,
    SCIM,
    USER_SCHEMA,
    create_group,
    create_user,
    patch,
)

PEOPLE = "ou=people,dc=example,dc=org"


def _ldap(backend: Backend, flt: str, attr: str) -> list[str]:
    """Values of ``attr`` on the one entry matching ``flt``, read around the bridge."""
    entries = backend.independent_search(PEOPLE, flt, [attr])
    assert len(entries) == 1
    e = entries[0]
    if backend.info is None:
        return [v.decode() for v in e.get(attr)]
    return [str(v) for v in e[attr].values] if attr in e.entry_attributes else []


# ---------------------------------------------------------------------------- PUT
def test_okta_put_with_id_meta_and_empty_groups_keeps_membership(client: TestClient) -> None:
    u = create_user(client, "okta.user", displayName="Okta User")
    g = create_group(client, "Sales", [u["id"]])
    body = {**u, "displayName": "Okta U", "groups": [], "meta": {"resourceType": "User"}}
    r = client.put(f"{SCIM}/Users/{u['id']}", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["displayName"] == "Okta U"
    assert [x["value"] for x in r.json()["groups"]] == [g["id"]]  # groups is readOnly: ignored
    members = client.get(f"{SCIM}/Groups/{g['id']}").json()["members"]
    assert [m["value"] for m in members] == [u["id"]]


def test_put_keeps_unsent_password_and_sets_a_sent_one(
    client: TestClient, backend: Backend
) -> None:
    u = create_user(client, "pw.user", password="Secr3t!pass")
    r = client.put(
        f"{SCIM}/Users/{u['id']}", json={"schemas": [USER_SCHEMA], "userName": "pw.user"}
    )
    assert r.status_code == 200 and "password" not in r.json()
    assert _ldap(backend, "(uid=pw.user)", "userPassword"), "writeOnly password must survive a PUT"
    r = client.put(
        f"{SCIM}/Users/{u['id']}",
        json={"schemas": [USER_SCHEMA], "userName": "pw.user", "password": "An0ther!pass"},
    )
    assert r.status_code == 200 and "password" not in r.json()


def test_put_without_required_attribute_is_400(client: TestClient) -> None:
    u = create_user(client, "req.user")
    r = client.put(f"{SCIM}/Users/{u['id']}", json={"schemas": [USER_SCHEMA], "title": "x"})
    assert r.status_code == 400 and r.json()["scimType"] == "invalidValue"
    assert client.get(f"{SCIM}/Users/{u['id']}").json()["userName"] == "req.user"


def test_put_renames_group_and_members_follow(client: TestClient) -> None:
    u = create_user(client, "member.one")
    g = create_group(client, "Old Name", [u["id"]])
    r = client.put(
        f"{SCIM}/Groups/{g['id']}",
        json={
            "schemas": [GROUP_SCHEMA],
            "displayName": "New Name",
            "members": [{"value": u["id"]}],
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["id"] == g["id"] and r.json()["displayName"] == "New Name"
    groups = client.get(f"{SCIM}/Users/{u['id']}").json()["groups"]
    assert groups[0]["value"] == g["id"] and groups[0]["display"] == "New Name"


# ---------------------------------------------------------------------------- renames
def test_patch_rename_keeps_id_and_memberships(client: TestClient, backend: Backend) -> None:
    u = create_user(client, "old.name")
    g = create_group(client, "Team", [u["id"]])
    r = patch(
        client, f"/Users/{u['id']}", {"op": "replace", "path": "userName", "value": "new.name"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["id"] == u["id"] and r.json()["userName"] == "new.name"
    assert backend.independent_search(PEOPLE, "(uid=new.name)", ["uid"])
    assert not backend.independent_search(PEOPLE, "(uid=old.name)", ["uid"])
    members = client.get(f"{SCIM}/Groups/{g['id']}").json()["members"]
    assert [m["value"] for m in members] == [u["id"]]
    assert client.get(f"{SCIM}/Users/{u['id']}").json()["groups"][0]["value"] == g["id"]


def test_rename_onto_taken_name_undoes_the_modify(client: TestClient) -> None:
    u = create_user(client, "first", title="Before")
    create_user(client, "second")
    r = patch(
        client,
        f"/Users/{u['id']}",
        {"op": "replace", "path": "title", "value": "After"},
        {"op": "replace", "path": "userName", "value": "second"},
    )
    assert r.status_code == 409 and r.json()["scimType"] == "uniqueness"
    again = client.get(f"{SCIM}/Users/{u['id']}").json()
    assert again["userName"] == "first" and again["title"] == "Before"


# ---------------------------------------------------------------------------- ETags
def test_etag_changes_and_if_none_match_gives_304(client: TestClient) -> None:
    u = create_user(client, "etag.user")
    v1 = u["meta"]["version"]
    assert client.get(f"{SCIM}/Users/{u['id']}", headers={"If-None-Match": v1}).status_code == 304
    r = patch(client, f"/Users/{u['id']}", {"op": "replace", "path": "title", "value": "T"})
    v2 = r.json()["meta"]["version"]
    assert v2 != v1 and r.headers["ETag"] == v2
    assert client.get(f"{SCIM}/Users/{u['id']}", headers={"If-None-Match": v1}).status_code == 200


@pytest.mark.parametrize("method", ["PATCH", "PUT", "DELETE"])
def test_if_match_mismatch_is_412_and_nothing_changes(client: TestClient, method: str) -> None:
    u = create_user(client, "ifmatch.user", title="Original")
    stale = u["meta"]["version"]
    fresh = patch(client, f"/Users/{u['id']}", {"op": "replace", "path": "title", "value": "Now"})
    current = fresh.json()["meta"]["version"]
    url = f"{SCIM}/Users/{u['id']}"
    put_body = {"schemas": [USER_SCHEMA], "userName": "ifmatch.user", "title": "Put"}
    patch_body = {
        "schemas": [PATCH_SCHEMA],
        "Operations": [{"op": "replace", "path": "title", "value": "Patched"}],
    }

    def send(etag: str) -> Any:
        headers = {"If-Match": etag}
        if method == "PATCH":
            return client.patch(url, json=patch_body, headers=headers)
        if method == "PUT":
            return client.put(url, json=put_body, headers=headers)
        return client.delete(url, headers=headers)

    r = send(stale)
    assert r.status_code == 412, r.text
    assert client.get(url).json()["title"] == "Now"
    r = send(current)
    assert r.status_code in (200, 204), r.text


def test_if_match_on_rename_only_patch(client: TestClient) -> None:
    u = create_user(client, "ren.a")
    stale = u["meta"]["version"]
    patch(client, f"/Users/{u['id']}", {"op": "replace", "path": "title", "value": "x"})
    r = patch(
        client,
        f"/Users/{u['id']}",
        {"op": "replace", "path": "userName", "value": "ren.b"},
        headers={"If-Match": stale},
    )
    assert r.status_code == 412
    assert client.get(f"{SCIM}/Users/{u['id']}").json()["userName"] == "ren.a"
    current = client.get(f"{SCIM}/Users/{u['id']}").json()["meta"]["version"]
    r = patch(
        client,
        f"/Users/{u['id']}",
        {"op": "replace", "path": "userName", "value": "ren.b"},
        headers={"If-Match": current},
    )
    assert r.status_code == 200 and r.json()["userName"] == "ren.b"


@pytest.mark.parametrize("operation", ["modify", "rename", "delete"])
def test_concurrent_change_fails_the_asserted_write(
    client: TestClient, backend: Backend, operation: str
) -> None:
    """RFC 4528 on the directory itself: a change between the version check and the write
    makes the write fail as a whole (412) instead of overwriting the concurrent change.
    A directory without the assertion control (389 DS) gets no assertion: the version is
    checked against the entry just read, and the window until the write stays open
    (docs/directories/389ds.md)."""
    u = create_user(client, "race.user", title="v0")
    service = client.app.state.service  # type: ignore[attr-defined]
    rmap = service.rmap("User")
    found = service.lookup.find(rmap, u["id"], [rmap.id.ldap, rmap.version])
    assertion = service.writer.check_version(rmap, found.entry, u["meta"]["version"])
    backend.directory.modify(found.dn, [Change("replace", "title", (b"concurrent",))])
    d = backend.directory
    if not d.capabilities.assertion:
        assert assertion is None
        # a stale version is still refused before anything is written
        r = patch(
            client,
            f"/Users/{u['id']}",
            {"op": "replace", "path": "title", "value": "late"},
            headers={"If-Match": u["meta"]["version"]},
        )
        assert r.status_code == 412, r.text
        assert client.get(f"{SCIM}/Users/{u['id']}").json()["title"] == "concurrent"
        return
    assert assertion is not None and assertion.startswith(f"({rmap.version}=")
    with pytest.raises(DirectoryError) as info:
        if operation == "modify":
            d.modify(found.dn, [Change("replace", "title", (b"late",))], assertion=assertion)
        elif operation == "rename":
            d.rename(found.dn, "uid=race.renamed", assertion=assertion)
        else:
            d.delete(found.dn, assertion=assertion)
    assert info.value.code == "assertionFailed"
    assert info.value.to_scim().status == 412
    after = client.get(f"{SCIM}/Users/{u['id']}").json()
    assert after["title"] == "concurrent" and after["userName"] == "race.user"


# ---------------------------------------------------------------------------- enterprise
def test_enterprise_manager_is_a_dn_in_ldap(client: TestClient, backend: Backend) -> None:
    boss = create_user(client, "the.boss")
    u = create_user(client, "worker", **{ENTERPRISE: {"employeeNumber": "7", "department": "Ops"}})
    r = patch(
        client,
        f"/Users/{u['id']}",
        {"op": "add", "path": f"{ENTERPRISE}:manager", "value": {"value": boss["id"]}},
    )
    assert r.status_code == 200, r.text
    ext = r.json()[ENTERPRISE]
    assert ext["manager"]["value"] == boss["id"] and ext["employeeNumber"] == "7"
    assert ext["manager"]["$ref"].endswith(f"/Users/{boss['id']}")
    dns = _ldap(backend, "(uid=worker)", "manager")
    assert [d.lower() for d in dns] == ["uid=the.boss,ou=people,dc=example,dc=org"]
    r = patch(
        client,
        f"/Users/{u['id']}",
        {"op": "replace", "path": f"{ENTERPRISE}:manager", "value": "no-such-id"},
    )
    assert r.status_code == 400 and "no-such-id" in r.json()["detail"]


# ---------------------------------------------------------------------------- hostile input
def test_too_many_operations_is_400(client: TestClient) -> None:
    u = create_user(client, "many.ops")
    ops = [{"op": "replace", "path": "title", "value": str(i)} for i in range(MAX_OPERATIONS + 1)]
    r = patch(client, f"/Users/{u['id']}", *ops)
    assert r.status_code == 400 and r.json()["scimType"] == "invalidSyntax"


@pytest.mark.parametrize(
    "body",
    [
        [],
        "x",
        {"schemas": [PATCH_SCHEMA], "Operations": "add"},
        {"schemas": [PATCH_SCHEMA], "Operations": [1]},
        {"schemas": [PATCH_SCHEMA], "Operations": [{"op": "add", "path": 5, "value": 1}]},
        {"schemas": [PATCH_SCHEMA], "Operations": [{"op": "add", "value": [1, 2]}]},
        {"schemas": [PATCH_SCHEMA], "Operations": [{"op": "add", "path": "name", "value": 3}]},
        {
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "add", "path": "emails", "value": [[1]]}],
        },
        {
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "add", "path": "title", "value": {"a": 1}}],
        },
        {
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "replace", "path": "x" * 5000, "value": 1}],
        },
    ],
)
def test_malformed_patch_bodies_are_400(client: TestClient, body: Any) -> None:
    u = create_user(client, "hostile")
    r = client.patch(f"{SCIM}/Users/{u['id']}", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]


def test_patch_response_honours_excluded_attributes(client: TestClient) -> None:
    a, b = create_user(client, "ex.a"), create_user(client, "ex.b")
    g = create_group(client, "Excluded", [a["id"]])
    r = client.patch(
        f"{SCIM}/Groups/{g['id']}",
        params={"excludedAttributes": "members"},
        json={
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": b["id"]}]}],
        },
    )
    assert r.status_code == 200 and "members" not in r.json()
    assert r.json()["displayName"] == "Excluded"
    members = client.get(f"{SCIM}/Groups/{g['id']}").json()["members"]
    assert sorted(m["value"] for m in members) == sorted([a["id"], b["id"]])


# ---------------------------------------------------------------------------- concurrency
def test_parallel_member_adds_lose_nothing(backend: Backend) -> None:
    """Two clients PATCH-add 100 different members each to one group at the same time (on
    slapd; fewer on the embedded directory, whose searches scan every entry)."""
    per_client = 100 if backend.info is not None else 25
    setup = make_client(backend)
    ids = []
    for i in range(2 * per_client):
        ids.append(create_user(setup, f"par{i:03d}")["id"])
    g = create_group(setup, "Parallel")
    errors: list[str] = []
    start = threading.Barrier(2)

    def worker(chunk: list[str]) -> None:
        c = make_client(backend)
        start.wait()
        for rid in chunk:
            r = c.patch(
                f"{SCIM}/Groups/{g['id']}",
                params={"excludedAttributes": "members"},
                json={
                    "schemas": [PATCH_SCHEMA],
                    "Operations": [{"op": "add", "path": "members", "value": [{"value": rid}]}],
                },
            )
            if r.status_code != 200:
                errors.append(r.text)

    threads = [
        threading.Thread(target=worker, args=(ids[:per_client],)),
        threading.Thread(target=worker, args=(ids[per_client:],)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    members = setup.get(f"{SCIM}/Groups/{g['id']}").json()["members"]
    assert sorted(m["value"] for m in members) == sorted(ids)


def test_rename_failing_after_the_modify_is_undone(openldap_mapping: Any) -> None:
    """The name is taken between the check and the rename (injected on the embedded
    directory): the modify that went first is compensated."""
    directory = EmbeddedDirectory()
    seed_structure(directory, openldap_mapping)
    client = make_client(Backend("embedded", directory, openldap_mapping))
    u = create_user(client, "undo.me", displayName="Before")
    directory.fail_next["rename"] = DirectoryError("entryAlreadyExists")
    r = patch(
        client,
        f"/Users/{u['id']}",
        {"op": "replace", "path": "displayName", "value": "After"},
        {"op": "add", "path": "title", "value": "New title"},
        {"op": "replace", "path": "userName", "value": "undo.renamed"},
    )
    assert r.status_code == 409, r.text
    again = client.get(f"{SCIM}/Users/{u['id']}").json()
    assert again["userName"] == "undo.me" and again["displayName"] == "Before"
    assert "title" not in again


def test_resending_many_present_members_is_a_cheap_no_op(
    client: TestClient, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Okta re-pushes whole member lists: 25 present + 5 new members in one add succeed, and
    the retry after attributeOrValueExists sends just the 5 (the list is read once)."""
    ids = [create_user(client, f"push{i:02d}")["id"] for i in range(30)]
    g = create_group(client, "Pushed", ids[:25])
    calls: list[list[Change]] = []
    original = backend.directory.run_modify

    def run_modify(op: Modify) -> Any:
        calls.append(list(op.changes))
        return original(op)

    monkeypatch.setattr(backend.directory, "run_modify", run_modify)
    r = patch(
        client,
        f"/Groups/{g['id']}",
        {"op": "add", "path": "members", "value": [{"value": i} for i in ids]},
    )
    assert r.status_code == 204, r.text  # as Okta sends it: no representation asked for
    members = client.get(f"{SCIM}/Groups/{g['id']}").json()["members"]
    assert sorted(m["value"] for m in members) == sorted(ids)
    assert [len(c[0].values) for c in calls] == [30, 5]
