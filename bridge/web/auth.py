"""Bearer-token authentication, read-only tokens and request-body limits for the SCIM routes."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from typing import Any

from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from bridge.errors import Forbidden, PayloadTooLarge, ScimError, Unauthorized
from bridge.observability import audit, context
from bridge.observability.logs import Budget
from bridge.scim.bulk import payload_too_large
from bridge.settings import Settings, Token
from bridge.web.responses import error_response
from bridge.web.telemetry import is_search

log = logging.getLogger("bridge.http")


_READ_HEADERS = frozenset({b"authorization", b"content-length", b"x-request-id"})
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: failed authentications logged (and audited) per second at most, per process; the rest are
#: counted and reported in the next line that is written
AUTH_FAILURES_PER_SECOND = 5.0


class AuthFailed(Unauthorized):
    """A refused bearer token; ``reason`` is for the log only (never the token's text)."""

    def __init__(self, detail: str, reason: str):
        super().__init__(detail)
        self.reason = reason


class ScimMiddleware:
    """Request id, bearer-token auth, body-size limit and error rendering for the SCIM routes.

    A pure ASGI middleware (not BaseHTTPMiddleware) so the body limit applies while streaming."""

    def __init__(self, app: ASGIApp, settings: Settings, routes: list[BaseRoute]):
        self.app = app
        self.settings = settings
        self.routes = routes
        self.tokens = [(t, t.secret.encode()) for t in settings.tokens]
        self.failures = Budget(AUTH_FAILURES_PER_SECOND)

    def authenticate(self, header: str | None) -> Token:
        if not header:
            raise AuthFailed("a bearer token is required", "no Authorization header")
        if not header.lower().startswith("bearer "):
            raise AuthFailed("a bearer token is required", "not a Bearer authorization")
        given = header[7:].strip().encode()
        found = None
        for token, secret in self.tokens:  # compare against every token: constant time
            if hmac.compare_digest(given, secret):
                found = token
        if found is None:
            raise AuthFailed("invalid bearer token", "unknown bearer token")
        return found

    def is_read(self, scope: Scope) -> bool:
        """Decided by the route the request matches, never by the path's text: only GET, HEAD,
        OPTIONS and a POST that reaches a search endpoint read."""
        return scope["method"] in _READ_METHODS or is_search(scope, self.routes)

    def auth_failed(self, scope: Scope, err: AuthFailed) -> None:
        """Log and audit a refused token, at most AUTH_FAILURES_PER_SECOND a second; never the
        token or any part of it."""
        scope["state"]["auth_failed"] = True  # this record is the request's audit record
        allowed, suppressed = self.failures.take()
        if not allowed:
            return
        client = scope.get("client")
        address = client[0] if client else None
        path = scope["path"][:256]
        rid = scope["state"]["request_id"]
        log.warning(
            "authentication failed: %s (%s %s from %s)%s",
            err.reason,
            scope["method"][:16],
            path,
            address or "-",
            f"; {suppressed} more not logged" if suppressed else "",
            extra={"request_id": rid, "client": address, "path": path, "reason": err.reason},
        )
        audit.write_auth_failure(rid, address, scope["method"][:16], path, err.reason, suppressed)

    def body_limit(self, path: str) -> tuple[int, Callable[[], ScimError]]:
        """The byte limit for a request body and the error beyond it: /Bulk has its own,
        ``maxPayloadSize`` (RFC 7644 §3.7.4), checked here before the body is read."""
        if path.rstrip("/") == self.settings.base_path + "/Bulk":
            bulk = self.settings.bulk_max_payload_bytes
            return bulk, lambda: payload_too_large(bulk)
        limit = self.settings.max_body_bytes
        return limit, lambda: PayloadTooLarge(f"request body exceeds {limit} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.settings.base_path):
            await self.app(scope, receive, send)
            return
        headers = {}
        for k, v in scope["headers"]:  # only the few this layer reads, decoded once
            name = k.lower()
            if name in _READ_HEADERS:
                headers[name.decode("latin-1")] = v.decode("latin-1")
        state = scope.setdefault("state", {})
        # TelemetryMiddleware (outermost) has usually set a sanitised request id already
        if "request_id" not in state:
            state["request_id"] = headers.get("x-request-id") or context.new_request_id()
        try:
            try:
                token = self.authenticate(headers.get("authorization"))
            except AuthFailed as failed:
                self.auth_failed(scope, failed)
                raise
            scope["state"]["token"] = token.name  # also for a refused write's audit record
            if token.read_only and not self.is_read(scope):
                raise Forbidden(f"token {token.name!r} is read-only")
            limit, too_large = self.body_limit(scope["path"])
            length = headers.get("content-length")
            if length and length.isdigit() and int(length) > limit:
                raise too_large()
        except ScimError as err:
            await error_response(err)(scope, receive, send)
            return
        received = 0

        async def limited() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large()
            return message

        await self.app(scope, limited, send)
