"""Starlette application: construction and error rendering.  Endpoints are in resources.py and
ops.py, authentication and body limits in auth.py, the SCIM response types in responses.py.

One error handler renders every ScimError as an RFC 7644 §3.12 body; DirectoryError goes through
the one LDAP->SCIM table (errors.py); anything else is a 500 that is logged with its traceback and
never echoed to the client.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from bridge.directory.base import Directory
from bridge.errors import DirectoryError, ScimError
from bridge.mapping.load import load_mapping
from bridge.mapping.model import MappingConfig
from bridge.runtime import make_directory, wrap_directory
from bridge.scim.cursor import derive_key
from bridge.service.facade import Service
from bridge.settings import Settings
from bridge.web import resources
from bridge.web.auth import ScimMiddleware
from bridge.web.ops import Readiness
from bridge.web.responses import error_response, to_scim_error
from bridge.web.telemetry import TelemetryMiddleware

log = logging.getLogger("bridge.http")


def build_app(
    settings: Settings, *, directory: Directory | None = None, mapping: MappingConfig | None = None
) -> Starlette:
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
        routes=resources.build_routes(settings.base_path),
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
    app.state.base_urls = {}  # resources.base_url memo
    app.state.readiness = Readiness()  # /readyz: one directory probe per interval at most
    #: service calls run on the loop (bridge/concurrency.py) when the client never blocks there
    app.state.cooperative = settings.cooperative and directory.cooperative
    app.add_middleware(ScimMiddleware, settings=settings, routes=app.routes)
    app.add_middleware(TelemetryMiddleware, settings=settings, mapping=mapping, routes=app.routes)

    return app


def _rid(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", "-"))


Handler = Callable[[Request], Awaitable[Response]]
