"""ASGI middleware for request ids, HTTP metrics and the audit log (outermost layer).

* Request id: a client's ``X-Request-Id`` (if short and plain) or a fresh one; set in the scope
  state (ScimMiddleware keeps it), in a contextvar (so LDAP log lines carry it, also in the
  threadpool), and echoed as a response header.
* Metrics: requests by route *template* (``/scim/v2/Users/{id}``, never the raw path, so label
  cardinality stays bounded), method and status, with a latency histogram.
* Audit: every SCIM write (POST/PUT/PATCH/DELETE under the base path to a resource endpoint or
  /Bulk) gets one audit record with the LDAP writes it caused (see
  bridge/observability/audit.py).  The one POST that is a read, a search, is recognised by the
  route it matches (``is_search``), never by the path's suffix: ``PATCH /Users/.search`` is a
  write attempt and is audited.  A request whose authentication failed is audited by the auth
  layer instead (rate-limited, auth.py).
"""

from __future__ import annotations

import functools
import re
import time
from typing import Any

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge.mapping.model import MappingConfig
from bridge.observability import audit, context, metrics
from bridge.settings import Settings

#: the name of the search routes (resources.py): the only POSTs that are reads
SEARCH_ROUTE = "scim-search"
_RID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_WRITES = ("POST", "PUT", "PATCH", "DELETE")
_METHODS = frozenset({"GET", "HEAD", "OPTIONS", *_WRITES})  # anything else: "other" (bounded)


@functools.lru_cache(maxsize=4096)  # label sets are bounded: route templates x methods x codes
def _requests(route: str, method: str, status: int) -> Any:
    return metrics.HTTP_REQUESTS.labels(route, method, str(status))


@functools.lru_cache(maxsize=1024)
def _latency(route: str, method: str) -> Any:
    return metrics.HTTP_LATENCY.labels(route, method)


@functools.lru_cache(maxsize=256)
def _plain_template(path: str) -> str:
    """``/{resource:resource}/{id}`` -> ``/{resource}/{id}`` (convertors are not for labels)."""
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", path)


def matched_route(scope: Scope, routes: list[BaseRoute]) -> BaseRoute | None:
    """The route that will serve this request (a full match: path and method), worked out once
    per request and kept in the scope state for the other layers."""
    state = scope.setdefault("state", {})
    if "matched_route" not in state:
        found = None
        for candidate in routes:
            match, _ = candidate.matches(scope)
            if match == Match.FULL:
                found = candidate
                break
        state["matched_route"] = found
    route: BaseRoute | None = state["matched_route"]
    return route


def is_search(scope: Scope, routes: list[BaseRoute]) -> bool:
    """A POST that the router will hand to a search endpoint (RFC 7644 §3.4.3): a read."""
    if scope["method"] != "POST":
        return False
    return getattr(matched_route(scope, routes), "name", None) == SEARCH_ROUTE


class TelemetryMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        settings: Settings,
        mapping: MappingConfig,
        routes: list[BaseRoute],
    ):
        self.app = app
        self.settings = settings
        self.mapping = mapping
        self.routes = routes
        self._labels: dict[tuple[int, Any], str] = {}  # (route, resource) -> metric label

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "//" in scope["path"]:
            # Okta's On-Prem Provisioning agent (and hand-typed IdP settings) may be given a
            # base URL that ends in "/", and then ask for ".../scim/v2//Users": one slash is
            # meant, so the route, the auth and the audit all see the collapsed path
            scope["path"] = _collapse_slashes(scope["path"])
        rid = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = rid
        path: str = scope["path"]
        base = self.settings.base_path
        is_write = (
            scope["method"] in _WRITES
            and path.startswith(base + "/")
            and self._audited(path[len(base) + 1 :].split("/", 1)[0])
            and not is_search(scope, self.routes)
        )
        writes = context.WriteLog() if is_write else None
        rid_token = context.request_id.set(rid)
        wl_token = context.write_log.set(writes)
        status = 500
        location: str | None = None

        async def send_wrapper(message: Message) -> None:
            nonlocal status, location
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), (b"x-request-id", rid.encode())]
                if writes is not None:  # the audit record names a created resource's id
                    for k, v in headers:
                        if k.lower() == b"location":
                            location = v.decode("latin-1")
                message = {**message, "headers": headers}
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = self._template(scope)
            method = scope["method"] if scope["method"] in _METHODS else "other"
            _requests(route, method, status).inc()
            _latency(route, method).observe(elapsed)
            if writes is not None and not scope["state"].get("auth_failed"):
                self._audit(scope, rid, status, location, writes, elapsed)
            context.write_log.reset(wl_token)
            context.request_id.reset(rid_token)

    def _audited(self, endpoint: str) -> bool:
        """Writes to resource endpoints and /Bulk are audited (not e.g. a POST to /Schemas)."""
        return endpoint == "Bulk" or self.mapping.by_endpoint("/" + endpoint) is not None

    def _template(self, scope: Scope) -> str:
        route = scope.get("route")
        params: dict[str, Any] = scope.get("path_params") or {}
        if route is None:
            return self._match_template(scope, params)
        key = (id(route), params.get("resource"))  # the usual case: worked out once
        label = self._labels.get(key)
        if label is None:
            label = self._match_template(scope, params)
            if len(self._labels) >= 1024:  # {resource} is client input: stay bounded
                self._labels.clear()
            self._labels[key] = label
        return label

    def _match_template(self, scope: Scope, params: dict[str, Any]) -> str:
        route = scope.get("route")
        if route is None:
            for candidate in self.routes:
                match, child = candidate.matches(scope)
                if match == Match.FULL:
                    route, params = candidate, child.get("path_params", {})
                    break
        template = getattr(route, "path", None)
        if not isinstance(template, str):
            return "unmatched"
        template = _plain_template(template)
        resource = params.get("resource")
        if resource is not None:
            rmap = self.mapping.by_endpoint("/" + str(resource))
            if rmap is not None:  # a known endpoint: bounded, and far more useful than {resource}
                template = template.replace("{resource}", rmap.endpoint.lstrip("/"))
        return template

    def _audit(
        self,
        scope: Scope,
        rid: str,
        status: int,
        location: str | None,
        writes: context.WriteLog,
        elapsed: float,
    ) -> None:
        rest = scope["path"][len(self.settings.base_path) :].strip("/").split("/")
        rmap = self.mapping.by_endpoint("/" + rest[0]) if rest and rest[0] else None
        if rest[0] == "Bulk":
            scim_op, rtype = "bulk", None
        else:
            scim_op = audit.SCIM_OPS.get(scope["method"], scope["method"].lower())
            rtype = rmap.name if rmap else rest[0][:64] or None
        rid_value = rest[1] if len(rest) > 1 else None
        if rid_value is None and location and status == 201:
            rid_value = location.rstrip("/").rsplit("/", 1)[-1]
        client = scope.get("client")
        state = scope.get("state") or {}
        audit.write(
            audit.AuditRecord(
                request_id=rid,
                token=state.get("token"),
                client=client[0] if client else None,
                scim_op=scim_op,
                resource_type=rtype,
                resource_id=rid_value[:256] if rid_value else None,
                status=status,
                ldap_ops=list(writes.ops),
                dry_run=self.settings.dry_run,
                duration_ms=round(elapsed * 1e3, 2),
            )
        )


def _request_id(scope: Scope) -> str:
    for key, value in scope["headers"]:
        if key.lower() == b"x-request-id":
            text = value.decode("latin-1").strip()
            if _RID.fullmatch(text):
                return text
            break
    return context.new_request_id()


def _collapse_slashes(path: str) -> str:
    return re.sub("/{2,}", "/", path)
