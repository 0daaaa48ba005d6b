"""The audit log: one record per SCIM write, on logger ``bridge.audit``.

A record says who (token name, client address), what (SCIM operation, resource type and id),
how (each LDAP write: operation, DN and attribute NAMES — never values, so no password ever
reaches it) and the outcome (HTTP status, LDAP result per operation).  Bearer tokens are never
logged, only the name the operator gave them (BRIDGE_TOKEN_<NAME>).  The JSON formatter adds
``time``; the record's fields are documented in docs/observability.md "Audit log".

A refused bearer token gets a record of its own (``scim_op: authenticate``, status 401, the
reason and the path, never the token), written by the auth layer at a bounded rate.  Client
input in a record (an id, a path) has its control characters escaped (bridge/logs.clean).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from bridge.observability import metrics
from bridge.observability.context import LdapOp
from bridge.observability.logs import clean

log = logging.getLogger("bridge.audit")

SCIM_OPS = {"POST": "create", "PUT": "replace", "PATCH": "patch", "DELETE": "delete"}


@dataclass(frozen=True)
class AuditRecord:
    request_id: str
    token: str | None
    client: str | None
    scim_op: str  # create | replace | patch | delete | bulk
    resource_type: str | None
    resource_id: str | None
    status: int
    ldap_ops: Sequence[LdapOp]
    dry_run: bool = False
    duration_ms: float = 0.0


def write(record: AuditRecord) -> None:
    """Emit one audit record."""
    metrics.AUDIT_RECORDS.labels(record.scim_op).inc()
    who = f"token {record.token!r}" if record.token else "unauthenticated client"
    resource_id = clean(record.resource_id) if record.resource_id else record.resource_id
    resource_type = clean(record.resource_type) if record.resource_type else record.resource_type
    target = " ".join(p for p in (resource_type, resource_id) if p) or "-"
    log.info(
        "%s %s by %s from %s: %d (%d LDAP write%s%s)",
        record.scim_op,
        target,
        who,
        record.client or "-",
        record.status,
        len(record.ldap_ops),
        "" if len(record.ldap_ops) == 1 else "s",
        ", dry run" if record.dry_run else "",
        extra={
            "audit": True,
            "request_id": record.request_id,
            "token": record.token,
            "client": record.client,
            "scim_op": record.scim_op,
            "resource_type": resource_type,
            "resource_id": resource_id,
            "status": record.status,
            "ldap_ops": [op.as_dict() for op in record.ldap_ops],
            "dry_run": record.dry_run,
            "duration_ms": record.duration_ms,
        },
    )


def write_auth_failure(
    request_id: str, client: str | None, method: str, path: str, reason: str, suppressed: int
) -> None:
    """The audit record of a refused bearer token (the caller bounds the rate; ``suppressed``
    counts the refusals not recorded since the previous record)."""
    metrics.AUDIT_RECORDS.labels("authenticate").inc()
    path = clean(path)
    log.info(
        "authenticate %s %s by unauthenticated client from %s: 401 (%s)%s",
        method,
        path,
        client or "-",
        reason,
        f"; {suppressed} more not recorded" if suppressed else "",
        extra={
            "audit": True,
            "request_id": request_id,
            "token": None,
            "client": client,
            "scim_op": "authenticate",
            "method": method,
            "path": path,
            "reason": reason,
            "status": 401,
            "ldap_ops": [],
            "suppressed": suppressed,
        },
    )
