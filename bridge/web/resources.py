"""Thin async endpoints: parse the request, one service call (resources.call), shape the
response (RFC 7644 §3).  No LDAP and no business rules here."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bridge import concurrency
from bridge.errors import BadRequest, InvalidSyntax, InvalidValue, NotFound
from bridge.mapping.model import ResourceMap
from bridge.scim import schema as sch
from bridge.scim.bulk import Limits, payload_too_large
from bridge.scim.projection import Projection
from bridge.service import bulk
from bridge.service.facade import RESERVED_IDS, ListQuery, ListResult, Service
from bridge.web.ops import FIXED_ENDPOINTS, ops_routes
from bridge.web.responses import ScimResponse
from bridge.web.telemetry import SEARCH_ROUTE

T = TypeVar("T")


def base_url(request: Request) -> str:
    """Absolute base for ``meta.location`` and ``Location`` (RFC 7644 §3.1)."""
    scope = request.scope
    host = next((v for k, v in scope["headers"] if k == b"host"), None)
    server = scope.get("server")
    key = (scope.get("scheme"), host, scope.get("root_path", ""), server and tuple(server))
    known: dict[Any, str] = request.app.state.base_urls
    url = known.get(key)
    if url is None:  # Starlette's own derivation, once per distinct host/scheme/root
        url = str(request.base_url).rstrip("/") + request.app.state.settings.base_path
        if len(known) > 1024:  # Host is client input: stay bounded
            known.clear()
        known[key] = url
    return url


def service(request: Request) -> Service:
    return request.app.state.service


async def call(request: Request, fn: Callable[..., T], *args: Any) -> T:
    """Run a (synchronous) service call: in a greenlet on the event loop when the directory
    client waits for LDAP without blocking (python-ldap, bridge/concurrency.py), else in the
    threadpool."""
    if request.app.state.cooperative:
        return await concurrency.run(fn, *args)
    return await run_in_threadpool(fn, *args)


def resource_map(request: Request) -> ResourceMap:
    endpoint = "/" + request.path_params["resource"]
    rmap = request.app.state.mapping.by_endpoint(endpoint)
    if rmap is None:
        raise NotFound(f"no resource type at {endpoint}")
    return rmap


async def json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise InvalidSyntax("the request body is empty")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidSyntax(f"the request body is not valid JSON: {exc}") from None


def _int_param(value: str | None, name: str, default: int | None) -> int | None:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise InvalidValue(f"{name} must be an integer, got {value!r}") from None


def projection(rmap: ResourceMap, attributes: Any, excluded: Any) -> Projection:
    return Projection.parse(attributes, excluded, rmap.schemas)


MAX_INT = 2**31 - 1


def list_query(rmap: ResourceMap, params: dict[str, Any]) -> ListQuery:
    """Query parameters (GET) or a SearchRequest body (POST .search, RFC 7644 §3.4.3)."""
    get = {k.lower(): v for k, v in params.items()}
    start = _int_param(_s(get.get("startindex")), "startIndex", 1) or 1
    count = _int_param(_s(get.get("count")), "count", None)
    if count is not None and count < 0:
        count = 0  # RFC 7644 §3.4.2.4: a negative count is interpreted as 0
    sort_order = str(get.get("sortorder") or "ascending")
    if sort_order.lower() not in ("ascending", "descending"):
        raise InvalidValue(f"sortOrder must be ascending or descending, got {sort_order!r}")
    flt = get.get("filter")
    if flt is not None and not isinstance(flt, str):
        raise InvalidValue("filter must be a string")
    return ListQuery(
        filter=flt or None,
        # LDAP's VLV offset is an INTEGER (0..2^31-1, RFC 4511 maxInt): beyond it slapd answers
        # protocolError; every index past the end gives the same empty page anyway
        start_index=min(max(start, 1), MAX_INT),
        count=count,
        sort_by=_s(get.get("sortby")) or None,
        sort_order=sort_order,
        projection=projection(rmap, get.get("attributes"), get.get("excludedattributes")),
        cursor=_s(get.get("cursor")),
    )


#: the SearchRequest members (RFC 7644 §3.4.3, RFC 9865 §2) and the JSON type each must have
_SEARCH_MEMBERS = {
    "attributes": "names",
    "excludedattributes": "names",
    "filter": "string",
    "sortby": "string",
    "sortorder": "string",
    "cursor": "string",
    "startindex": "integer",
    "count": "integer",
}

_KIND_TEXT = {
    "names": "an array of attribute names",
    "string": "a string",
    "integer": "an integer",
}


def search_request(body: Any) -> dict[str, Any]:
    """A SearchRequest body's members (keys lower-cased), each of the JSON type RFC 7644
    §3.4.3 gives it, or a 400 invalidValue naming the member; ``null`` is an absent member."""
    if not isinstance(body, dict):
        raise InvalidSyntax("a SearchRequest must be a JSON object")
    out: dict[str, Any] = {}
    for key, value in body.items():
        kind = _SEARCH_MEMBERS.get(key.lower())
        if kind is None or value is None:
            continue  # "schemas" and unknown members: not ours to judge here
        if not _has_type(value, kind):
            raise InvalidValue(f"{key} must be {_KIND_TEXT[kind]}, got {type(value).__name__}")
        out[key.lower()] = value
    return out


def _has_type(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":  # a decimal string too, as in a query string (parsed later); not bool
        return type(value) is int or isinstance(value, str)
    # attribute names: an array of strings, or one comma-separated string as in a query string
    return isinstance(value, str) or (
        isinstance(value, list) and all(isinstance(v, str) for v in value)
    )


def _s(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def list_response(result: ListResult, count: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schemas": [sch.LIST_RESPONSE],
        "totalResults": result.total,
        "itemsPerPage": len(result.resources),
        "startIndex": result.start_index,
        "Resources": result.resources,
    }
    if result.next_cursor:
        body["nextCursor"] = result.next_cursor
    if result.previous_cursor:
        body["previousCursor"] = result.previous_cursor
    body.update(result.extra)
    return body


def _etag(resource: dict[str, Any]) -> dict[str, str]:
    version = resource.get("meta", {}).get("version")
    return {"ETag": version} if version else {}


def _respond(resource: dict[str, Any], status: int = 200, location: bool = False) -> ScimResponse:
    headers = _etag(resource)
    if location and "meta" in resource:
        headers["Location"] = resource["meta"]["location"]
    return ScimResponse(resource, status_code=status, headers=headers)


def query_params(request: Request) -> dict[str, str]:
    """The query string as a dict, the last value of a repeated key winning — what
    ``dict(request.query_params)`` gives, without building Starlette's multi-dict."""
    raw = request.scope.get("query_string", b"")
    return dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True)) if raw else {}


