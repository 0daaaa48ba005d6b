"""RFC 9865 cursors: stateless, signed positions in a sorted result.

A cursor is ``body "." mac``: ``body`` is the base64url of a small JSON payload (the 1-based
offset of the page it starts and a fingerprint of the query: resource type, filter, sortBy,
sortOrder) and ``mac`` the base64url of HMAC-SHA256(key, body) truncated to 16 bytes; the MAC
covers the exact text, so a tampered or re-encoded cursor is a 400 invalidCursor.  Nothing is
kept on the server: a cursor works on every replica that has the same key and never expires
(ServiceProviderConfig advertises ``cursorTimeout: null``).  The directory does the positioning
(VLV by offset), so every page of a walk costs the same.

The key: ``BRIDGE_CURSOR_SECRET`` when set (every replica and worker needs the same one), else
random per process, so cursors then die with the process.  It is never derived from a credential:
anyone holding a token gets cursors, whose bodies are known, and could test guesses of the
credential offline against their MACs.  A decoded cursor is checked field by field, so even a
forged one (a leaked secret) can only name an offset in 1..MAX_OFFSET of the query it was made for.

Why not the LDAP paged-results cookie: it is bound to one LDAP connection (RFC 2696 §3), which
dies with the process and is not shared between replicas.

Consistency: like index pagination, an entry added or removed *before* the cursor's position
between two pages shifts the following pages by one (an entry may be seen twice or skipped).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass

from bridge.errors import BadRequest


class InvalidCursor(BadRequest):
    """RFC 9865 §2.3: the cursor is not one this service issued for this query."""

    scim_type = "invalidCursor"


#: the key when no secret is set: random, drawn once per process (never from a credential)
_PROCESS_KEY = os.urandom(32)

#: the largest offset a cursor may carry: LDAP's VLV offset is an INTEGER (RFC 4511 maxInt)
MAX_OFFSET = 2**31 - 1


def derive_key(secret: str) -> bytes:
    """The signing key: from ``BRIDGE_CURSOR_SECRET`` when set, else this process's random key."""
    if not secret:
        return _PROCESS_KEY
    return hashlib.sha256(f"scim-ldap-bridge cursor\0{secret}".encode()).digest()


def fingerprint(*parts: str | None) -> str:
    h = hashlib.sha256("\0".join(p or "" for p in parts).encode("utf-8"))
    return base64.urlsafe_b64encode(h.digest()[:12]).decode("ascii")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Cursors:
    key: bytes

    def encode(self, offset: int, query: str) -> str:
        payload = json.dumps({"o": offset, "q": query}, separators=(",", ":")).encode("utf-8")
        body = _b64(payload)
        return f"{body}.{self._mac(body)}"

    def decode(self, cursor: object, query: str) -> int:
        """The offset a cursor points at; 400 invalidCursor if it was not issued here for this
        query (tampered, truncated, another key, another filter or sort)."""
        if not isinstance(cursor, str):
            raise InvalidCursor("cursor must be a string")
        body, _, mac = cursor.strip().partition(".")
        data = None
        # the MAC covers the exact text, so a re-encoding of the same bytes is refused too
        if hmac.compare_digest(mac.encode("ascii", "replace"), self._mac(body).encode("ascii")):
            try:
                data = json.loads(_unb64(body))
            except (ValueError, TypeError):
                data = None
        offset = data.get("o") if isinstance(data, dict) else None
        # bool is an int in Python; a cursor this service issued never holds one
        if type(offset) is not int or not 1 <= offset <= MAX_OFFSET:
            raise InvalidCursor("the cursor is not valid: start again without a cursor value")
        if not isinstance(data, dict) or not isinstance(data.get("q"), str):
            raise InvalidCursor("the cursor is not valid: start again without a cursor value")
        if data["q"] != query:
            raise InvalidCursor("the cursor belongs to another query (filter or sort changed)")
        return offset

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self.key, body.encode("utf-8"), hashlib.sha256).digest()[:16])
