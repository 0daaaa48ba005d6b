"""``scim_bridge_ldap_failovers_total`` counts a failover when the first server is down from
the start (issue 20): the first connection goes to the second URL, and that is a switch away
from the preferred server.  Both clients, against a real slapd behind a dead first URL."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from bridge.observability.metrics import _PoolCollector, watch_pool
from tests.conftest import slapd_directory

pytestmark = pytest.mark.slapd


def _dead_url() -> str:
    with socket.socket() as s:  # a port nobody listens on (bound, never listening, then freed)
        s.bind(("127.0.0.1", 0))
        return f"ldap://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize("client", ["ldap3", "libldap"])
def test_first_server_down_from_the_start_counts_one_failover(
    slapd_server: Any, client: str
) -> None:
    dead = _dead_url()
    directory = slapd_directory(
        slapd_server, client, urls=(dead, slapd_server.url), connect_timeout=2
    )
    try:
        directory.check()
        directory.check()  # further connections to the same server are no new failover
        stats = directory.pool_stats()
        assert stats.current_url == slapd_server.url
        assert stats.failovers == 1
        before = _failovers_metric()
        watch_pool(directory)
        assert _failovers_metric() - before == 1
    finally:
        directory.close()


@pytest.mark.parametrize("client", ["ldap3", "libldap"])
def test_first_server_up_counts_none(slapd_server: Any, client: str) -> None:
    directory = slapd_directory(slapd_server, client, urls=(slapd_server.url, _dead_url()))
    try:
        directory.check()
        assert directory.pool_stats().failovers == 0
        assert directory.pool_stats().current_url == slapd_server.url
    finally:
        directory.close()


def _failovers_metric() -> float:
    (family,) = [f for f in _PoolCollector().collect() if f.name.endswith("_ldap_failovers")]
    return float(family.samples[0].value)
