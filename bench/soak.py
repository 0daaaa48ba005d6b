"""Bounded soak: the bridge under uvicorn (a subprocess) against a slapd this script starts,
several client threads mixing creates, patches, lookups and deletes, while slapd is stopped and
restarted twice.  Loopback only; bounded in time.

At the end every write acknowledged with a 2xx is checked against the directory (read as the
rootdn, not through the bridge): acknowledged creates/patches present and correct, acknowledged
deletes absent, group memberships exact.  A resource whose last write was *not* acknowledged
(503, timeout) may legitimately hold either state; it is counted, not checked.

    PYTHONPATH=. python bench/soak.py --duration 180 --threads 6 --report docs/soak-report.md

Exit status 1 if any acknowledged write was lost or any 500 was answered.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import ldap3

ROOT = Path(__file__).resolve().parent.parent

from devtools.slapd import Slapd  # noqa: E402

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
TOKEN = "soak-token-7d1f"


@dataclass
class Tracked:
    """What the directory must hold for one resource, per the acknowledged writes."""

    kind: str
    rid: str
    user_name: str
    attrs: dict[str, str] = field(default_factory=dict)
    members: set[str] = field(default_factory=set)  # groups: member user ids
    deleted: bool = False
    #: what a write without a definite answer (5xx / no answer) may have changed, until an
    #: acknowledged write sets it again: attribute names, "exists", or member ids (groups)
    unsure: set[str] = field(default_factory=set)


@dataclass
class Stats:
    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    by_op: collections.Counter[str] = field(default_factory=collections.Counter)
    requests: int = 0
    latencies: list[float] = field(default_factory=list)
    slow: list[tuple[float, str]] = field(default_factory=list)

    def record(self, op: str, status: str, seconds: float) -> None:
        with self.lock:
            self.requests += 1
            self.statuses[status] += 1
            self.by_op[f"{op} {status}"] += 1
            self.latencies.append(seconds)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_bridge(info: Any, port: int, log_path: Path, timeout: float) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(ROOT),
        BRIDGE_LDAP_URL=info.url,
        BRIDGE_BIND_DN=info.bind_dn,
        BRIDGE_BIND_PASSWORD=info.bind_password,
        BRIDGE_TOKEN=TOKEN,
        BRIDGE_PORT=str(port),
        BRIDGE_HOST="127.0.0.1",
        BRIDGE_LDAP_TIMEOUT=str(timeout),
        BRIDGE_LDAP_CONNECT_TIMEOUT="1",
        BRIDGE_LDAP_POOL_SIZE="8",
        BRIDGE_DEMO_DATA="false",
        BRIDGE_LOG_LEVEL="WARNING",
    )
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            r = httpx.get(
                f"http://127.0.0.1:{port}/scim/v2/Users?count=0",
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=2,
            )
            if r.status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"the bridge exited: {log_path.read_text()[-2000:]}")
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the bridge did not answer within 30 s")


class Client(threading.Thread):
    def __init__(self, n: int, base: str, stats: Stats, stop: threading.Event, seed: int):
        super().__init__(name=f"client-{n}", daemon=True)
        self.n = n
        self.http = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        )
        self.stats = stats
        self.stop_event = stop
        self.rng = random.Random(seed)
        self.users: dict[str, Tracked] = {}
        self.groups: dict[str, Tracked] = {}
        self.seq = 0
        self.errors: list[str] = []

    # -- one request, classified
    def call(
        self, op: str, method: str, url: str, body: Any = None, params: Any = None
    ) -> httpx.Response | None:
        started = time.monotonic()
        try:
            r = self.http.request(method, url, json=body, params=params)
        except httpx.HTTPError as exc:
            self.stats.record(op, f"transport:{type(exc).__name__}", time.monotonic() - started)
            return None
        elapsed = time.monotonic() - started
        self.stats.record(op, str(r.status_code), elapsed)
        if elapsed > 10:
            with self.stats.lock:
                self.stats.slow.append((elapsed, f"{method} {url} -> {r.status_code}"))
        if r.status_code >= 500 and r.status_code != 503:
            self.errors.append(f"{method} {url} -> {r.status_code} {r.text[:300]}")
        if r.status_code == 503:  # back off as an IdP would (Retry-After, capped for the soak)
            time.sleep(min(float(r.headers.get("Retry-After", "1")), 0.25))
        return r

    @staticmethod
    def definite(r: httpx.Response | None) -> bool:
        """A 2xx or a 4xx is a definite answer; a 5xx or no answer is not."""
        return r is not None and r.status_code < 500

    # -- operations
    def create_user(self) -> None:
        self.seq += 1
        name = f"soak{self.n}-{self.seq}-{self.rng.choice(['a', 'b b', 'c,d', 'é+f', '(g*)'])}"
        title = f"t{self.rng.randrange(1000)}"
        body = {"schemas": [USER], "userName": name, "title": title, "displayName": name.upper()}
        r = self.call("create", "POST", "/Users", body)
        if r is not None and r.status_code == 201:
            rid = r.json()["id"]
            self.users[rid] = Tracked(
                "User", rid, name, {"title": title, "displayName": name.upper()}
            )

    def patch_user(self) -> None:
        live = [u for u in self.users.values() if not u.deleted]
        if not live:
            return self.create_user()
        u = self.rng.choice(live)
        title = f"p{self.rng.randrange(10**6)}"
        ops = [{"op": "replace", "path": "title", "value": title}]
        new_name = None
        if self.rng.random() < 0.2:  # rename too: the two-step write
            self.seq += 1
            new_name = f"soak{self.n}-{self.seq}-renamed"
            ops.append({"op": "replace", "path": "userName", "value": new_name})
        r = self.call("patch", "PATCH", f"/Users/{u.rid}", {"schemas": [PATCH], "Operations": ops})
        touched = {"title", "uid"} if new_name else {"title"}
        if r is not None and r.status_code == 200:
            u.attrs["title"] = title
            if new_name:
                u.user_name = new_name
            u.unsure -= touched
        elif not self.definite(r):
            u.unsure |= touched

    def delete_user(self) -> None:
        live = [u for u in self.users.values() if not u.deleted]
        if len(live) < 3:
            return self.create_user()
        u = self.rng.choice(live)
        r = self.call("delete", "DELETE", f"/Users/{u.rid}")
        if r is not None and r.status_code in (204, 404):
            if r.status_code == 404 and "exists" not in u.unsure:
                self.errors.append(f"acknowledged user {u.rid} ({u.user_name}) was not found")
            u.deleted = True
            u.unsure.clear()
            for g in self.groups.values():
                g.members.discard(u.rid)
                g.unsure.discard(u.rid)
        elif not self.definite(r):
            u.unsure.add("exists")
            for g in self.groups.values():
                g.unsure.add(u.rid)

    def lookup(self) -> None:
        live = [u for u in self.users.values() if not u.deleted and not u.unsure]
        if not live:
            self.call("list", "GET", "/Users?count=5")
            return
        u = self.rng.choice(live)
        if self.rng.random() < 0.5:
            r = self.call("get", "GET", f"/Users/{u.rid}")
            if r is not None and r.status_code == 200 and r.json()["userName"] != u.user_name:
                self.errors.append(f"GET {u.rid}: userName {r.json()['userName']!r}")
        else:
            flt = 'userName eq "' + u.user_name.replace("\\", "\\\\").replace('"', '\\"') + '"'
            r = self.call("filter", "GET", "/Users", params={"filter": flt})
            if r is not None and r.status_code == 200:
                ids = [x["id"] for x in r.json()["Resources"]]
                if ids != [u.rid]:
                    self.errors.append(f"filter {flt!r} returned {ids}, expected {[u.rid]}")

    def group_op(self) -> None:
        if not self.groups:
            self.seq += 1
            name = f"team{self.n}-{self.seq}"
            r = self.call("create", "POST", "/Groups", {"schemas": [GROUP], "displayName": name})
            if r is not None and r.status_code == 201:
                rid = r.json()["id"]
                self.groups[rid] = Tracked("Group", rid, name)
            return
        g = self.rng.choice(list(self.groups.values()))
        live = [u for u in self.users.values() if not u.deleted and "exists" not in u.unsure]
        if not live:
            return
        u = self.rng.choice(live)
        if u.rid in g.members:
            op = {"op": "remove", "path": f'members[value eq "{u.rid}"]'}
        else:
            op = {"op": "add", "path": "members", "value": [{"value": u.rid}]}
        r = self.call(
            "members", "PATCH", f"/Groups/{g.rid}", {"schemas": [PATCH], "Operations": [op]}
        )
        if r is not None and r.status_code in (200, 204):
            if op["op"] == "add":
                g.members.add(u.rid)
            else:
                g.members.discard(u.rid)
            g.unsure.discard(u.rid)
        elif not self.definite(r):
            g.unsure.add(u.rid)

    def run(self) -> None:
        actions = [
            (self.create_user, 25),
            (self.patch_user, 30),
            (self.lookup, 25),
            (self.delete_user, 10),
            (self.group_op, 10),
        ]
        fns = [a for a, w in actions for _ in range(w)]
        while not self.stop_event.is_set():
            self.rng.choice(fns)()


def rss_peak_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def verify(info: Any, clients: list[Client]) -> tuple[int, int, int, list[str]]:
    """(checked, lost, uncertain, problems) against the directory, read as the rootdn."""
    conn = ldap3.Connection(info.url, info.admin_dn, info.admin_password, auto_bind=True)
    problems: list[str] = []
    checked = lost = uncertain = 0

    def read(base: str, uuid: str, attrs: list[str]) -> dict[str, Any] | None:
        conn.search(base, f"(entryUUID={uuid})", attributes=attrs)
        if not conn.response:
            return None
        return {k.lower(): v for k, v in conn.response[0]["attributes"].items()} | {
            "dn": conn.response[0]["dn"]
        }

    for c in clients:
        for u in c.users.values():
            if "exists" in u.unsure:
                uncertain += 1
                continue
            checked += 1
            got = read(info.people_dn, u.rid, ["uid", "title", "displayName"])
            if u.deleted:
                if got is not None:
                    lost += 1
                    problems.append(f"acknowledged delete of {u.rid} ({u.user_name}) undone")
                continue
            if got is None:
                lost += 1
                problems.append(f"acknowledged user {u.rid} ({u.user_name}) missing")
                continue
            want = {"uid": u.user_name, **u.attrs}
            have = {
                "uid": got["uid"][0] if got["uid"] else None,
                "title": got["title"][0] if got.get("title") else None,
                "displayName": got.get("displayname"),
            }
            for name in u.unsure:  # a write without a definite answer may have set these
                want.pop(name, None)
                have.pop(name, None)
            if u.unsure:
                uncertain += 1
            if have != want:
                lost += 1
                problems.append(f"user {u.rid}: directory {have} != acknowledged {want}")
        for g in c.groups.values():
            checked += 1
            got = read(info.groups_dn, g.rid, ["member"])
            if got is None:
                lost += 1
                problems.append(f"acknowledged group {g.rid} missing")
                continue
            member_dns = {m.lower() for m in got.get("member", [])}
            want_dns = set()
            for rid in g.members:
                found = read(info.people_dn, rid, ["uid"])
                want_dns.add(found["dn"].lower() if found else f"<missing {rid}>")
            member_dns.discard("cn=empty-membership-placeholder,dc=example,dc=org")
            if g.unsure:  # members whose add/remove had no definite answer may go either way
                uncertain += 1
                for rid in g.unsure:
                    found = read(info.people_dn, rid, ["uid"])
                    if found:
                        member_dns.discard(found["dn"].lower())
                        want_dns.discard(found["dn"].lower())
            if member_dns != want_dns:
                lost += 1
                problems.append(f"group {g.rid}: members {member_dns} != acknowledged {want_dns}")
    conn.unbind()
    return checked, lost, uncertain, problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=180, help="seconds of load (default 180)")
    ap.add_argument("--threads", type=int, default=6)
    ap.add_argument("--outage", type=float, default=8, help="seconds slapd stays down, twice")
    ap.add_argument("--timeout", type=float, default=3, help="bridge LDAP operation timeout")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--report", help="write the markdown report here too")
    args = ap.parse_args()
    if args.duration > 300:
        ap.error("--duration is bounded at 300 s")

    slapd = Slapd()
    info = slapd.start()
    port = free_port()
    log_path = Path(info.directory) / "bridge.log"
    bridge = start_bridge(info, port, log_path, args.timeout)
    stats = Stats()
    stop = threading.Event()
    clients = [
        Client(i, f"http://127.0.0.1:{port}/scim/v2", stats, stop, args.seed + i)
        for i in range(args.threads)
    ]
    events: list[str] = []
    started = time.monotonic()

    def at(label: str) -> None:
        events.append(f"{time.monotonic() - started:7.1f}s  {label}")

    try:
        for c in clients:
            c.start()
        at(f"{args.threads} clients started")
        for k, frac in enumerate((0.25, 0.6), 1):
            time.sleep(max(0.0, started + args.duration * frac - time.monotonic()))
            slapd.stop()
            at(f"slapd stopped ({k}/2)")
            time.sleep(args.outage)
            slapd.start()
            at(f"slapd restarted ({k}/2)")
        time.sleep(max(0.0, started + args.duration - time.monotonic()))
        stop.set()
        for c in clients:
            c.join(timeout=60)
        at("clients stopped")
        peak = rss_peak_kib(bridge.pid)
        time.sleep(0.5)  # refint works asynchronously
        checked, lost, uncertain, problems = verify(info, clients)
    finally:
        stop.set()
        bridge.send_signal(signal.SIGTERM)
        try:
            bridge.wait(timeout=10)
        except subprocess.TimeoutExpired:
            bridge.kill()
        bridge_log = log_path.read_text("utf-8", "replace") if log_path.exists() else ""
        slapd.cleanup()

    client_errors = [e for c in clients for e in c.errors]
    fives = sum(n for s, n in stats.statuses.items() if s.startswith("5") and s != "503")
    unhandled = bridge_log.count("unhandled error")
    lat = sorted(stats.latencies) or [0.0]
    lines = [
        "# Soak report",
        "",
        "Command:",
        "",
        "    PYTHONPATH=. python bench/soak.py " + " ".join(sys.argv[1:]),
        "",
        f"- duration: {args.duration:.0f} s of load, {args.threads} client threads, "
        f"slapd stopped twice for {args.outage:.0f} s each, bridge LDAP timeout {args.timeout} s",
        f"- requests: **{stats.requests}**",
        f"- responses by status: {dict(sorted(stats.statuses.items()))}",
        f"- 500s (any 5xx other than 503): **{fives}**",
        f"- acknowledged writes lost: **{lost}** (resources checked: {checked}, of which "
        f"{uncertain} had a later write without a definite answer (503/no answer), whose "
        "attributes or members were then not compared)",
        f"- client-side consistency errors (wrong GET/filter answers): **{len(client_errors)}**",
        f"- 'unhandled error' records in the bridge log: **{unhandled}**",
        f"- peak RSS of the bridge (VmHWM): **{peak / 1024:.1f} MiB**",
        f"- latency: p50 {lat[len(lat) // 2] * 1e3:.1f} ms, "
        f"p99 {lat[int(len(lat) * 0.99)] * 1e3:.1f} ms, max {lat[-1] * 1e3:.0f} ms",
        "",
        "Timeline:",
        "",
        *[f"    {e}" for e in events],
        "",
        "By operation:",
        "",
        *[f"    {k}: {v}" for k, v in sorted(stats.by_op.items())],
    ]
    if problems or client_errors:
        lines += ["", "Problems:", "", *[f"- {p}" for p in (problems + client_errors)[:50]]]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.report:
        Path(args.report).write_text(report)
    return 1 if (lost or fives or client_errors or unhandled) else 0


if __name__ == "__main__":
    sys.exit(main())
