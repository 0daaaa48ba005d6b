"""Benchmark: the bridge against the LDAP floor, on loopback, bounded in time.

    python bench/run.py --quick          # smoke, ~30 s: 1,000 users, every scenario, c=16
    python bench/run.py                  # full: 10,000 and 100,000 users, c=1 and c=16,
                                         # both clients; writes bench/RESULTS.md

For each directory size it starts slapd seeded by slapadd (bench/ldapserver.py), then for each
LDAP client starts the bridge as production runs it (uvicorn, N workers, settings from the
environment) and drives it with wrk (bench/wrk/scenario.lua); then it issues the same core LDAP
operations directly with ldap3 and python-ldap at the same concurrency (bench/floor.py).  It
reports req/s, p50/p99 latency, CPU per request of the bridge (all its processes) and of slapd,
LDAP operations per request (slapd's monitor), the bridge's RSS per worker, and bridge/floor.

Performance is a benchmark result, not a test: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for the bench package itself (bench.ldapserver, bench.floor)

from bench import ldapserver  # noqa: E402
from bench.floor import run as floor_run  # noqa: E402

TOKEN = "bench-token-9b1f2c"
SCENARIOS = [
    "lookup",
    "get",
    "list",
    "listdeep",
    "cursor",
    "create",
    "patch",
    "addmember",
    "delete",
]
LABELS = {
    "lookup": "lookup `userName eq`",
    "get": "GET by id",
    "list": "list page of 100 (start)",
    "listdeep": "list page of 100 (90% deep)",
    "cursor": "cursor walk, pages of 100",
    "create": "create",
    "patch": "PATCH replace",
    "addmember": "PATCH add member (big group)",
    "delete": "DELETE",
}
TICK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------- processes
def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            pass
    return total / TICK


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class RssSampler(threading.Thread):
    """Max RSS per process while a scenario runs."""

    def __init__(self, pids: list[int]):
        super().__init__(daemon=True)
        self.pids = pids
        self.peak: dict[int, float] = {}
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.25):
            for p in self.pids:
                self.peak[p] = max(self.peak.get(p, 0.0), rss_mb(p))

    def stop(self) -> dict[int, float]:
        self.halt.set()
        self.join()
        return self.peak


# ---------------------------------------------------------------------------- directory data
def ldap_conn(server: ldapserver.Server, admin: bool = True) -> Any:
    import ldap

    c = ldap.initialize(server.url)
    if admin:
        c.simple_bind_s(ldapserver.ADMIN_DN, ldapserver.ADMIN_PW)
    else:
        c.simple_bind_s(server.bind_dn, server.bind_password)
    return c


def uuids(server: ldapserver.Server, flt: str, limit: int) -> list[tuple[str, str]]:
    import ldap

    c = ldap_conn(server)
    try:
        found = c.search_ext_s(server.people_dn, ldap.SCOPE_ONELEVEL, flt, ["entryUUID"])
        return [(dn, a["entryUUID"][0].decode()) for dn, a in found if dn][:limit]
    finally:
        c.unbind_s()


def parallel(fn: Any, items: list[Any], threads: int = 8) -> None:
    chunks = [items[i::threads] for i in range(threads)]

    def work(chunk: list[Any]) -> None:
        c = ldap_conn(server_ref[0])
        try:
            for it in chunk:
                fn(c, it)
        finally:
            c.unbind_s()

    ts = [threading.Thread(target=work, args=(ch,)) for ch in chunks if ch]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


server_ref: list[ldapserver.Server] = []


def make_victims(server: ldapserver.Server, tag: str, count: int) -> list[tuple[str, str]]:
    """Users the DELETE scenarios consume, added directly (not by the bridge)."""

    def add(c: Any, i: int) -> None:
        uid = f"v{tag}-{i}"
        c.add_s(
            f"uid={uid},{server.people_dn}",
            [
                ("objectClass", [b"inetOrgPerson"]),
                ("uid", [uid.encode()]),
                ("cn", [b"v"]),
                ("sn", [b"v"]),
            ],
        )

    parallel(add, list(range(count)))
    return uuids(server, f"(uid=v{tag}-*)", count)


def remove(server: ldapserver.Server, dns: list[str]) -> None:
    import ldap

    def delete(c: Any, dn: str) -> None:
        with contextlib.suppress(ldap.NO_SUCH_OBJECT):
            c.delete_s(dn)

    parallel(delete, dns)


def reset_big_group(server: ldapserver.Server, outsiders: set[str]) -> None:
    """Remove the members the add-member scenario added, so every run starts from K members."""
    import ldap

    c = ldap_conn(server)
    try:
        big = f"cn=biggroup,{server.groups_dn}"
        found = c.search_s(big, ldap.SCOPE_BASE, attrlist=["member"])
        have = {v.decode().lower(): v for v in found[0][1].get("member", [])}
        drop = [v for k, v in have.items() if k in outsiders]
        if drop:
            c.modify_s(big, [(ldap.MOD_DELETE, "member", drop)])
    finally:
        c.unbind_s()


def lua_table(values: list[str]) -> str:
    return "{" + ",".join(json.dumps(v) for v in values) + "}"


# ---------------------------------------------------------------------------- bridge
CURSOR_SECRET = secrets.token_urlsafe(32)


def start_bridge(
    server: ldapserver.Server, client: str, workers: int
) -> tuple[subprocess.Popen[bytes], int]:
    port = ldapserver.free_port()
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "BRIDGE_LDAP_URL": server.url,
        "BRIDGE_BIND_DN": server.bind_dn,
        "BRIDGE_BIND_PASSWORD": server.bind_password,
        "BRIDGE_TOKEN": TOKEN,
        "BRIDGE_LDAP_CLIENT": client,
        "BRIDGE_MAPPING": str(ROOT / "mappings" / "openldap.yaml"),
        "BRIDGE_LOG_LEVEL": "WARNING",
        "BRIDGE_LDAP_POOL_SIZE": "16",
        # one key for every worker (serve --workers N refuses to start without it): a cursor
        # one worker signs must verify in the others; a fresh random one per bench run
        "BRIDGE_CURSOR_SECRET": CURSOR_SECRET,
    }
    # the production entry point: the app factory `serve --workers N` uses (bridge/web/asgi.py)
    cmd = [
        sys.executable, "-m", "uvicorn", "--factory", "bridge.web.asgi:app",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdin=subprocess.DEVNULL)
    import urllib.request

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/scim/v2/Users?count=1",
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            with urllib.request.urlopen(req, timeout=5) as r:
                if r.status == 200:
                    # warm every worker's pool and caches a little
                    for _ in range(workers * 20):
                        urllib.request.urlopen(req, timeout=5).read()
                    return proc, port
        except OSError:
            time.sleep(0.1)
        if proc.poll() is not None:
            raise RuntimeError("the bridge exited during startup")
    raise RuntimeError("the bridge did not answer in 60 s")


def stop_bridge(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_wrk(port: int, op: str, conns: int, duration: float, data_file: str) -> dict[str, Any]:
    threads = 1 if conns == 1 else 2
    env = {
        **os.environ,
        "BENCH_OP": op,
        "BENCH_DATA": data_file,
        "BENCH_TOKEN": TOKEN,
        "BENCH_THREADS": str(threads),
    }
    cmd = [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(conns),
        "-d",
        f"{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(ROOT / "bench" / "wrk" / "scenario.lua"),
        f"http://127.0.0.1:{port}",
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration + 60)
    line = next((x for x in out.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {out.stdout[-1000:]} {out.stderr[-1000:]}")
    return json.loads(line[8:])


# ---------------------------------------------------------------------------- one size
@dataclass
class Row:
    size: int
    scenario: str
    conns: int
    bridge: dict[str, dict[str, Any]] = field(default_factory=dict)  # client -> measures
    floor: dict[str, dict[str, Any]] = field(default_factory=dict)  # lib -> measures


def bench_size(size: int, args: argparse.Namespace, rows: list[Row]) -> None:
    big = min(50_000, size // 2)
    t0 = time.monotonic()
    server = ldapserver.start(ldapserver.Seed(size, 0, big))
    server_ref[:] = [server]
    print(
        f"\n== {size:,} users (big group {big:,} members): slapd ready in "
        f"{time.monotonic() - t0:.1f}s at {server.url}",
        flush=True,
    )
    try:
        _bench_size(server, size, big, args, rows)
    finally:
        ldapserver.stop(server)


def _bench_size(
    server: ldapserver.Server, size: int, big: int, args: argparse.Namespace, rows: list[Row]
) -> None:
    import random

    from bridge.mapping.load import load_mapping
    from bridge.translate.entry import ldap_attributes

    mapping = load_mapping(ROOT / "mappings" / "openldap.yaml")
    attrs = ldap_attributes(mapping.resource("User"))
    users = uuids(server, "(uid=user*)", size)
    rnd = random.Random(7)
    ids = [u for _, u in rnd.sample(users, min(len(users), 20_000))]
    outside = [(dn, u) for dn, u in users if int(dn[8:14]) >= big]  # not in biggroup
    rnd.shuffle(outside)
    outside = outside[:20_000]
    big_id = uuids_group(server)
    slapd_pid = [server.pid]
    tmp = Path(tempfile.mkdtemp(prefix="scim-bench-"))
    common = {
        "url": server.url,
        "bind_dn": server.bind_dn,
        "bind_password": server.bind_password,
        "users": size,
        "ids": ids,
        "attrs": attrs,
        "root": str(ROOT),
        "deep_index": int(size * 0.9) + 1,
        "outsiders": [dn for dn, _ in outside],
    }
    outsider_keys = {dn.lower() for dn, _ in outside}
    run_no = 0
    table = {(sc, c): Row(size, sc, c) for sc in args.scenarios for c in args.connections}
    rows += table.values()
    for client in args.clients:  # one bridge per client, as production runs: warm, long-lived
        proc, port = start_bridge(server, client, args.workers)
        try:
            pids = descendants(proc.pid)
            workers = [p for p in pids if p != proc.pid] or [proc.pid]
            for (scenario, conns), row in table.items():
                run_no += 1
                tag = f"{size}{run_no}"
                victims: list[tuple[str, str]] = []
                if scenario == "delete":
                    victims = make_victims(server, tag, victim_count(args.duration, conns))
                data_file = tmp / f"data{run_no}.lua"
                data_file.write_text(
                    f"return {{users={size}, deep={common['deep_index']}, tag={json.dumps(tag)}, "
                    f"big={json.dumps(big_id)}, ids={lua_table(ids)}, "
                    f"outsiders={lua_table([u for _, u in outside])}, "
                    f"victims={lua_table([u for _, u in victims])}}}"
                )
                sampler = RssSampler(workers)
                sampler.start()
                ops0 = ldapserver.completed_operations(server)
                c0, s0 = cpu_seconds(pids), cpu_seconds(slapd_pid)
                res = run_wrk(port, scenario, conns, args.duration, str(data_file))
                c1, s1 = cpu_seconds(pids), cpu_seconds(slapd_pid)
                ops1 = ldapserver.completed_operations(server)
                peak = sampler.stop()
                ok = res["requests"] - res["status_errors"] - res["socket_errors"]
                secs = res["duration_us"] / 1e6
                n = max(res["requests"], 1)
                row.bridge[client] = {
                    "rate": ok / secs,
                    "errors": res["status_errors"] + res["socket_errors"],
                    "p50_ms": res["p50_us"] / 1e3,
                    "p99_ms": res["p99_us"] / 1e3,
                    "cpu_ms_per_req": (c1 - c0) / n * 1e3,
                    "slapd_us_per_req": (s1 - s0) / n * 1e6,
                    "ldap_ops_per_req": (ops1 - ops0 - 2) / n,
                    "rss_mb_per_worker": max(peak.values(), default=0.0),
                }
                line = fmt_bridge(row.bridge[client])
                print(f"   bridge[{client}] {scenario:9s} c={conns:<2d} {line}", flush=True)
                if scenario == "addmember":
                    reset_big_group(server, outsider_keys)
                if victims:
                    remove(server, [dn for dn, _ in victims])
        finally:
            stop_bridge(proc)
    for (scenario, conns), row in table.items():
        for lib in args.floor:
            run_no += 1
            data = dict(common, tag=f"{size}{run_no}")
            victims = []
            if scenario == "delete":
                victims = make_victims(server, data["tag"], victim_count(args.duration, conns) * 2)
                data["victims"] = [dn for dn, _ in victims]
            s0 = cpu_seconds(slapd_pid)
            fres = floor_run(lib, scenario, conns, args.duration, data)
            s1 = cpu_seconds(slapd_pid)
            fres["slapd_us_per_op"] = (s1 - s0) / max(fres["ops"], 1) * 1e6
            row.floor[lib] = fres
            print(f"   floor[{lib}]  {scenario:9s} c={conns:<2d} {fmt_floor(fres)}", flush=True)
            if scenario == "addmember":
                reset_big_group(server, outsider_keys)
            if victims:
                remove(server, [dn for dn, _ in victims])


def uuids_group(server: ldapserver.Server) -> str:
    import ldap

    c = ldap_conn(server)
    try:
        found = c.search_s(
            f"cn=biggroup,{server.groups_dn}", ldap.SCOPE_BASE, attrlist=["entryUUID"]
        )
        return str(found[0][1]["entryUUID"][0].decode())
    finally:
        c.unbind_s()


def victim_count(duration: float, conns: int) -> int:
    return int(duration * (3000 if conns > 1 else 1200)) + 200


# ---------------------------------------------------------------------------- report
def fmt_bridge(m: dict[str, Any]) -> str:
    return (
        f"{m['rate']:8.0f}/s  p50 {m['p50_ms']:6.2f} ms  p99 {m['p99_ms']:6.2f} ms  "
        f"cpu {m['cpu_ms_per_req']:.2f} ms/req  slapd {m['slapd_us_per_req']:.0f} µs/req  "
        f"ldap ops {m['ldap_ops_per_req']:.1f}/req  rss {m['rss_mb_per_worker']:.0f} MB"
        + (f"  ERRORS {m['errors']}" if m["errors"] else "")
    )


def fmt_floor(m: dict[str, Any]) -> str:
    return (
        f"{m['rate']:8.0f}/s  p50 {m['p50_ms'] or 0:6.2f} ms  p99 {m['p99_ms'] or 0:6.2f} ms  "
        f"client cpu {m['client_cpu_us_per_op'] or 0:.0f} µs/op  "
        f"slapd {m['slapd_us_per_op']:.0f} µs/op"
        + (f"  ERRORS {m['errors']}" if m["errors"] else "")
    )


def machine() -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    slapd = subprocess.run(["slapd", "-VV"], capture_output=True, text=True).stderr.split("\n")[0]
    versions = {}
    for mod in ("ldap3", "ldap", "starlette", "uvicorn", "orjson", "uvloop", "httptools"):
        try:
            versions[mod] = __import__(mod).__version__
        except (ImportError, AttributeError):
            versions[mod] = "absent"
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "cpu": f"{cpu}, {os.cpu_count()} CPUs",
        "memory": f"{mem} MB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "slapd": slapd.strip(),
        "wrk": wrk.strip(),
        "commit": commit,
        "libraries": ", ".join(f"{k} {v}" for k, v in versions.items()),
    }


def markdown(rows: list[Row], args: argparse.Namespace, info: dict[str, str], command: str) -> str:
    out = ["# Benchmark results", "", f"Command: `{command}`", ""]
    out += [f"- {k}: {v}" for k, v in info.items()]
    out += [
        "",
        f"Bridge: uvicorn, {args.workers} workers, LDAP pool 16 per worker; load: wrk on "
        f"loopback, {args.duration:g} s per cell; floor: bench/floor.py (processes x threads, one "
        "connection each).  `cpu` = CPU of all bridge processes per request; `slapd` = slapd "
        "CPU per request; `ops` = LDAP operations per request (slapd monitor); `x floor` = "
        "bridge req/s / floor op/s with the same library.",
        "",
    ]
    for size in sorted({r.size for r in rows}):
        out += [f"## {size:,} users", ""]
        head = ["scenario", "c"]
        for client in args.clients:
            head += [
                f"bridge[{client}] req/s",
                "p50/p99 ms",
                "cpu ms/req",
                "slapd µs",
                "ops",
                "RSS MB",
            ]
        for lib in args.floor:
            head += [f"floor[{lib}] op/s", "p50/p99 ms", "client µs/op"]
        for client in args.clients:
            if client in args.floor:
                head += [f"x floor ({client})"]
        out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            if r.size != size:
                continue
            cells = [LABELS[r.scenario], str(r.conns)]
            for client in args.clients:
                m = r.bridge.get(client)
                cells += (
                    [
                        f"{m['rate']:.0f}" + (f" ({m['errors']} err)" if m["errors"] else ""),
                        f"{m['p50_ms']:.2f} / {m['p99_ms']:.2f}",
                        f"{m['cpu_ms_per_req']:.2f}",
                        f"{m['slapd_us_per_req']:.0f}",
                        f"{m['ldap_ops_per_req']:.1f}",
                        f"{m['rss_mb_per_worker']:.0f}",
                    ]
                    if m
                    else ["-"] * 6
                )
            for lib in args.floor:
                f = r.floor.get(lib)
                cells += (
                    [
                        f"{f['rate']:.0f}",
                        f"{f['p50_ms'] or 0:.2f} / {f['p99_ms'] or 0:.2f}",
                        f"{f['client_cpu_us_per_op'] or 0:.0f}",
                    ]
                    if f
                    else ["-"] * 3
                )
            for client in args.clients:
                if client in args.floor:
                    m, f = r.bridge.get(client), r.floor.get(client)
                    cells.append(f"{m['rate'] / f['rate']:.2f}" if m and f and f["rate"] else "-")
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def main() -> int:
    import signal

    # SIGTERM (timeout, CI) unwinds like Ctrl-C, so slapd and the bridge are stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="seconds-long smoke (CI)")
    ap.add_argument(
        "--sizes", default=None, help="comma-separated user counts (full: 10000,100000)"
    )
    ap.add_argument("--duration", type=float, default=None, help="seconds per cell (full: 5)")
    ap.add_argument("--connections", default=None, help="e.g. 1,16")
    ap.add_argument("--clients", default=None, help="bridge LDAP clients: libldap,ldap3")
    ap.add_argument("--floor", default=None, help="floor libraries: libldap,ldap3")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default=None, help="write the Markdown table here")
    args = ap.parse_args()
    try:
        import ldap  # noqa: F401

        have_libldap = True
    except ImportError:
        have_libldap = False
    libs = ["libldap", "ldap3"] if have_libldap else ["ldap3"]
    quick = args.quick
    args.sizes = [int(x) for x in (args.sizes or ("1000" if quick else "10000,100000")).split(",")]
    args.duration = args.duration or (1.0 if quick else 5.0)
    args.connections = [
        int(x) for x in (args.connections or ("16" if quick else "1,16")).split(",")
    ]
    args.clients = (args.clients or ",".join(libs[:1] if quick else libs)).split(",")
    args.floor = (args.floor or ",".join(libs)).split(",")
    args.scenarios = args.scenarios.split(",")
    if not have_libldap:
        print("python-ldap is not installed: libldap client and floor skipped", file=sys.stderr)
    if shutil.which("wrk") is None or shutil.which("slapd") is None:
        print("bench needs wrk and slapd (apt-get install wrk slapd)", file=sys.stderr)
        return 2
    command = "python bench/run.py " + " ".join(sys.argv[1:])
    info = machine()
    rows: list[Row] = []
    for size in args.sizes:
        bench_size(size, args, rows)
    text = markdown(rows, args, info, command.strip())
    print("\n" + text)
    out = args.out or (None if quick else str(ROOT / "bench" / "RESULTS.md"))
    if out:
        Path(out).write_text(text + "\n")
        print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
