"""Issue 15: request shapes the IdPs send, accepted on every directory (embedded, slapd with
both clients).

* ``replace`` with ``"value": null`` removes the attribute (RFC 7643 §2.5: null is
  unassigned), as ``""`` does for a single string; Entra ID's validator (SCIM_Null_Update)
  sends ``""`` and then ``null``.  ``add`` with null adds nothing.  A required attribute still
  refuses removal (400 ``mutability``) and nothing is written.
* A ``schemas`` key inside an extension object is ignored.
* A create/PUT whose ``schemas`` lists an extra URI with no attributes (Entra ID's
  ``.../ADSCIM/2.0/Group``) is accepted; attributes under an unknown URI stay a 400.
"""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.helpers import (
    ENTERPRISE,
    GROUP_SCHEMA,
    SCIM,
    USER_SCHEMA,
    create_group,
    create_user,
    patch,
)

ADSCIM = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"


def _user(client: TestClient) -> dict[str, Any]:
    return create_user(
        client,
        "nullie",
        schemas=[USER_SCHEMA, ENTERPRISE],
        title="Boss",
        displayName="Null Ie",
        name={"givenName": "Null", "familyName": "Ie"},
        emails=[{"value": "n@example.com", "type": "work", "primary": True}],
        **{ENTERPRISE: {"employeeNumber": "7", "department": "Ops"}},
    )


def _get(client: TestClient, rid: str, kind: str = "Users") -> dict[str, Any]:
    r = client.get(f"{SCIM}/{kind}/{rid}")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "op",
    [
        {"op": "replace", "path": "title", "value": None},
        {"op": "Replace", "path": "title", "value": ""},
        {"op": "replace", "value": {"title": None}},
        {"op": "replace", "value": {"title": ""}},
    ],
    ids=["path-null", "path-empty", "pathless-null", "pathless-empty"],
)
def test_replace_with_null_or_empty_removes(client: TestClient, op: dict[str, Any]) -> None:
    u = _user(client)
    r = patch(client, f"/Users/{u['id']}", op)
    assert r.status_code == 200, r.text
    assert "title" not in r.json()
    got = _get(client, u["id"])
    assert "title" not in got and got["displayName"] == "Null Ie"


def test_entra_null_update_sequence(client: TestClient) -> None:
    """SCIM_Null_Update: "" then null on the same attribute; both succeed, GET shows none."""
    u = _user(client)
    for value in ("", None):
        r = patch(client, f"/Users/{u['id']}", {"op": "Replace", "path": "title", "value": value})
        assert r.status_code == 200, r.text
        assert "title" not in _get(client, u["id"])


@pytest.mark.parametrize(
    ("path", "gone"),
    [
        ("name.givenName", lambda u: "givenName" not in u.get("name", {})),
        ("emails", lambda u: "emails" not in u),
        ('emails[type eq "work"].value', lambda u: "emails" not in u),
        (f"{ENTERPRISE}:employeeNumber", lambda u: "employeeNumber" not in u.get(ENTERPRISE, {})),
        (ENTERPRISE, lambda u: ENTERPRISE not in u),
    ],
)
def test_replace_null_removes_other_shapes(client: TestClient, path: str, gone: Any) -> None:
    u = _user(client)
    r = patch(client, f"/Users/{u['id']}", {"op": "replace", "path": path, "value": None})
    assert r.status_code == 200, r.text
    got = _get(client, u["id"])
    assert gone(got), got
    assert got["title"] == "Boss"


@pytest.mark.parametrize(
    "op",
    [
        {"op": "add", "path": "title", "value": None},
        {"op": "add", "value": {"title": None, "displayName": None}},
        {"op": "add", "path": ENTERPRISE, "value": None},
        {"op": "add", "path": "emails", "value": None},
    ],
    ids=["path", "pathless", "extension", "multi"],
)
def test_add_null_is_a_no_op(client: TestClient, op: dict[str, Any]) -> None:
    u = _user(client)
    before = _get(client, u["id"])
    r = patch(client, f"/Users/{u['id']}", op)
    assert r.status_code == 200, r.text
    after = _get(client, u["id"])
    assert after["title"] == "Boss" and after["displayName"] == "Null Ie"
    assert after["emails"] == before["emails"]
    assert after[ENTERPRISE] == before[ENTERPRISE]


