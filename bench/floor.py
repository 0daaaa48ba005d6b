"""The LDAP floor: each scenario's core LDAP operation, issued directly with a client library.

``python bench/floor.py --lib libldap --op lookup --connections 16 --duration 5 --data d.json``
runs P processes (P = min(connections, CPUs)) x T threads (connections / P), one connection per
thread, for ``duration`` seconds, and prints one JSON line: operations, errors, p50/p99 latency,
and the CPU seconds the client processes burned (so µs of client CPU per operation).

No bridge code is used here: this is what a bare client costs, the yardstick for the bridge.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import resource
import sys
import threading
import time
from typing import Any

PEOPLE = "ou=people,dc=example,dc=org"
GROUPS = "ou=groups,dc=example,dc=org"
USER_FILTER = "(objectClass=inetOrgPerson)"


class Ops:
    """One connection and the scenario operations on it."""

    def __init__(self, lib: str, data: dict[str, Any]):
        self.lib = lib
        self.data = data
        self.attrs = data["attrs"]
        self.connect()

    def connect(self) -> None:
        data = self.data
        lib = self.lib
        if lib == "libldap":
            import ldap

            self.ldap = ldap
            self.c = ldap.initialize(data["url"])
            self.c.set_option(ldap.OPT_REFERRALS, 0)
            self.c.simple_bind_s(data["bind_dn"], data["bind_password"])
        else:
            import ldap3

            self.ldap3 = ldap3
            self.c = ldap3.Connection(
                ldap3.Server(data["url"], get_info=ldap3.NONE),
                data["bind_dn"],
                data["bind_password"],
                auto_bind=True,
                raise_exceptions=False,
            )

    def search(self, base: str, flt: str, scope: str, attrs: list[str], ctrls: Any = None) -> int:
        if self.lib == "libldap":
            sc = {"base": 0, "one": 1, "sub": 2}[scope]
            msgid = self.c.search_ext(base, sc, flt, attrs, 0, ctrls)
            return len(self.c.result3(msgid, 1, 30)[1])
        from ldap3 import BASE, LEVEL, SUBTREE

        sc = {"base": BASE, "one": LEVEL, "sub": SUBTREE}[scope]
        self.c.search(base, flt, sc, attributes=attrs, controls=ctrls)
        return len(self.c.response or [])

    def lookup(self, rnd: random.Random, _n: int) -> bool:
        uid = f"user{rnd.randrange(self.data['users']):06d}"
        return self.search(PEOPLE, f"(&{USER_FILTER}(uid={uid}))", "one", self.attrs) == 1

    def get(self, rnd: random.Random, _n: int) -> bool:
        rid = rnd.choice(self.data["ids"])
        return self.search(PEOPLE, f"(&{USER_FILTER}(entryUUID={rid}))", "one", self.attrs) == 1

    def _list(self, offset: int) -> bool:
        sys.path.insert(0, self.data["root"])
        from bridge.directory import controls
        from bridge.directory.base import OID_SORT, OID_VLV, SortKey

        keys = (SortKey("uid", ordering_rule="caseIgnoreOrderingMatch"),)
        if self.lib == "libldap":
            from ldap.controls import RequestControl

            ctrls: Any = [
                RequestControl(OID_SORT, True, controls.sort_value(keys)),
                RequestControl(OID_VLV, True, controls.vlv_value(offset, 100)),
            ]
        else:
            ctrls = [controls.sort_control(keys), controls.vlv_control(offset, 100)]
        ok = self.search(PEOPLE, USER_FILTER, "one", self.attrs, ctrls) == 100
        # like the bridge: slapd keeps a VLV result set per connection, so use a fresh one
        self.c.unbind_s() if self.lib == "libldap" else self.c.unbind()
        self.connect()
        return ok

    def list(self, rnd: random.Random, _n: int) -> bool:
        return self._list(1)

    def listdeep(self, rnd: random.Random, _n: int) -> bool:
        return self._list(self.data["deep_index"])

    def cursor(self, rnd: random.Random, n: int) -> bool:
        """A cursor page is a VLV window at the page's offset: walk them in order."""
        pages = max(self.data["users"] // 100, 1)
        return self._list(1 + (n % pages) * 100)

    def create(self, rnd: random.Random, n: int) -> bool:
        uid = f"f{self.data['tag']}-{os.getpid()}-{threading.get_ident() % 100000}-{n}"
        attrs = {
            "objectClass": [b"top", b"person", b"organizationalPerson", b"inetOrgPerson"],
            "uid": [uid.encode()],
            "cn": [uid.encode()],
            "sn": [uid.encode()],
        }
        dn = f"uid={uid},{PEOPLE}"
        if self.lib == "libldap":
            self.c.add_s(dn, list(attrs.items()))
            return True
        return bool(self.c.add(dn, attributes=attrs))

    def _modify(self, dn: str, op: str, attr: str, value: bytes) -> bool:
        if self.lib == "libldap":
            code = {"add": self.ldap.MOD_ADD, "replace": self.ldap.MOD_REPLACE}[op]
            self.c.modify_s(dn, [(code, attr, [value])])
            return True
        code3 = {"add": self.ldap3.MODIFY_ADD, "replace": self.ldap3.MODIFY_REPLACE}[op]
        return bool(self.c.modify(dn, {attr: [(code3, [value])]}))

    def patch(self, rnd: random.Random, _n: int) -> bool:
        dn = f"uid=user{rnd.randrange(self.data['users']):06d},{PEOPLE}"
        return self._modify(dn, "replace", "displayName", f"Floor {rnd.random()}".encode())

    def addmember(self, rnd: random.Random, n: int) -> bool:
        who = self.data["outsiders"][n % len(self.data["outsiders"])]
        return self._modify(f"cn=biggroup,{GROUPS}", "add", "member", who.encode())

    def delete(self, rnd: random.Random, n: int) -> bool:
        victims = self.data["victims"]
        if n >= len(victims):
            return False
        if self.lib == "libldap":
            self.c.delete_s(victims[n])
            return True
        return bool(self.c.delete(victims[n]))


def _thread(lib: str, op: str, data: dict[str, Any], until: float, seq: Any, out: list) -> None:
    ops = Ops(lib, data)
    fn = getattr(ops, op)
    rnd = random.Random()
    lat: list[float] = []
    errors = 0
    while True:
        n = next(seq)
        t0 = time.perf_counter()
        if t0 >= until:
            break
        try:
            ok = fn(rnd, n)
        except Exception:
            ok = False
        lat.append(time.perf_counter() - t0)
        errors += not ok
    out.append((lat, errors))


def _process(
    lib: str,
    op: str,
    data: dict[str, Any],
    threads: int,
    start: float,
    duration: float,
    first: int,
    stride: int,
    q: Any,
) -> None:
    import itertools

    # a disjoint sequence of item numbers per process (victims, outsiders, names)
    seq = itertools.count(first, stride)
    lock = threading.Lock()

    class Locked:
        def __next__(self) -> int:
            with lock:
                return next(seq)

    gen = Locked()
    out: list = []
    while time.time() < start:
        time.sleep(0.001)
    until = time.perf_counter() + duration
    ts = [
        threading.Thread(target=_thread, args=(lib, op, data, until, gen, out))
        for _ in range(threads)
    ]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    lat = sorted(x for lats, _ in out for x in lats)
    q.put(
        {
            "lat": lat,
            "errors": sum(e for _, e in out),
            "cpu": usage.ru_utime + usage.ru_stime,
            "rss_kb": usage.ru_maxrss,
        }
    )


def run(
    lib: str, op: str, connections: int, duration: float, data: dict[str, Any]
) -> dict[str, Any]:
    procs = max(1, min(connections, os.cpu_count() or 1))
    per = [connections // procs + (1 if i < connections % procs else 0) for i in range(procs)]
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    start = time.time() + 0.5  # every process connects first, then all start together
    ps = [
        ctx.Process(target=_process, args=(lib, op, data, n, start, duration, i, procs, q))
        for i, n in enumerate(per)
    ]
    for p in ps:
        p.start()
    results = [q.get(timeout=duration + 120) for _ in ps]
    for p in ps:
        p.join()
    lat = sorted(x for r in results for x in r["lat"])
    n = len(lat)
    errors = sum(r["errors"] for r in results)
    cpu = sum(r["cpu"] for r in results)
    return {
        "ops": n,
        "errors": errors,
        "rate": (n - errors) / duration,
        "p50_ms": lat[n // 2] * 1e3 if n else None,
        "p99_ms": lat[min(n - 1, int(n * 0.99))] * 1e3 if n else None,
        "client_cpu_s": cpu,
        "client_cpu_us_per_op": cpu / n * 1e6 if n else None,
        "client_rss_mb": max(r["rss_kb"] for r in results) / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--lib", choices=["ldap3", "libldap"], required=True)
    ap.add_argument("--op", required=True)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--data", required=True, help="JSON: url, bind_dn, users, ids, attrs, ...")
    args = ap.parse_args()
    with open(args.data) as f:
        data = json.load(f)
    print(json.dumps(run(args.lib, args.op, args.connections, args.duration, data)))


if __name__ == "__main__":
    main()
