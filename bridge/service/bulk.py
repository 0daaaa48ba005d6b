"""Bulk operations (RFC 7644 §3.7): pure orchestration over the service facade
(:class:`bridge.service.facade.Service`).

A BulkRequest is parsed into :class:`Operation` values, ordered by the ``bulkId:`` references
between them, and each operation runs through the very Service method its single endpoint uses
(create / replace / patch / delete) — there is no second implementation of a write here.

Ordering (§3.7, "MAY elect to optimize the sequence ... MUST ensure that the client's intent is
preserved"): operations run in request order, except that a POST runs before every operation
that references its ``bulkId`` (forward references, §3.7.2).  The references form a graph whose
strongly connected components are run as units, the units in a topological order that prefers
the request order (Kahn's algorithm over the condensation, smallest request index first).

Circular references (§3.7.1, e.g. two groups that contain each other): the POSTs of a cycle are
created without the values that point at members of the cycle not created yet; once every member
exists, those values are added with a PATCH through Service.patch (one ``add`` without a path
whose value is the deferred part of the resource; for two groups, one MODIFY_ADD of the other
group's DN).  The result reported for such an operation is the one after that PATCH.

Failures (§3.7.3): an operation that fails is reported with its status and a SCIM error body in
``response``; the others go on, until ``failOnErrors`` errors have been counted.  A reference to
a ``bulkId`` that no POST of the request declares, or whose POST failed, fails the referencing
operation with 409 and scimType ``invalidValue`` (it cannot be resolved; nothing is written).
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from bridge.errors import (
    DirectoryError,
    InvalidSyntax,
    InvalidValue,
    NotFound,
    PayloadTooLarge,
    ScimError,
    Unavailable,
)
from bridge.observability import audit, context
from bridge.service.facade import Service

log = logging.getLogger("bridge.bulk")

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
METHODS = ("POST", "PUT", "PATCH", "DELETE")
REF = "bulkId:"
#: a SCIM resource is a few levels deep; deeper data is refused before it is walked
MAX_DEPTH = 32
SUCCESS = {"POST": "201", "PUT": "200", "PATCH": "200", "DELETE": "204"}


@dataclass(frozen=True)
class Limits:
    """§3.7.4: ``bulk.maxOperations/maxPayloadSize`` in ServiceProviderConfig (discovery.py)."""

    max_operations: int
    max_payload_bytes: int


def payload_too_large(limit: int) -> PayloadTooLarge:
    """The §3.7.4 answer to a bulk body larger than maxPayloadSize."""
    return PayloadTooLarge(f"The size of the bulk operation exceeds the maxPayloadSize ({limit}).")


# ------------------------------------------------------------------------------------ parsing
@dataclass(frozen=True)
class Operation:
    """One entry of ``Operations``.  ``error`` is a problem found while parsing: the operation is
    reported with it, in its turn, and never runs."""

    index: int
    method: str
    bulk_id: str | None
    path: str
    data: Any
    version: str | None
    refs: frozenset[str]
    error: ScimError | None = None

    @property
    def defines(self) -> str | None:
        """The bulkId other operations may reference: only a POST creates something to name."""
        return self.bulk_id if self.method == "POST" else None


@dataclass(frozen=True)
class BulkRequest:
    operations: tuple[Operation, ...]
    fail_on_errors: int | None


def _get(obj: Mapping[str, Any], key: str) -> Any:
    """Case-insensitive member lookup (RFC 7643 §2.1)."""
    if key in obj:
        return obj[key]
    low = key.lower()
    return next((v for k, v in obj.items() if isinstance(k, str) and k.lower() == low), None)


def parse_request(body: Any, limits: Limits) -> BulkRequest:
    """Whole-request checks (a 400 or 413 for the request, nothing runs); per-operation problems
    are kept on the operation so the others still run (§3.7)."""
    if not isinstance(body, Mapping):
        raise InvalidSyntax("the bulk request body must be a JSON object")
    schemas = _get(body, "schemas")
    if not isinstance(schemas, list) or not any(
        isinstance(s, str) and s.lower() == BULK_REQUEST.lower() for s in schemas
    ):
        raise InvalidSyntax(f"schemas must contain {BULK_REQUEST}")
    ops = _get(body, "Operations")
    if not isinstance(ops, list):
        raise InvalidSyntax("Operations must be an array of operations")
    if len(ops) > limits.max_operations:
        raise PayloadTooLarge(
            f"The bulk request has {len(ops)} operations; maxOperations is {limits.max_operations}."
        )
    fail_on_errors = _get(body, "failOnErrors")
    if fail_on_errors is not None and (
        isinstance(fail_on_errors, bool)
        or not isinstance(fail_on_errors, int)
        or fail_on_errors < 1
    ):
        raise InvalidValue(f"failOnErrors must be a positive integer, got {fail_on_errors!r}")
    parsed = tuple(parse_operation(i, op) for i, op in enumerate(ops))
    seen: dict[str, int] = {}
    for op in parsed:
        if op.defines is None:
            continue
        if op.defines in seen:
            # §3.7: bulkId is unique within a request; a reference to it would be ambiguous
            raise InvalidValue(
                f"bulkId {op.defines!r} is used by operations {seen[op.defines]} and {op.index}"
            )
        seen[op.defines] = op.index
    return BulkRequest(parsed, fail_on_errors)


def parse_operation(index: int, raw: Any) -> Operation:
    def bad(err: ScimError, method: str = "", bulk_id: str | None = None) -> Operation:
        return Operation(index, method, bulk_id, "", None, None, frozenset(), err)

    if not isinstance(raw, Mapping):
        return bad(InvalidSyntax(f"Operations[{index}] must be an object"))
    method = _get(raw, "method")
    bulk_id = _get(raw, "bulkId")
    shown = method.upper() if isinstance(method, str) else ""
    if bulk_id is not None and (not isinstance(bulk_id, str) or not bulk_id.strip()):
        return bad(InvalidValue(f"Operations[{index}].bulkId must be a non-empty string"), shown)
    if not isinstance(method, str) or method.upper() not in METHODS:
        return bad(
            InvalidValue(
                f"Operations[{index}].method must be one of {', '.join(METHODS)}, got {method!r}"
            ),
            shown,
            bulk_id,
        )
    method = method.upper()
    path, data, version = _get(raw, "path"), _get(raw, "data"), _get(raw, "version")
    if method == "POST" and bulk_id is None:
        return bad(InvalidValue(f"Operations[{index}].bulkId is required for POST"), method)
    if not isinstance(path, str) or not path.strip():
        return bad(InvalidValue(f"Operations[{index}].path is required"), method, bulk_id)
    if version is not None and not isinstance(version, str):
        return bad(InvalidValue(f"Operations[{index}].version must be a string"), method, bulk_id)
    if method != "DELETE" and not isinstance(data, Mapping):
        return bad(
            InvalidSyntax(f"Operations[{index}].data must be an object for {method}"),
            method,
            bulk_id,
        )
    refs: set[str] = set()
    try:
        refs.update(_path_refs(path))
        if method != "DELETE":
            _collect_refs(data, refs, 0)
    except InvalidSyntax as exc:
        return bad(exc, method, bulk_id)
    return Operation(
        index, method, bulk_id, path, data if method != "DELETE" else None, version, frozenset(refs)
    )


def _path_refs(path: str) -> set[str]:
    """``/Groups/bulkId:qwerty`` references ``qwerty``."""
    return {p[len(REF) :] for p in path.split("/") if p.startswith(REF) and len(p) > len(REF)}


def _collect_refs(value: Any, out: set[str], depth: int) -> None:
    """Every ``bulkId:<id>`` string anywhere in ``value`` (a whole string value: a member's
    ``value``, a manager's ``value``, a PATCH operation's value ...)."""
    if depth > MAX_DEPTH:
        raise InvalidSyntax(f"data is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        if value.startswith(REF) and len(value) > len(REF):
            out.add(value[len(REF) :])
    elif isinstance(value, Mapping):
        for v in value.values():
            _collect_refs(v, out, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _collect_refs(v, out, depth + 1)


# ------------------------------------------------------------------------------------ ordering
def plan(ops: Sequence[Operation]) -> list[tuple[int, ...]]:
    """Units of execution (operation indexes): each unit is a strongly connected component of
    the reference graph, a unit runs after the units it references, and among the units that
    are ready the one holding the smallest request index runs first."""
    defined = {op.defines: op.index for op in ops if op.defines is not None}
    deps = [sorted({defined[r] for r in op.refs if r in defined}) for op in ops]
    comps = _components(deps)
    comp_of = {i: c for c, members in enumerate(comps) for i in members}
    waits = [0] * len(comps)
    users: list[set[int]] = [set() for _ in comps]
    for i, ds in enumerate(deps):
        for d in ds:
            a, b = comp_of[i], comp_of[d]
            if a != b and a not in users[b]:
                users[b].add(a)
                waits[a] += 1
    ready = [(min(members), c) for c, members in enumerate(comps) if waits[c] == 0]
    heapq.heapify(ready)
    order: list[tuple[int, ...]] = []
    while ready:
        _, c = heapq.heappop(ready)
        order.append(tuple(sorted(comps[c])))
        for u in users[c]:
            waits[u] -= 1
            if waits[u] == 0:
                heapq.heappush(ready, (min(comps[u]), u))
    return order


def _components(deps: Sequence[Sequence[int]]) -> list[list[int]]:
    """Tarjan's strongly connected components, iterative (a long chain of references must not
    exhaust the Python stack)."""
    n = len(deps)
    index = [-1] * n
    low = [0] * n
    on_stack = [False] * n
    stack: list[int] = []
    comps: list[list[int]] = []
    counter = 0
    for root in range(n):
        if index[root] != -1:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack[v] = True
            recurse = False
            while i < len(deps[v]):
                w = deps[v][i]
                i += 1
                if index[w] == -1:
                    work.append((v, i))
                    work.append((w, 0))
                    recurse = True
                    break
                if on_stack[w]:
                    low[v] = min(low[v], index[w])
            if recurse:
                continue
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack[w] = False
                    comp.append(w)
                    if w == v:
                        break
                comps.append(comp)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    return comps


# ------------------------------------------------------------------------------------ references
def substitute(value: Any, ids: Mapping[str, str]) -> Any:
    """``value`` with every ``bulkId:<id>`` string replaced by the SCIM id of the resource its
    POST created."""
    if isinstance(value, str):
        return ids.get(value[len(REF) :], value) if value.startswith(REF) else value
    if isinstance(value, Mapping):
        return {k: substitute(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, ids) for v in value]
    return value


def _mentions(value: Any, wanted: Iterable[str]) -> bool:
    found: set[str] = set()
    _collect_refs(value, found, 0)
    return bool(found & set(wanted))


def split_deferred(data: Mapping[str, Any], later: set[str]) -> tuple[dict[str, Any], Any]:
    """§3.7.1: split a resource into what can be created now and the values that reference the
    ``later`` bulkIds (members of the same cycle not created yet).  A complex value or a
    multi-valued element that holds such a reference moves whole; the deferred part keeps the
    resource's shape, so it is the value of a PATCH ``add`` without a path (RFC 7644 §3.5.2.1).
    """
    now: dict[str, Any] = {}
    deferred: dict[str, Any] = {}
    for key, value in data.items():
        if not _mentions(value, later):
            now[key] = value
        elif isinstance(value, list):
            now[key] = [v for v in value if not _mentions(v, later)]
            deferred[key] = [v for v in value if _mentions(v, later)]
        elif isinstance(value, Mapping) and not _holds_ref(value, later):
            # an extension object (or another container): split inside it
            now[key], deferred[key] = split_deferred(value, later)
        else:
            deferred[key] = value
    return now, deferred


def _holds_ref(value: Mapping[str, Any], later: set[str]) -> bool:
    """A reference complex value (``{"value": "bulkId:x", ...}``) holds the reference itself."""
    return any(isinstance(v, str) and _mentions(v, later) for v in value.values())


# ------------------------------------------------------------------------------------ running
@dataclass(frozen=True)
class Caller:
    """Who sent the bulk request, for the audit records (bridge/observability/audit.py)."""

    token: str | None = None
    client: str | None = None
    dry_run: bool = False


@dataclass
class _State:
    ids: dict[str, str] = field(default_factory=dict)  # bulkId -> SCIM id
    failed: set[str] = field(default_factory=set)  # bulkIds whose POST failed
    results: dict[int, dict[str, Any]] = field(default_factory=dict)
    errors: int = 0
    stop: bool = False


class BulkRunner:
    """Runs one parsed BulkRequest against a Service; :meth:`run` returns the BulkResponse."""

    def __init__(self, service: Service, base_url: str, caller: Caller | None = None):
        self.service = service
        self.base_url = base_url
        self.caller = caller
        self.defined: set[str] = set()

    def run(self, request: BulkRequest) -> dict[str, Any]:
        ops = request.operations
        self.defined = {op.defines for op in ops if op.defines is not None}
        st = _State()
        for unit in plan(ops):
            first = ops[unit[0]]
            if len(unit) == 1 and (first.defines is None or first.defines not in first.refs):
                self._single(first, st)
            else:
                self._cycle([ops[i] for i in unit], st)
            limit = request.fail_on_errors
            if st.stop or (limit is not None and st.errors >= limit):
                break
        return {
            "schemas": [BULK_RESPONSE],
            "Operations": [st.results[i] for i in sorted(st.results)],
        }

    # -- one operation
    def _single(self, op: Operation, st: _State) -> None:
        with self._audited(op, st):
            try:
                self._check_refs(op, op.refs, st)
                data = substitute(op.data, st.ids) if op.refs else op.data
                resource = self._execute(op, data, st)
            except Exception as exc:  # every failure is reported on its operation
                self._fail(op, exc, st)
                return
            self._succeed(op, resource, st)

    @contextlib.contextmanager
    def _audited(self, op: Operation, st: _State, scim_op: str | None = None) -> Iterator[None]:
        """One audit record per Service call, as the single endpoints get one per request: the
        LDAP writes of this operation only (the request's own log still receives them all, for
        the record of the whole bulk request)."""
        if self.caller is None:
            yield
            return
        outer = context.write_log.get()
        mine = context.WriteLog()
        token = context.write_log.set(mine)
        started = time.perf_counter()
        try:
            yield
        finally:
            context.write_log.reset(token)
            if outer is not None:
                outer.ops.extend(mine.ops)
            result = st.results.get(op.index, {})
            try:
                rtype: str | None = self._target(op, st)[0]
            except ScimError:
                rtype = None
            location = result.get("location")
            audit.write(
                audit.AuditRecord(
                    request_id=context.current_request_id() or "-",
                    token=self.caller.token,
                    client=self.caller.client,
                    scim_op=scim_op or audit.SCIM_OPS.get(op.method, "invalid"),
                    resource_type=rtype,
                    resource_id=location.rsplit("/", 1)[-1] if location else None,
                    status=int(result.get("status", 500)),
                    ldap_ops=list(mine.ops),
                    dry_run=self.caller.dry_run,
                    duration_ms=round((time.perf_counter() - started) * 1e3, 2),
                )
            )

    def _check_refs(self, op: Operation, refs: Iterable[str], st: _State) -> None:
        for ref in sorted(refs):
            if ref not in self.defined:
                raise _unresolved(f"bulkId {ref!r} is not declared by any POST in this request")
            if ref in st.failed:
                raise _unresolved(f"bulkId {ref!r} cannot be resolved: its POST failed")
            if ref not in st.ids:
                raise _unresolved(f"bulkId {ref!r} cannot be resolved")

    def _execute(self, op: Operation, data: Any, st: _State) -> dict[str, Any] | None:
        if op.error is not None:
            raise op.error
        name, rid = self._target(op, st)
        svc = self.service
        if op.method == "POST":
            return svc.create(name, data, self.base_url)
        assert rid is not None
        if op.method == "PUT":
            return svc.replace(name, rid, data, self.base_url, op.version)
        if op.method == "PATCH":
            return svc.patch(name, rid, data, self.base_url, op.version)
        svc.delete(name, rid, op.version)
        return None

    def _target(self, op: Operation, st: _State) -> tuple[str, str | None]:
        """``/Users`` (POST) or ``/Users/{id}`` (the others) -> resource name and id."""
        path = "/".join(substitute(p, st.ids) for p in op.path.strip().split("/"))
        parts = [p for p in path.split("/") if p]
        if not parts:
            raise InvalidValue(f"path {op.path[:100]!r} names no resource endpoint")
        rmap = self.service.mapping.by_endpoint("/" + parts[0])
        if rmap is None:
            raise NotFound(f"no resource type at /{parts[0][:64]}")
        if op.method == "POST":
            if len(parts) != 1:
                raise InvalidValue(f"a POST path is a resource endpoint such as /{parts[0]}")
            return rmap.name, None
        if len(parts) != 2:
            raise InvalidValue(f"a {op.method} path names one resource: /{parts[0]}/{{id}}")
        return rmap.name, unquote(parts[1])

    def _location(self, op: Operation, st: _State) -> str | None:
        if op.method == "POST" or op.error is not None:
            return None
        try:
            name, rid = self._target(op, st)
        except ScimError:
            return None
        if rid is None or rid.startswith(REF):
            return None
        return f"{self.base_url}{self.service.rmap(name).endpoint}/{quote(rid, safe='')}"

    def _succeed(self, op: Operation, resource: dict[str, Any] | None, st: _State) -> None:
        out = _head(op)
        meta = (resource or {}).get("meta", {})
        if op.method == "DELETE":
            location = self._location(op, st)
            if location:
                out["location"] = location
        elif meta.get("location"):
            out["location"] = meta["location"]
        if meta.get("version"):
            out["version"] = meta["version"]
        out["status"] = SUCCESS[op.method]
        if op.defines is not None and resource is not None:
            st.ids[op.defines] = str(resource["id"])
        st.results[op.index] = out

    def _fail(
        self, op: Operation, exc: BaseException, st: _State, location: str | None = None
    ) -> None:
        err = _as_scim(exc, op)
        out = _head(op)
        location = location or self._location(op, st)
        if location:
            out["location"] = location  # §3.7.3: every result but a failed POST has one
        out["status"] = str(err.status)
        out["response"] = err.body()
        if op.defines is not None:
            st.failed.add(op.defines)
        st.errors += 1
        if isinstance(err, Unavailable):
            # the directory is down: the next operations would each wait for a timeout
            st.stop = True
        st.results[op.index] = out

    # -- a cycle (§3.7.1)
    def _cycle(self, members: list[Operation], st: _State) -> None:
        cycle = {op.defines for op in members if op.defines is not None}
        pending: list[tuple[Operation, str, dict[str, Any]]] = []
        for op in members:
            with self._audited(op, st):
                outside = op.refs - cycle
                try:
                    self._check_refs(op, outside, st)
                    later = {r for r in op.refs & cycle if r not in st.ids}
                    now, deferred = split_deferred(op.data, later)
                    resource = self._execute(op, substitute(now, st.ids), st)
                except Exception as exc:
                    self._fail(op, exc, st)
                    continue
                self._succeed(op, resource, st)
            if deferred and resource is not None:
                pending.append((op, str(resource["id"]), deferred))
        for op, rid, deferred in pending:
            location = st.results[op.index].get("location")
            with self._audited(op, st, "patch"):
                try:
                    self._check_refs(op, op.refs & cycle, st)
                    resource = self._complete(op, rid, deferred, st)
                except Exception as exc:
                    # the resource exists (location says where) without its circular references
                    self._fail(op, exc, st, location)
                    continue
                version = resource.get("meta", {}).get("version")
                if version:
                    st.results[op.index]["version"] = version

    def _complete(
        self, op: Operation, rid: str, deferred: dict[str, Any], st: _State
    ) -> dict[str, Any]:
        """Second step of §3.7.1: PATCH the deferred values in, as one ``add`` without a path
        whose value is the deferred part of the resource (RFC 7644 §3.5.2.1) — through
        Service.patch, so e.g. one MODIFY_ADD of the other group's DN."""
        name, _ = self._target(op, st)
        body = {
            "schemas": [PATCH_OP],
            "Operations": [{"op": "add", "value": substitute(deferred, st.ids)}],
        }
        return self.service.patch(name, rid, body, self.base_url)


def _head(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {"method": op.method} if op.method else {}
    if op.bulk_id is not None:
        out["bulkId"] = op.bulk_id
    return out


def _unresolved(detail: str) -> ScimError:
    return ScimError(detail, status=409, scim_type="invalidValue")


def _as_scim(exc: BaseException, op: Operation) -> ScimError:
    if isinstance(exc, ScimError):
        return exc
    if isinstance(exc, DirectoryError):
        return exc.to_scim()
    log.error("bulk operation %d (%s) failed", op.index, op.method, exc_info=exc)
    return ScimError("internal error; see the bridge log")


def run_bulk(
    service: Service, body: Any, base_url: str, limits: Limits, caller: Caller | None = None
) -> dict[str, Any]:
    """Parse, order and run a BulkRequest; returns the BulkResponse body (status 200)."""
    return BulkRunner(service, base_url, caller).run(parse_request(body, limits))
