"""Bulk requests (RFC 7644 §3.7), the pure part: a BulkRequest parsed into :class:`Operation`
values, the order they run in, and the ``bulkId:`` references between them.  The runner that
carries them out through the service is :mod:`bridge.service.bulk`.

Ordering (§3.7, "MAY elect to optimize the sequence ... MUST ensure that the client's intent is
preserved"): operations run in request order, except that a POST runs before every operation
that references its ``bulkId`` (forward references, §3.7.2).  The references form a graph whose
strongly connected components are run as units, the units in a topological order that prefers
the request order (Kahn's algorithm over the condensation, smallest request index first).

Circular references (§3.7.1, e.g. two groups that contain each other): :func:`split_deferred`
splits a POST of a cycle into what can be created now and the values that point at members of
the cycle not created yet, which the runner adds afterwards with a PATCH.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bridge.errors import InvalidSyntax, InvalidValue, PayloadTooLarge, ScimError
from bridge.scim.schema import ci_get

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
METHODS = ("POST", "PUT", "PATCH", "DELETE")
REF = "bulkId:"
#: a SCIM resource is a few levels deep; deeper data is refused before it is walked
MAX_DEPTH = 32
#: the status of a successful operation of each method (§3.7.3)
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


def parse_request(body: Any, limits: Limits) -> BulkRequest:
    """Whole-request checks (a 400 or 413 for the request, nothing runs); per-operation problems
    are kept on the operation so the others still run (§3.7)."""
    if not isinstance(body, Mapping):
        raise InvalidSyntax("the bulk request body must be a JSON object")
    schemas = ci_get(body, "schemas")
    if not isinstance(schemas, list) or not any(
        isinstance(s, str) and s.lower() == BULK_REQUEST.lower() for s in schemas
    ):
        raise InvalidSyntax(f"schemas must contain {BULK_REQUEST}")
    ops = ci_get(body, "Operations")
    if not isinstance(ops, list):
        raise InvalidSyntax("Operations must be an array of operations")
    if len(ops) > limits.max_operations:
        raise PayloadTooLarge(
            f"The bulk request has {len(ops)} operations; maxOperations is {limits.max_operations}."
        )
    fail_on_errors = ci_get(body, "failOnErrors")
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
    method = ci_get(raw, "method")
    bulk_id = ci_get(raw, "bulkId")
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
    path, data, version = ci_get(raw, "path"), ci_get(raw, "data"), ci_get(raw, "version")
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
