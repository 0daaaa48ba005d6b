"""``serve --workers N`` spreads one client's keep-alive connections over the workers (issue 19
item 6): each worker listens on its own SO_REUSEPORT socket (bridge/workers.py), where uvicorn's
shared socket put all 16 connections of a burst on one worker in 9 of 10 trials
(bench/RESULTS-workers.md).  Runs bench/workers.py itself (tuned slapd, real processes)."""

from __future__ import annotations

import ast
import os
import re
import socket
import subprocess
import sys

import pytest

from bridge import workers
from tests.conftest import ROOT, run_bench, unavailable


@pytest.fixture(autouse=True)
def _linux() -> None:
    if not workers.reuseport_supported():
        unavailable("SO_REUSEPORT balancing is Linux only")


def test_one_clients_connections_spread_over_the_workers() -> None:
    proc = run_bench(
        "bench/workers.py", "--shapes", "reuseport", "--trials", "4", "--connections", "16",
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    row = next(line for line in proc.stdout.splitlines() if line.startswith("reuseport"))
    assert row.split()[-1] == "0/4"  # never every connection on one worker
    trials = re.search(r"per trial: (\[.*\])", proc.stdout)
    assert trials is not None
    for counts in ast.literal_eval(trials.group(1)):
        assert len(counts) == 2 and sum(counts) == 16 and -1 not in counts


def test_sockets_share_the_port() -> None:
    first = workers.bind("127.0.0.1", 0)
    try:
        port = first.getsockname()[1]
        second = workers.bind("127.0.0.1", port)
        second.close()
    finally:
        first.close()


def test_a_worker_that_cannot_start_stops_the_server() -> None:
    """A bad setting makes every worker die at start-up: serve exits 1, no restart loop."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "BRIDGE_TOKEN": "t",
        "BRIDGE_CURSOR_SECRET": "s",
        # passes serve's own checks (settings, mapping) but not the client a worker builds
        "BRIDGE_LDAP_URL": "ldaps://127.0.0.1:9",
        "BRIDGE_LDAP_CA_FILE": str(ROOT / "README.md"),
    }
    cmd = [sys.executable, "-m", "bridge.cli", "serve", "--workers", "2", "--port", str(port)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-2000:]
    assert "failed to start" in run.stderr
