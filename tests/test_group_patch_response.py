"""Issue 15: a group membership PATCH sent as Okta and Entra ID send it (no ``attributes`` /
``excludedAttributes``) is answered 204 No Content with the new version as its ETag, and costs
no read of the member list for the response (RFC 7644 §3.5.2 allows 204).  A request that asks
for a representation gets 200 with it, and ``BRIDGE_GROUP_PATCH_RESPONSE=full`` restores the
200-with-the-whole-group answer.  Embedded directory and slapd with both clients, each with and
without post-read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
from starlette.testclient import TestClient

from bridge.directory.base import Modify, Search
from bridge.errors import ConfigError
from bridge.settings import Settings
from devtools.faults import Masked
from tests.conftest import Backend, make_client
from tests.helpers import SCIM, create_group, create_user, patch


class Watched(Masked):
    """Masked, noting every LDAP attribute a search, read or post-read asks for."""

    def __init__(self, inner: Any, **off: bool):
        super().__init__(inner, **off)
        self.wanted: list[str] = []

    def run(self, search: Search) -> Any:
        if not search.matched_values:  # the placeholder probe returns that one value only
            self.wanted += [a.lower() for a in search.attributes]
        return super().run(search)

    def read(self, dn: str, attributes: Sequence[str]) -> Any:
        self.wanted += [a.lower() for a in attributes]
        return super().read(dn, attributes)

    def run_modify(self, op: Modify) -> Any:
        self.wanted += [a.lower() for a in op.post_read or ()]
        return super().run_modify(op)


@pytest.fixture(params=["offered", "no-post-read"])
def watched(backend: Backend, request: pytest.FixtureRequest) -> Watched:
    off = {} if request.param == "offered" else {"post_read": False, "matched_values": False}
    return Watched(backend.directory, **off)


@pytest.fixture
def idp(backend: Backend, watched: Watched) -> TestClient:
    return make_client(replace(backend, directory=watched))


def _okta(uid: str, user_name: str) -> list[dict[str, Any]]:
    """Okta's membership PATCH: remove by filter, then add with value and display."""
    return [
        {"op": "remove", "path": f'members[value eq "{uid}"]'},
        {"op": "add", "path": "members", "value": [{"value": uid, "display": user_name}]},
    ]


def _entra(uid: str, _user_name: str) -> list[dict[str, Any]]:
    return [{"op": "Add", "path": "members", "value": [{"$ref": None, "value": uid}]}]


@pytest.mark.parametrize("shape", [_okta, _entra], ids=["okta", "entra"])
def test_idp_membership_patch_is_204_and_reads_no_members(
    backend: Backend, idp: TestClient, watched: Watched, shape: Any
) -> None:
    ids = [create_user(idp, f"gm{i}")["id"] for i in range(4)]
    g = create_group(idp, "Big enough", ids[:3])
    watched.calls.clear()
    watched.wanted.clear()
    r = patch(idp, f"/Groups/{g['id']}", *shape(ids[3], "gm3"))
    assert r.status_code == 204, r.text
    assert r.content == b""
    member = backend.mapping.resource("Group").member_map
    assert member is not None
    assert member.ldap.lower() not in watched.wanted, watched.wanted  # nothing reads the list
    ops = watched.ops()
    assert ops.count("modify") == 1
    after = idp.get(f"{SCIM}/Groups/{g['id']}").json()
    assert sorted(m["value"] for m in after["members"]) == sorted(ids)
    assert r.headers["ETag"] == after["meta"]["version"]
    if backend.name == "slapd" and watched.capabilities.post_read and shape is _entra:
        # find, the member's id, the modify whose post-read brings the new version
        assert ops == ["search", "search", "modify"]


def test_rename_and_remove_are_204_too(idp: TestClient) -> None:
    """Entra ID's group rename and member removal ({"$ref": null} value list)."""
    u = create_user(idp, "leaving")["id"]
    g = create_group(idp, "Old name", [u])
    r = patch(idp, f"/Groups/{g['id']}", {"op": "Replace", "path": "displayName", "value": "New"})
    assert r.status_code == 204, r.text
    r = patch(idp, f"/Groups/{g['id']}", {"op": "Remove", "path": "members", "value": [
        {"$ref": None, "value": u}]})  # fmt: skip
    assert r.status_code == 204, r.text
    after = idp.get(f"{SCIM}/Groups/{g['id']}").json()
    assert after["displayName"] == "New" and not after.get("members")
    assert r.headers["ETag"] == after["meta"]["version"]


