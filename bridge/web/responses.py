"""The SCIM response type and the one rendering of errors (RFC 7644 §3.12), shared by the app,
the auth middleware and every route module."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.responses import Response

from bridge.errors import DirectoryError, ScimError, Unavailable

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
