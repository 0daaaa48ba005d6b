"""A Directory decorator that measures and records every operation, at the one seam.

Counts and times each LDAP operation by type and result code (Prometheus), writes one log line
per operation carrying the request id, and notes each write (DN and attribute NAMES, never
values) for the request's audit record.  Wrapping at the seam instruments every client (ldap3,
embedded, python-ldap) the same way without touching any of them.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from bridge.directory.base import (
    Add,
    Delete,
    Directory,
    Entry,
    Modify,
    Rename,
    Search,
    SearchResult,
)
from bridge.directory.wrapper import Wrapper
from bridge.errors import DirectoryError
from bridge.observability import context, metrics

log = logging.getLogger("bridge.ldap")
T = TypeVar("T")


@functools.cache
def _counter(operation: str, result: str) -> Any:
    """The labelled child, looked up once (labels() costs more than the increment)."""
    return metrics.LDAP_OPERATIONS.labels(operation, result)


@functools.cache
def _histogram(operation: str) -> Any:
    return metrics.LDAP_LATENCY.labels(operation)


class InstrumentedDirectory(Wrapper):
    def __init__(self, inner: Directory):
        super().__init__(inner)
        self.name = inner.name
        self.cooperative = inner.cooperative
        metrics.watch_pool(inner)

    def _measure(
        self,
        operation: str,
        dn: str,
        fn: Callable[[], T],
        *,
        write: context.LdapOp | None = None,
    ) -> T:
        started = time.perf_counter()
        result = "success"
        try:
            return fn()
        except DirectoryError as exc:
            result = exc.code
            raise
        except Exception:
            result = "error"
            raise
        finally:
            self._done(operation, dn, result, time.perf_counter() - started, write)

    def _done(
        self,
        operation: str,
        dn: str,
        result: str,
        seconds: float,
        write: context.LdapOp | None,
    ) -> None:
        _counter(operation, result).inc()
        _histogram(operation).observe(seconds)
        if write is not None:
            context.record(
                context.LdapOp(write.op, write.dn, write.attributes, result, write.new_rdn)
            )
        if result != "success":
            level = logging.WARNING
        else:
            level = logging.INFO if write is not None else logging.DEBUG
        if not log.isEnabledFor(level):
            return
        extra: dict[str, object] = {
            "request_id": context.current_request_id(),
            "operation": operation,
            "dn": dn,
            "result": result,
            "duration_ms": round(seconds * 1e3, 2),
        }
        if write is not None:
            extra["attributes"] = list(write.attributes)
        log.log(level, "ldap %s %s", operation, result, extra=extra)

    # ------------------------------------------------------------------ reads
    def run(self, search: Search) -> SearchResult:
        return self._measure("search", search.base, lambda: self.inner.run(search))

    def stream(self, search: Search) -> Iterator[Entry]:
        started = time.perf_counter()
        result = "success"
        try:
            yield from self.inner.stream(search)
        except DirectoryError as exc:
            result = exc.code
            raise
        except GeneratorExit:
            result = "success"  # the caller stopped reading early
            raise
        except Exception:
            result = "error"
            raise
        finally:
            self._done("search", search.base, result, time.perf_counter() - started, None)

    def read(self, dn: str, attributes: Sequence[str]) -> Entry | None:
        return self._measure("read", dn, lambda: self.inner.read(dn, attributes))

    # ------------------------------------------------------------------ writes
    def run_add(self, op: Add) -> Entry | None:
        names = tuple(k for k, v in op.attributes.items() if v)
        return self._measure(
            "add", op.dn, lambda: self.inner.run_add(op), write=context.LdapOp("add", op.dn, names)
        )

    def run_modify(self, op: Modify) -> Entry | None:
        names = tuple(dict.fromkeys(c.attr for c in op.changes))
        write = context.LdapOp("modify", op.dn, names)
        return self._measure("modify", op.dn, lambda: self.inner.run_modify(op), write=write)

    def run_rename(self, op: Rename) -> str:
        write = context.LdapOp("rename", op.dn, new_rdn=op.new_rdn)
        return self._measure("rename", op.dn, lambda: self.inner.run_rename(op), write=write)

    def run_delete(self, op: Delete) -> None:
        write = context.LdapOp("delete", op.dn)
        self._measure("delete", op.dn, lambda: self.inner.run_delete(op), write=write)

    # ------------------------------------------------------------------ lifecycle
    def check(self) -> None:
        self._measure("check", "", self.inner.check)

    def __getattr__(self, name: str) -> object:
        # client-specific extras (e.g. the embedded directory's seed/fail_next) stay reachable
        return getattr(self.inner, name)
