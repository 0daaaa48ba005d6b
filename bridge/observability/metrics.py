"""Prometheus metrics (names documented in docs/observability.md "Metrics").

Process-wide collectors on prometheus-client's default registry.  Connection-pool gauges and
the failover counter are read from the live directory clients at scrape time, so the clients
themselves import nothing from here.  With several uvicorn workers, set
``PROMETHEUS_MULTIPROC_DIR`` and /metrics aggregates all workers (prometheus-client's
multiprocess mode; pool gauges then come from the worker that answers the scrape).
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class PoolGauges(Protocol):
    """What the pool collector reads of one pool's statistics (``directory.base.PoolStats``
    has these fields); a Protocol so that this module imports nothing from ``directory/``."""

    @property
    def size(self) -> int: ...
    @property
    def in_use(self) -> int: ...
    @property
    def idle(self) -> int: ...
    @property
    def failovers(self) -> int: ...


class Pooled(Protocol):
    """A directory client that may keep a connection pool (every ``Directory`` does)."""

    def pool_stats(self) -> PoolGauges | None: ...


disable_created_metrics()  # the *_created series double the output and nobody graphs them

PREFIX = "scim_bridge"
_LATENCY = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

HTTP_REQUESTS = Counter(
    f"{PREFIX}_http_requests",
    "HTTP requests by route template, method and status",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    f"{PREFIX}_http_request_duration_seconds",
    "HTTP request latency by route template and method",
    ["route", "method"],
    buckets=_LATENCY,
)
LDAP_OPERATIONS = Counter(
    f"{PREFIX}_ldap_operations",
    "LDAP operations by type and result code",
    ["operation", "result"],
)
LDAP_LATENCY = Histogram(
    f"{PREFIX}_ldap_operation_duration_seconds",
    "LDAP operation latency by type",
    ["operation"],
    buckets=_LATENCY,
)
AUDIT_RECORDS = Counter(f"{PREFIX}_audit_records", "Audit records written", ["scim_op"])

_directories: weakref.WeakSet[Pooled] = weakref.WeakSet()


def watch_pool(directory: Pooled) -> None:
    """Report this directory's pool gauges and failovers at scrape time."""
    _directories.add(directory)


class _PoolCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            f"{PREFIX}_ldap_pool_connections",
            "LDAP connections by state (in_use, idle) and the pool's size (max)",
            labels=["state"],
        )
        failovers = CounterMetricFamily(
            f"{PREFIX}_ldap_failovers",
            "Times new LDAP connections went to a different server than before",
        )
        in_use = idle = size = switched = 0
        for directory in list(_directories):
            stats = directory.pool_stats()
            if stats is None:
                continue
            in_use += stats.in_use
            idle += stats.idle
            size += stats.size
            switched += stats.failovers
        gauge.add_metric(["in_use"], in_use)
        gauge.add_metric(["idle"], idle)
        gauge.add_metric(["max"], size)
        failovers.add_metric([], switched)
        yield gauge
        yield failovers


REGISTRY.register(_PoolCollector())


def exposition() -> tuple[bytes, str]:
    """The text exposition of every metric, and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(_PoolCollector())
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
