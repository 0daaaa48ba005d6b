"""Per-request context carried into the service call (contextvars are copied by
``run_in_threadpool`` and by ``concurrency.run``): the request id, for log lines, and the write
collector, for the audit record.  Pure: no HTTP, no LDAP."""

from __future__ import annotations

import itertools
import os
from contextvars import ContextVar
from dataclasses import dataclass, field

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


@dataclass(frozen=True)
class LdapOp:
    """One LDAP write as the audit log shows it: attribute NAMES only, never values."""

    op: str  # add | modify | rename | delete
    dn: str
    attributes: tuple[str, ...] = ()
    result: str = "success"
    new_rdn: str | None = None
    planned: bool = False  # dry-run: planned, not applied

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"op": self.op, "dn": self.dn, "result": self.result}
        if self.attributes:
            out["attributes"] = list(self.attributes)
        if self.new_rdn is not None:
            out["new_rdn"] = self.new_rdn
        if self.planned:
            out["planned"] = True
        return out


@dataclass
class WriteLog:
    """The LDAP writes one request performed (appended from worker threads)."""

    ops: list[LdapOp] = field(default_factory=list)


write_log: ContextVar[WriteLog | None] = ContextVar("write_log", default=None)


def record(op: LdapOp) -> None:
    """Note an LDAP write for the current request's audit record (no-op outside a request)."""
    current = write_log.get()
    if current is not None:
        current.ops.append(op)


_ids = itertools.count(1)
_id_prefix: tuple[int, str] = (0, "")


def new_request_id() -> str:
    """A fresh request id: 8 random hex digits per process, then a counter (16 characters at
    most for a long while).  Unique across workers and replicas, and far cheaper than uuid4."""
    global _id_prefix
    pid = os.getpid()
    if _id_prefix[0] != pid:  # first use in this process (or after a fork)
        _id_prefix = (pid, os.urandom(4).hex())
    return f"{_id_prefix[1]}{next(_ids):08x}"


def current_request_id() -> str | None:
    return request_id.get()
