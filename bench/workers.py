"""How the keep-alive connections of ONE client spread over ``serve --workers N`` (issue 19
item 6), for uvicorn's shared listening socket and for the bridge's one SO_REUSEPORT socket
per worker (bridge/workers.py).

    PYTHONPATH=$PWD .venv/bin/python bench/workers.py [--workers 2] [--connections 16] [--trials 20]

Starts the tuned test slapd, then each server shape in turn on a free port: ``shared`` is
``uvicorn --factory bridge.web.asgi:app --workers N`` (what ``serve --workers N`` ran before),
``reuseport`` is ``scim-ldap-bridge serve --workers N``.  Each trial opens ``--connections``
keep-alive connections from this one process, sends one request on each, and finds which
worker process holds the server end of each connection (Linux: /proc/net/tcp inodes and the
workers' /proc/<pid>/fd; nothing is added to the app).  Prints, per shape, the share of the
busiest worker per trial (median, worst) and how many trials put every connection on one worker.
Results: bench/RESULTS-workers.md.
"""

from __future__ import annotations

import argparse
import http.client
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools.slapd import Slapd  # noqa: E402

TOKEN = "bench-workers-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children(pid: int) -> list[int]:
    """Every descendant process of ``pid``."""
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            parent[int(d.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        todo += kids
    return out


def socket_inodes(pid: int) -> set[str]:
    out = set()
    fds = Path(f"/proc/{pid}/fd")
    try:
        for fd in fds.iterdir():
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link.startswith("socket:["):
                out.add(link[8:-1])
    except OSError:
        pass
    return out


def server_end_inodes(port: int) -> dict[int, str]:
    """client port -> inode of the server end of that connection (IPv4 loopback)."""
    out = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        cols = line.split()
        local, remote, inode = cols[1], cols[2], cols[9]
        if int(local.split(":")[1], 16) == port and inode != "0":
            out[int(remote.split(":")[1], 16)] = inode
    return out


def wait_ready(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/healthz")
            if c.getresponse().status < 500:
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"the server on port {port} did not start")


def trial(port: int, server_pid: int, connections: int) -> Counter[int]:
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(connections)]
    for c in conns:  # all at once, as a client's pool opens them (wrk, an IdP agent)
        c.connect()
    for c in conns:
        c.request(
            "GET",
            "/scim/v2/ServiceProviderConfig",
            headers={"Authorization": f"Bearer {TOKEN}", "Connection": "keep-alive"},
        )
        r = c.getresponse()
        r.read()
        assert r.status == 200, r.status
    ends = server_end_inodes(port)
    owner = {i: pid for pid in children(server_pid) for i in socket_inodes(pid)}
    spread: Counter[int] = Counter()
    for c in conns:
        client_port = c.sock.getsockname()[1]  # type: ignore[union-attr]
        spread[owner.get(ends.get(client_port, ""), -1)] += 1
        c.close()
    return spread


def measure(shape: str, args: argparse.Namespace, env: dict[str, str]) -> list[Counter[int]]:
    port = free_port()
    py = sys.executable
    workers = str(args.workers)
    if shape == "shared":
        cmd = [py, "-m", "uvicorn", "--factory", "bridge.web.asgi:app", "--workers", workers]
        cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    else:
        cmd = [py, "-m", "bridge.cli", "serve", "--workers", workers, "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        wait_ready(port)
        time.sleep(2)  # every worker up, not only the first
        out = []
        for _ in range(args.trials):
            out.append(trial(port, proc.pid, args.connections))
            time.sleep(0.2)
        return out
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--shapes", default="shared,reuseport")
    args = ap.parse_args()
    with Slapd() as server:
        info = server.info
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "BRIDGE_LDAP_URL": info.url,
            "BRIDGE_BIND_DN": info.bind_dn,
            "BRIDGE_BIND_PASSWORD": info.bind_password,
            "BRIDGE_TOKEN": TOKEN,
            "BRIDGE_CURSOR_SECRET": secrets.token_urlsafe(24),  # serve --workers needs one
            "BRIDGE_MAPPING": str(ROOT / "mappings" / "openldap.yaml"),
            "BRIDGE_LOG_LEVEL": "ERROR",
        }
        print(
            f"{args.workers} workers, {args.connections} keep-alive connections per trial, "
            f"{args.trials} trials"
        )
        print(f"{'shape':10} {'busiest worker share: median':>30} {'worst':>6} {'all on one':>11}")
        for shape in args.shapes.split(","):
            runs = measure(shape, args, env)
            shares = [max(c.values()) / args.connections for c in runs]
            one = sum(1 for c in runs if len(c) == 1)
            print(
                f"{shape:10} {statistics.median(shares):30.0%} {max(shares):6.0%} "
                f"{one:>5}/{len(runs)}"
            )
            print(f"{'':10} per trial: {[sorted(c.values(), reverse=True) for c in runs]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
