"""A create without ``active`` (OneLogin and JumpCloud send none), or with ``"active": null``
(RFC 7643 §2.5: unassigned), makes an active account on every directory (issue 15): here on
the embedded directory and slapd with both clients; on Samba AD, where AD itself would create
the account disabled, in tests/integration/test_ad.py and test_ad_profile.py."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.helpers import SCIM, create_user


@pytest.mark.parametrize("extra", [{}, {"active": None}], ids=["absent", "null"])
def test_create_without_active_is_active(client: TestClient, extra: dict[str, Any]) -> None:
    u = create_user(client, "no.flag@example.com", **extra)
    assert u["active"] is True
    assert client.get(f"{SCIM}/Users/{u['id']}").json()["active"] is True
    found = client.get(f"{SCIM}/Users", params={"filter": "active eq true"}).json()
    assert [x["id"] for x in found["Resources"]] == [u["id"]]


def test_create_with_active_false_stays_inactive(client: TestClient) -> None:
    u = create_user(client, "off@example.com", active=False)
    assert u["active"] is False
    assert client.get(f"{SCIM}/Users/{u['id']}").json()["active"] is False
