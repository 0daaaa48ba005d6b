"""RFC 9865 cursors: stateless, signed positions in a sorted result.

A cursor is ``body "." mac``: ``body`` is the base64url of a small JSON payload (the 1-based
offset of the page it starts and a fingerprint of the query: resource type, filter, sortBy,
sortOrder) and ``mac`` the base64url of HMAC-SHA256(key, body) truncated to 16 bytes; the MAC
covers the exact text, so a tampered or re-encoded cursor is a 400 invalidCursor.  Nothing is
kept on the server: a cursor survives a bridge restart, works on every replica that has the
same key and never expires (ServiceProviderConfig advertises ``cursorTimeout: null``).  The
directory does the positioning (VLV by offset), so every page of a walk costs the same.

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
from dataclasses import dataclass

from bridge.errors import BadRequest


class InvalidCursor(BadRequest):
    """RFC 9865 §2.3: the cursor is not one this service issued for this query."""

    scim_type = "invalidCursor"


def derive_key(secret: str, bind_password: str = "", mapping_path: str = "") -> bytes:
    """The signing key: ``BRIDGE_CURSOR_SECRET`` when set, else derived from the bind password
    and the mapping path, so replicas deployed with the same configuration agree without any
    extra setting (and a cursor from another directory account or mapping is refused)."""
    material = secret or f"scim-ldap-bridge cursor\0{bind_password}\0{mapping_path}"
    return hashlib.sha256(material.encode("utf-8")).digest()


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

    def decode(self, cursor: str, query: str) -> int:
        """The offset a cursor points at; 400 invalidCursor if it was not issued here for this
        query (tampered, truncated, another key, another filter or sort)."""
        body, _, mac = cursor.strip().partition(".")
        data = None
        # the MAC covers the exact text, so a re-encoding of the same bytes is refused too
        if hmac.compare_digest(mac.encode("ascii", "replace"), self._mac(body).encode("ascii")):
            try:
                data = json.loads(_unb64(body))
            except (ValueError, TypeError):
                data = None
        if not isinstance(data, dict) or not isinstance(data.get("o"), int):
            raise InvalidCursor("the cursor is not valid: start again without a cursor value")
        if data.get("q") != query:
            raise InvalidCursor("the cursor belongs to another query (filter or sort changed)")
        return max(int(data["o"]), 1)

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self.key, body.encode("utf-8"), hashlib.sha256).digest()[:16])