async def list_resources(request: Request) -> Response:
    rmap = resource_map(request)
    query = list_query(rmap, query_params(request))
    result = await call(request, service(request).search, rmap.name, query, base_url(request))
    return ScimResponse(list_response(result, query.count))


async def search_resources(request: Request) -> Response:
    rmap = resource_map(request)
    query = list_query(rmap, search_request(await json_body(request)))
    result = await call(request, service(request).search, rmap.name, query, base_url(request))
    return ScimResponse(list_response(result, query.count))


async def search_root(request: Request) -> Response:
    """``POST /.search`` (RFC 7644 §3.4.3): one list over every resource type."""
    get = search_request(await json_body(request))
    mapping = request.app.state.mapping
    schemas = tuple(dict.fromkeys(s for r in mapping.resources.values() for s in r.schemas))
    first = next(iter(mapping.resources.values()))
    query = list_query(first, get)
    query = replace(
        query,
        projection=Projection.parse(get.get("attributes"), get.get("excludedattributes"), schemas),
    )
    result = await call(request, service(request).search_all, query, base_url(request))
    return ScimResponse(list_response(result, query.count))


async def create_resource(request: Request) -> Response:
    rmap = resource_map(request)
    body = await json_body(request)
    created = await call(request, service(request).create, rmap.name, body, base_url(request))
    return _respond(_project(rmap, created, request), 201, location=True)


