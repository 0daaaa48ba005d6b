"""Issue 16 item 1: the cursor key is never derived from a credential (BRIDGE_CURSOR_SECRET, else
random per process), and every field of a decoded cursor is checked, so a forged one is a 400
invalidCursor, never a 500/502.  Embedded directory and slapd with both clients."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from bridge.scim.cursor import Cursors, derive_key, fingerprint
from bridge.settings import Settings, Token
from bridge.web.app import build_app
from tests.conftest import TOKEN, Backend, make_client
from tests.helpers import SCIM, create_user

SECRET = "cursor-secret-for-tests"


# ---------------------------------------------------------------------------------- 1. cursors
def _forge(offset: Any, query: Any, key: bytes) -> str:
    """A cursor signed with ``key`` carrying any JSON (what a leaked secret would allow)."""
    raw = json.dumps({"o": offset, "q": query}).encode()
    body = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return f"{body}.{Cursors(key)._mac(body)}"


USERS_QUERY = fingerprint("User", None, None, "ascending")


@pytest.mark.parametrize(
    ("offset", "query"),
    [
        (2**70, USERS_QUERY),
        (2**31, USERS_QUERY),
        (-(2**70), USERS_QUERY),
        (0, USERS_QUERY),
        (True, USERS_QUERY),
        (1.5, USERS_QUERY),
        ("1", USERS_QUERY),
        (None, USERS_QUERY),
        (1, None),
        (1, 7),
        (1, [USERS_QUERY]),
    ],
    ids=repr,
)
def test_forged_cursor_fields_are_invalid_cursor(backend: Backend, offset: Any, query: Any) -> None:
    client = make_client(backend, cursor_secret=SECRET)
    create_user(client, "paged")
    forged = _forge(offset, query, derive_key(SECRET))
    r = client.get(f"{SCIM}/Users", params={"cursor": forged, "count": 5})
    assert r.status_code == 400, r.text
    assert r.json()["scimType"] == "invalidCursor"
    ok = client.get(f"{SCIM}/Users", params={"cursor": _forge(1, USERS_QUERY, derive_key(SECRET))})
    assert ok.status_code == 200 and ok.json()["totalResults"] == 1  # the forge is right


def test_cursor_key_does_not_depend_on_the_bind_password(backend: Backend) -> None:
    keys = set()
    for password in ("bind-pw-one", "bind-pw-two", ""):
        app = build_app(
            Settings(tokens=(Token("t", TOKEN),), bind_password=password),
            directory=backend.directory,
            mapping=backend.mapping,
        )
        keys.add(app.state.service.cursor_key)
    assert keys == {derive_key("")}  # the process's random key, whatever the password


def test_cursor_secret_makes_replicas_agree(backend: Backend) -> None:
    one = make_client(backend, cursor_secret=SECRET, bind_password="a")
    two = make_client(backend, cursor_secret=SECRET, bind_password="b")
    for i in range(3):
        create_user(one, f"walk{i}")
    first = one.get(f"{SCIM}/Users", params={"cursor": "", "count": 2}).json()
    r = two.get(f"{SCIM}/Users", params={"cursor": first["nextCursor"], "count": 2})
    assert r.status_code == 200 and r.json()["startIndex"] == 3