@pytest.mark.parametrize(
    "op",
    [
        {"op": "replace", "path": "userName", "value": None},
        {"op": "replace", "path": "userName", "value": ""},
        {"op": "replace", "value": {"userName": None, "title": "x"}},
    ],
    ids=["null", "empty", "pathless"],
)
def test_required_attribute_refuses_removal(client: TestClient, op: dict[str, Any]) -> None:
    u = _user(client)
    r = patch(client, f"/Users/{u['id']}", op)
    assert r.status_code == 400, r.text
    assert r.json()["scimType"] == "mutability"
    assert "userName is required" in r.json()["detail"]
    got = _get(client, u["id"])
    assert got["userName"] == "nullie" and got["title"] == "Boss"  # nothing half-written


def test_members_null(client: TestClient) -> None:
    a = create_user(client, "ma")["id"]
    g = create_group(client, "nullgroup", [a])
    params = {"attributes": "members"}
    r = patch(client, f"/Groups/{g['id']}", {"op": "add", "path": "members", "value": None},
              params=params)  # fmt: skip
    assert r.status_code == 200, r.text
    assert [m["value"] for m in r.json()["members"]] == [a]
    r = patch(client, f"/Groups/{g['id']}", {"op": "replace", "path": "members", "value": None},
              params=params)  # fmt: skip
    assert r.status_code == 200, r.text
    assert not r.json().get("members")
    assert not _get(client, g["id"], "Groups").get("members")


# ---------------------------------------------------------------------------- "schemas" keys
@pytest.mark.parametrize(
    "op",
    [
        {"op": "add", "path": ENTERPRISE, "value": {"schemas": [ENTERPRISE], "employeeNumber": "4"}},
        {"op": "replace", "path": ENTERPRISE, "value": {"schemas": [ENTERPRISE],
                                                        "employeeNumber": "4"}},
        {"op": "add", "value": {ENTERPRISE: {"schemas": [ENTERPRISE], "employeeNumber": "4"}}},
        {"op": "replace", "value": {"schemas": [USER_SCHEMA, ENTERPRISE],
                                    ENTERPRISE: {"schemas": [ENTERPRISE], "employeeNumber": "4"}}},
    ],
    ids=["add-path", "replace-path", "add-pathless", "replace-pathless"],
)  # fmt: skip
def test_schemas_key_inside_an_extension_object_is_ignored(
    client: TestClient, op: dict[str, Any]
) -> None:
    u = _user(client)
    r = patch(client, f"/Users/{u['id']}", op)
    assert r.status_code == 200, r.text
    assert _get(client, u["id"])[ENTERPRISE]["employeeNumber"] == "4"


def test_an_unknown_attribute_in_an_extension_object_stays_a_400(client: TestClient) -> None:
    u = _user(client)
    r = patch(client, f"/Users/{u['id']}", {"op": "add", "path": ENTERPRISE,
                                             "value": {"schemas": [], "bogusAttr": "4"}})  # fmt: skip
    assert r.status_code == 400, r.text
    assert r.json()["scimType"] == "invalidPath"


# ---------------------------------------------------------------------------- extra schema URIs
def test_extra_schema_uri_without_attributes_is_accepted(client: TestClient) -> None:
    """Entra ID's group create (and PUT) lists ADSCIM/2.0/Group, which carries nothing."""
    body = {"schemas": [GROUP_SCHEMA, ADSCIM], "displayName": "Entra Group", "externalId": "e1",
            "members": []}  # fmt: skip
    r = client.post(f"{SCIM}/Groups", json=body)
    assert r.status_code == 201, r.text
    gid = r.json()["id"]
    assert r.json()["schemas"] == [GROUP_SCHEMA]
    r = client.put(f"{SCIM}/Groups/{gid}", json={**body, "displayName": "Entra Group 2"})
    assert r.status_code == 200, r.text
    assert _get(client, gid, "Groups")["displayName"] == "Entra Group 2"


@pytest.mark.parametrize(
    "extra", [{ADSCIM: {"someAttr": "x"}}, {f"{ADSCIM}:someAttr": "x"}], ids=["object", "qualified"]
)
def test_attributes_under_an_unknown_schema_stay_a_400(
    client: TestClient, extra: dict[str, Any]
) -> None:
    body = {"schemas": [GROUP_SCHEMA, ADSCIM], "displayName": "Refused Group", **extra}
    r = client.post(f"{SCIM}/Groups", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["scimType"] == "invalidValue" and ADSCIM in r.json()["detail"]
    found = client.get(f"{SCIM}/Groups", params={"filter": 'displayName eq "Refused Group"'})
    assert found.json()["totalResults"] == 0