def _project(rmap: ResourceMap, resource: dict[str, Any], request: Request) -> dict[str, Any]:
    """Apply ``attributes``/``excludedAttributes`` to a write response (RFC 7644 §3.9)."""
    params = {k.lower(): v for k, v in query_params(request).items()}
    if "attributes" not in params and "excludedattributes" not in params:
        return resource
    proj = projection(rmap, params.get("attributes"), params.get("excludedattributes"))
    out: dict[str, Any] = {}
    for key, value in resource.items():
        if key in ("schemas", "id") or proj.wants(key):
            out[key] = value
    return out


async def get_resource(request: Request) -> Response:
    rmap = resource_map(request)
    rid = request.path_params["id"]
    params = {k.lower(): v for k, v in query_params(request).items()}
    proj = projection(rmap, params.get("attributes"), params.get("excludedattributes"))
    resource = await call(request, service(request).get, rmap.name, rid, base_url(request), proj)
    inm = request.headers.get("if-none-match")
    version = resource.get("meta", {}).get("version")
    if inm and version and _etag_matches(inm, version):
        return Response(status_code=304, headers={"ETag": version})
    return _respond(resource)


def _etag_matches(header: str, version: str) -> bool:
    tags = {t.strip() for t in header.split(",")}
    bare = version[2:] if version.startswith("W/") else version
    return "*" in tags or any((t[2:] if t.startswith("W/") else t) == bare for t in tags)


async def replace_resource(request: Request) -> Response:
    rmap = resource_map(request)
    body = await json_body(request)
    updated = await call(
        request,
        service(request).replace,
        rmap.name,
        request.path_params["id"],
        body,
        base_url(request),
        request.headers.get("if-match"),
    )
    return _respond(_project(rmap, updated, request))


async def patch_resource(request: Request) -> Response:
    rmap = resource_map(request)
    body = await json_body(request)
    params = {k.lower(): v for k, v in query_params(request).items()}
    if _no_content(request, rmap, params):
        version = await call(
            request,
            service(request).patch_no_content,
            rmap.name,
            request.path_params["id"],
            body,
            base_url(request),
            request.headers.get("if-match"),
        )
        return Response(status_code=204, headers={"ETag": version} if version else {})
    # RFC 7644 §3.5.2: the response honours attributes/excludedAttributes, which is pushed down
    # so that excludedAttributes=members never reads a large member list back.
    proj = projection(rmap, params.get("attributes"), params.get("excludedattributes"))
    updated = await call(
        request,
        service(request).patch,
        rmap.name,
        request.path_params["id"],
        body,
        base_url(request),
        request.headers.get("if-match"),
        proj,
    )
    return _respond(_project(rmap, updated, request))


def _no_content(request: Request, rmap: ResourceMap, params: dict[str, str]) -> bool:
    """Whether a PATCH is answered 204 No Content (RFC 7644 §3.5.2 allows it): for a resource
    with members (a Group) when the request asks for no representation (no ``attributes`` or
    ``excludedAttributes``) and ``BRIDGE_GROUP_PATCH_RESPONSE`` is ``no-content`` (the
    default).  Okta and Entra ID send group PATCHes without either parameter; Entra ID's
    documentation expects 204, Okta accepts 200 or 204.  A 200 would read back and render
    the whole member list (3.6 MB for 20,000 members) that neither uses."""
    if rmap.member_map is None or "attributes" in params or "excludedattributes" in params:
        return False
    return bool(request.app.state.settings.group_patch_response == "no-content")


