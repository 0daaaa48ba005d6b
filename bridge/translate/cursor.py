"""RFC 9865 cursors: stateless, signed positions in a sorted result.

A cursor is ``base64url(payload) "." base64url(HMAC-SHA256(key, payload)[:16])`` where the payload
holds the 1-based offset of the page it starts, the time it was issued and a fingerprint of the
query (resource type, filter, sortBy, sortOrder).  Nothing is kept on the server, so a cursor
survives a bridge restart and works on every replica that has the same key; the directory does the
positioning (VLV by offset), so following ``nextCursor`` costs the same on every page.

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
import time
from dataclasses import dataclass

from bridge.errors import BadRequest

#: seconds a cursor stays valid (advertised as ``pagination.cursorTimeout``, RFC 9865 §4)
CURSOR_TIMEOUT = 24 * 3600


class InvalidCursor(BadRequest):
    """RFC 9865 §2.3: the cursor is not one this service issued for this query."""

    scim_type = "invalidCursor"


class ExpiredCursor(BadRequest):
    scim_type = "expiredCursor"


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
    timeout: int = CURSOR_TIMEOUT

    def encode(self, offset: int, query: str, now: float | None = None) -> str:
        payload = json.dumps(
            {"o": offset, "q": query, "t": int(now if now is not None else time.time())},
            separators=(",", ":"),
        ).encode("utf-8")
        body = _b64(payload)
        return f"{body}.{self._mac(body)}"

    def decode(self, cursor: str, query: str, now: float | None = None) -> int:
        """The offset a cursor points at; 400 invalidCursor if it was not issued here for this
        query (tampered, truncated, another filter or sort), 400 expiredCursor if too old."""
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
        issued = data.get("t")
        current = now if now is not None else time.time()
        if not isinstance(issued, int) or current - issued > self.timeout:
            raise ExpiredCursor("the cursor has expired: start again without a cursor value")
        return max(int(data["o"]), 1)

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self.key, body.encode("utf-8"), hashlib.sha256).digest()[:16])
