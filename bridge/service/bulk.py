"""Bulk operations (RFC 7644 §3.7): pure orchestration over the service facade
(:class:`bridge.service.facade.Service`).

A BulkRequest is parsed and ordered by :mod:`bridge.scim.bulk` (the ordering rule is described
there); each operation runs through the very Service method its single endpoint uses
(create / replace / patch / delete) — there is no second implementation of a write here.

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
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from bridge.errors import DirectoryError, InvalidValue, NotFound, ScimError, Unavailable
from bridge.observability import audit, context
from bridge.scim.bulk import (
    BULK_RESPONSE,
    REF,
    SUCCESS,
    BulkRequest,
    Limits,
    Operation,
    parse_request,
    plan,
    split_deferred,
    substitute,
)
from bridge.scim.schema import PATCH_OP
from bridge.service.facade import Service

log = logging.getLogger("bridge.bulk")


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
            return self._patch(name, rid, data, op.version)
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
        return self._patch(name, rid, body, None)

    def _patch(self, name: str, rid: str, body: Any, if_match: str | None) -> dict[str, Any]:
        """A bulk PATCH.  Its result carries only location and version (§3.7.3), so for a
        resource with members (a Group) it runs as the single endpoint's 204 PATCH does
        (Service.patch_no_content): nothing of a 50,000-member list is read back and rendered
        only to be dropped."""
        svc = self.service
        rmap = svc.rmap(name)
        if rmap.member_map is None:
            return svc.patch(name, rid, body, self.base_url, if_match)
        version = svc.patch_no_content(name, rid, body, self.base_url, if_match)
        meta = {"location": f"{self.base_url}{rmap.endpoint}/{quote(rid, safe='')}"}
        if version:
            meta["version"] = version
        return {"id": rid, "meta": meta}


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