async def delete_resource(request: Request) -> Response:
    rmap = resource_map(request)
    await call(
        request,
        service(request).delete,
        rmap.name,
        request.path_params["id"],
        request.headers.get("if-match"),
    )
    return Response(status_code=204)


async def bulk_request(request: Request) -> Response:
    """POST /Bulk (RFC 7644 §3.7): parsed and ordered by scim/bulk.py, one
    service call runs every operation (service/bulk.py)."""
    settings = request.app.state.settings
    limits = Limits(settings.bulk_max_operations, settings.bulk_max_payload_bytes)
    if len(await request.body()) > limits.max_payload_bytes:  # a body sent without a length
        raise payload_too_large(limits.max_payload_bytes)
    body = await json_body(request)
    caller = bulk.Caller(
        token=request.scope.get("state", {}).get("token"),
        client=request.client.host if request.client else None,
        dry_run=settings.dry_run,
    )
    result = await call(
        request, bulk.run_bulk, service(request), body, base_url(request), limits, caller
    )
    return ScimResponse(result)


async def method_not_allowed(request: Request) -> Response:
    raise BadRequest("method not allowed on this endpoint", status=405)


def build_routes(base: str) -> list[BaseRoute]:
    def r(
        path: str, endpoint: Callable[..., Any], methods: list[str], name: str | None = None
    ) -> Route:
        return Route(base + path, endpoint, methods=methods, name=name)

    # The resource routes come first: they take nearly all the traffic, and each route costs a
    # regex match per request.  Their {resource} never matches the fixed endpoints (see
    # ResourceConvertor), so those still reach their own routes below; their {id} never matches
    # a reserved name (ResourceIdConvertor), so ``PATCH /Users/.search`` is a 405, not a write
    # to the id ".search".  The search routes carry the name by which the auth and audit layers
    # know the one POST that reads (bridge/telemetry.is_search).
    return [
        r("/{resource:resource}/.search", search_resources, ["POST"], SEARCH_ROUTE),
        # one route per path, dispatching on the method
        r(
            "/{resource:resource}",
            by_method(GET=list_resources, POST=create_resource),
            ["GET", "POST"],
        ),
        r(
            "/{resource:resource}/{id:resource_id}",
            by_method(
                GET=get_resource,
                PUT=replace_resource,
                PATCH=patch_resource,
                DELETE=delete_resource,
            ),
            ["GET", "PUT", "PATCH", "DELETE"],
        ),
        *ops_routes(base),
        r("/.search", search_root, ["POST"], SEARCH_ROUTE),
        r("/Bulk", bulk_request, ["POST"]),
        r("/Bulk", method_not_allowed, ["GET", "PUT", "PATCH", "DELETE"]),
    ]


class ResourceConvertor(Convertor[str]):
    """A path segment naming a resource endpoint: anything but the fixed SCIM endpoints
    (discovery, ``/Me``, ``/Bulk``, ``/.search``), which have routes of their own."""

    regex = "(?!(?:{})(?:/|$))[^/]+".format(
        "|".join(re.escape(name) for name in (*FIXED_ENDPOINTS, "Bulk", ".search"))
    )

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("resource", ResourceConvertor())


class ResourceIdConvertor(Convertor[str]):
    """A resource id: one path segment that is not a reserved name (``.search``, which is the
    search endpoint, and the dot segments that URL normalisation removes)."""

    regex = "(?!(?:{})$)[^/]+".format("|".join(re.escape(name) for name in RESERVED_IDS))

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("resource_id", ResourceIdConvertor())


def by_method(**handlers: Callable[[Request], Any]) -> Callable[[Request], Any]:
    """An endpoint serving each method with its handler (HEAD as GET, as Starlette does).
    The route lists the same methods, so any other method is Starlette's 405."""
    if "GET" in handlers:
        handlers["HEAD"] = handlers["GET"]

    async def endpoint(request: Request) -> Response:
        return await handlers[request.method](request)

    return endpoint
