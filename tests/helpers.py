"""Small request helpers shared by the test suites."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM = "/scim/v2"


def create_user(client: TestClient, user_name: str, **extra: Any) -> dict[str, Any]:
    body = {"schemas": [USER_SCHEMA], "userName": user_name, **extra}
    r = client.post(f"{SCIM}/Users", json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def create_group(
    client: TestClient,
    name: str,
    members: list[str] = (),  # type: ignore[assignment]
    **extra: Any,
) -> dict[str, Any]:
    body = {
        "schemas": [GROUP_SCHEMA],
        "displayName": name,
        "members": [{"value": m} for m in members],
        **extra,
    }
    r = client.post(f"{SCIM}/Groups", json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def patch(client: TestClient, path: str, *ops: dict[str, Any], **kw: Any) -> Any:
    return client.patch(
        f"{SCIM}{path}", json={"schemas": [PATCH_SCHEMA], "Operations": list(ops)}, **kw
    )