@pytest.mark.parametrize(
    ("params", "has_members"),
    [({"excludedAttributes": "members"}, False), ({"attributes": "members"}, True)],
)
def test_asking_for_a_representation_gets_200(
    idp: TestClient, params: dict[str, str], has_members: bool
) -> None:
    u = create_user(idp, "asker")["id"]
    g = create_group(idp, "Asked")
    r = patch(idp, f"/Groups/{g['id']}", *_entra(u, "asker"), params=params)
    assert r.status_code == 200, r.text
    assert ("members" in r.json()) is has_members
    if "meta" in r.json():  # `attributes=members` leaves meta, and so the version, out
        assert r.headers["ETag"] == r.json()["meta"]["version"]


def test_full_mode_answers_200_with_the_whole_group(backend: Backend) -> None:
    client = make_client(backend, group_patch_response="full")
    u = create_user(client, "fuller")["id"]
    g = create_group(client, "Full")
    r = patch(client, f"/Groups/{g['id']}", *_okta(u, "fuller"))
    assert r.status_code == 200, r.text
    assert [m["value"] for m in r.json()["members"]] == [u]
    assert r.json() == client.get(f"{SCIM}/Groups/{g['id']}").json()


def test_user_patch_still_answers_200_with_the_user(idp: TestClient) -> None:
    u = create_user(idp, "stillfull")
    r = patch(idp, f"/Users/{u['id']}", {"op": "replace", "value": {"active": False}})
    assert r.status_code == 200, r.text
    assert r.json()["active"] is False


def test_if_match_with_no_content(idp: TestClient) -> None:
    u = create_user(idp, "matched")["id"]
    g = create_group(idp, "Matched")
    etag = idp.get(f"{SCIM}/Groups/{g['id']}").headers["ETag"]
    r = patch(idp, f"/Groups/{g['id']}", *_entra(u, ""), headers={"If-Match": etag})
    assert r.status_code == 204, r.text
    assert r.headers["ETag"] != etag
    stale = patch(idp, f"/Groups/{g['id']}", {"op": "remove", "path": "members"},
                  headers={"If-Match": etag})  # fmt: skip
    assert stale.status_code == 412
    assert [m["value"] for m in idp.get(f"{SCIM}/Groups/{g['id']}").json()["members"]] == [u]


def test_errors_are_still_scim_errors(idp: TestClient) -> None:
    g = create_group(idp, "Errs")
    r = patch(idp, f"/Groups/{g['id']}", {"op": "add", "path": "members", "value": [
        {"value": "00000000-0000-0000-0000-000000000000"}]})  # fmt: skip
    assert r.status_code == 400 and r.json()["scimType"] == "invalidValue", r.text


def test_setting_from_the_environment() -> None:
    assert Settings.from_env({}).group_patch_response == "no-content"
    env = {"BRIDGE_GROUP_PATCH_RESPONSE": "full"}
    assert Settings.from_env(env).group_patch_response == "full"
    with pytest.raises(ConfigError, match="BRIDGE_GROUP_PATCH_RESPONSE"):
        Settings.from_env({"BRIDGE_GROUP_PATCH_RESPONSE": "204"})


@pytest.mark.parametrize("shape", [_okta, _entra], ids=["okta", "entra"])
def test_bulk_group_patch_reads_no_members_either(
    idp: TestClient, watched: Watched, backend: Backend, shape: Any
) -> None:
    """A bulk PATCH's result carries only location, version and status (RFC 7644 §3.7.3), so a
    group PATCH inside /Bulk costs what the 204 PATCH costs: the member list is not read."""
    ids = [create_user(idp, f"bm{i}")["id"] for i in range(3)]
    g = create_group(idp, "Bulk patched", ids[:2])
    watched.wanted.clear()
    r = idp.post(
        f"{SCIM}/Bulk",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": [
                {
                    "method": "PATCH",
                    "path": f"/Groups/{g['id']}",
                    "data": {
                        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": shape(ids[2], "bm2"),
                    },
                }
            ],
        },
    )
    assert r.status_code == 200, r.text
    [result] = r.json()["Operations"]
    member = backend.mapping.resource("Group").member_map
    assert member is not None
    assert member.ldap.lower() not in watched.wanted, watched.wanted
    after = idp.get(f"{SCIM}/Groups/{g['id']}").json()
    assert sorted(m["value"] for m in after["members"]) == sorted(ids)
    assert result["status"] == "200" and "response" not in result
    assert result["location"] == after["meta"]["location"]
    assert result["version"] == after["meta"]["version"]
