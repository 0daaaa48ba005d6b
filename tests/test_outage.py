"""Directory outage on a real slapd: stopped, frozen (SIGSTOP) and restarted.

Requests fail within the configured timeouts with 503 + Retry-After (never hang, never 500),
and once slapd is back the same bridge serves again - reads and writes - without a restart
(broken pooled connections are discarded)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from bridge.mapping.model import MappingConfig
from tests.conftest import Backend, make_client, slapd_directory, unavailable
from tests.helpers import SCIM, USER_SCHEMA, create_user, patch

TIMEOUT = 2.0


@pytest.fixture
def own_slapd() -> Iterator[Any]:
    """A slapd of this test's own: it gets stopped and frozen."""
    try:
        from devtools.slapd import Slapd, require_slapd

        require_slapd()
    except (ImportError, RuntimeError) as exc:
        unavailable(f"slapd is not available: {exc}")
    server = Slapd()
    server.start()
    yield server
    if server.pid is not None:
        os.kill(server.pid, signal.SIGCONT)
    server.cleanup()


@pytest.fixture(params=["ldap3", "libldap"])
def outage_client(
    own_slapd: Any, openldap_mapping: MappingConfig, request: pytest.FixtureRequest
) -> Iterator[TestClient]:
    directory = slapd_directory(
        own_slapd.info, request.param, connect_timeout=1.0, operation_timeout=TIMEOUT, pool_size=4
    )
    client = make_client(Backend("slapd", directory, openldap_mapping, own_slapd.info))
    yield TestClient(
        client.app, base_url=str(client.base_url), raise_server_exceptions=False,
        headers=dict(client.headers),
    )  # fmt: skip
    directory.close()


def assert_503(r: Any, started: float, budget: float) -> None:
    elapsed = time.monotonic() - started
    assert r.status_code == 503, r.text
    assert int(r.headers["Retry-After"]) > 0
    assert r.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert elapsed < budget, f"took {elapsed:.1f}s, budget {budget}s"


def warm(client: TestClient, n: int = 4) -> list[str]:
    """Fill the connection pool: n users, then parallel reads."""
    return [create_user(client, f"warm{i}")["id"] for i in range(n)]


def test_stopped_directory_is_503_fast_and_recovers(
    own_slapd: Any, outage_client: TestClient
) -> None:
    ids = warm(outage_client)
    own_slapd.stop()
    for method, url, body in [
        ("GET", f"{SCIM}/Users", None),
        ("GET", f"{SCIM}/Users/{ids[0]}", None),
        ("POST", f"{SCIM}/Users", {"schemas": [USER_SCHEMA], "userName": "during"}),
        ("DELETE", f"{SCIM}/Users/{ids[1]}", None),
    ]:
        started = time.monotonic()
        r = outage_client.request(method, url, json=body)
        assert_503(r, started, budget=2 * TIMEOUT + 1)
    own_slapd.start()
    # every kind of request works at once - the first write too (stale pooled connections)
    r = outage_client.post(f"{SCIM}/Users", json={"schemas": [USER_SCHEMA], "userName": "after"})
    assert r.status_code == 201, r.text
    r = patch(outage_client, f"/Users/{ids[0]}", {"op": "replace", "path": "title", "value": "t"})
    assert r.status_code == 200, r.text
    assert outage_client.delete(f"{SCIM}/Users/{ids[1]}").status_code == 204
    assert outage_client.get(f"{SCIM}/Users").json()["totalResults"] == 4


def test_every_pooled_connection_is_replaced_after_a_restart(
    own_slapd: Any, outage_client: TestClient
) -> None:
    """Writes are not retried (they may have been applied), so each stale pooled connection
    must be noticed before it is used: N writes after a restart all succeed."""
    import concurrent.futures as cf

    ids = warm(outage_client)
    with cf.ThreadPoolExecutor(4) as pool:  # put 4 connections in the pool
        list(pool.map(lambda i: outage_client.get(f"{SCIM}/Users/{i}"), ids))
    own_slapd.restart()
    for i, rid in enumerate(ids):
        r = patch(
            outage_client, f"/Users/{rid}", {"op": "replace", "path": "title", "value": f"t{i}"}
        )
        assert r.status_code == 200, r.text


def frozen(pid: int, timeout: float = 5.0) -> None:
    """Wait until every thread of ``pid`` is stopped: kill() only queues SIGSTOP, and on a busy
    machine a slapd thread already running may answer one more request before it stops."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = []
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/stat") as f:
                states.append(f.read().rsplit(")", 1)[1].split()[0])
        if all(state in ("T", "t") for state in states):
            return
        time.sleep(0.01)
    raise AssertionError(f"slapd {pid} did not stop within {timeout} s")


def test_frozen_directory_times_out_with_503(own_slapd: Any, outage_client: TestClient) -> None:
    """SIGSTOP: the TCP connection stays open but nothing answers - the operation timeout."""
    ids = warm(outage_client, 1)
    os.kill(own_slapd.pid, signal.SIGSTOP)
    try:
        frozen(own_slapd.pid)
        started = time.monotonic()
        r = outage_client.get(f"{SCIM}/Users/{ids[0]}")
        assert_503(r, started, budget=3 * TIMEOUT + 2)
        started = time.monotonic()
        r = patch(
            outage_client, f"/Users/{ids[0]}", {"op": "replace", "path": "title", "value": "x"}
        )
        assert_503(r, started, budget=3 * TIMEOUT + 2)
    finally:
        os.kill(own_slapd.pid, signal.SIGCONT)
    r = outage_client.get(f"{SCIM}/Users/{ids[0]}")
    assert r.status_code == 200, r.text
