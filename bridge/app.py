"""Starlette application: construction, auth, error rendering.  Endpoints are in routes.py.

One error handler renders every ScimError as an RFC 7644 §3.12 body; DirectoryError goes through
the one LDAP->SCIM table (errors.py); anything else is a 500 that is logged with its traceback and
never echoed to the client.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from bridge.directory.base import Directory
from bridge.errors import (
    DirectoryError,
    Forbidden,
    PayloadTooLarge,
    ScimError,
    Unauthorized,
    Unavailable,
)
from bridge.mapping.load import load_mapping
from bridge.mapping.model import MappingConfig
from bridge.observability import audit, context
from bridge.observability.logs import Budget
from bridge.scim.cursor import derive_key
from bridge.service.bulk import payload_too_large
from bridge.service.facade import Service
from bridge.settings import Settings, Token
from bridge.telemetry import is_search

log = logging.getLogger("bridge.http")
SCIM_JSON = "application/scim+json"


class ScimResponse(Response):
    media_type = SCIM_JSON

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(err: ScimError) -> ScimResponse:
    headers = {}
    if err.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="scim"'
    if isinstance(err, Unavailable):
        headers["Retry-After"] = str(err.retry_after)
    return ScimResponse(err.body(), status_code=err.status, headers=headers)


def to_scim_error(exc: BaseException) -> ScimError | None:
    if isinstance(exc, ScimError):
        return exc
    if isinstance(exc, DirectoryError):
        return exc.to_scim()
    if isinstance(exc, HTTPException):  # Starlette's own 404 (no route) / 405: SCIM bodies too
        return ScimError(exc.detail or "request refused", status=exc.status_code)
    return None


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


def build_app(
    settings: Settings, *, directory: Directory | None = None, mapping: MappingConfig | None = None
) -> Starlette:
    from bridge import routes
    from bridge.routes_ops import Readiness
    from bridge.runtime import make_directory, wrap_directory

    mapping = mapping or load_mapping(settings.mapping)
    directory = wrap_directory(settings, mapping, directory or make_directory(settings, mapping))
    service = Service(
        mapping, directory, max_results=settings.max_results, default_count=settings.default_count
    )
    # BRIDGE_CURSOR_SECRET, else a random key of this process (never from a credential)
    service.cursor_key = derive_key(settings.cursor_secret)

    async def on_error(request: Request, exc: Exception) -> Response:
        err = to_scim_error(exc)
        if err is None:
            log.exception("unhandled error", extra={"request_id": _rid(request)})
            err = ScimError(f"internal error; see the bridge log for request {_rid(request)}")
        elif err.status >= 500:
            log.warning("%s: %s", type(exc).__name__, exc, extra={"request_id": _rid(request)})
        return error_response(err)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        directory.close()

    app = Starlette(
        routes=routes.build_routes(settings.base_path),
        exception_handlers={
            Exception: on_error,
            ScimError: on_error,
            DirectoryError: on_error,
            HTTPException: on_error,
        },
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.mapping = mapping
    app.state.directory = directory
    app.state.service = service
    app.state.base_urls = {}  # routes.base_url memo
    app.state.readiness = Readiness()  # /readyz: one directory probe per interval at most
    #: service calls run on the loop (greenio) when the client never blocks there
    app.state.cooperative = settings.cooperative and directory.cooperative
    app.add_middleware(ScimMiddleware, settings=settings, routes=app.routes)
    from bridge.telemetry import TelemetryMiddleware

    app.add_middleware(TelemetryMiddleware, settings=settings, mapping=mapping, routes=app.routes)

    return app


def _rid(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", "-"))


Handler = Callable[[Request], Awaitable[Response]]
