"""What a bare directory costs: the same 10,000 users on a bare slapd (no overlays, only
``objectClass eq`` indexed: devtools/slapd.py ``profile="bare"``) and on the tuned
test slapd (entryUUID/uid/mail/... indexes, sssvlv, deref, memberof, ppolicy, refint),
measured through the bridge's Service (the code path of the HTTP routes), one request at a
time, with the shipped mapping on the tuned server and mappings/openldap-bare.yaml on the
bare one.

    PYTHONPATH=$PWD .venv/bin/python bench/bare.py [--users 10000] [--repeat 21] [--client ldap3]

Prints the median / min / max milliseconds per request and the bare/tuned ratio.  Not run by
CI (timing-based); numbers in docs/directories/openldap.md.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from bridge.mapping.load import load_mapping  # noqa: E402
from bridge.service.facade import ListQuery, Service  # noqa: E402
from bridge.translate import entry as tr  # noqa: E402
from devtools.clients import slapd_directory  # noqa: E402
from devtools.slapd import Slapd  # noqa: E402
from devtools.slapd_ldif import generate_seed_ldif  # noqa: E402

BASE_URL = "https://scim.example.test/scim/v2"
Case = tuple[str, Callable[[], object]]


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float, float]:
    fn()  # warm-up
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1e3)
    return statistics.median(samples), min(samples), max(samples)


def cases(service: Service, users: int) -> list[Case]:
    rng = random.Random(7)
    picks = [f"user{rng.randrange(users):06d}" for _ in range(64)]
    ids = [
        service.search("User", ListQuery(filter=f'userName eq "{p}"'), BASE_URL).resources[0]["id"]
        for p in picks
    ]
    turn = iter(range(10**9))

    def get_by_id() -> object:
        return service.get("User", ids[next(turn) % len(ids)], BASE_URL)

    def by_username() -> object:
        name = picks[next(turn) % len(picks)]
        return service.search("User", ListQuery(filter=f'userName eq "{name}"'), BASE_URL)

    def page() -> object:
        return service.search("User", ListQuery(start_index=1, count=100), BASE_URL)

    def far_page() -> object:
        query = ListQuery(start_index=max(users - 99, 1), count=100)
        return service.search("User", query, BASE_URL)

    rmap = service.rmap("User")
    attrs = tr.ldap_attributes(rmap)
    first = [
        e.dn
        for e in service.directory.search(
            rmap.base_dn, rmap.base_filter, ["1.1"], scope=rmap.scope, size_limit=100
        ).entries
    ]

    def count_walk() -> object:  # the list page's first pass without VLV: no attributes
        walk = service.directory.iter_search(
            rmap.base_dn, rmap.base_filter, ["1.1"], scope=rmap.scope
        )
        return sum(1 for _ in walk)

    def page_read() -> object:  # its second pass: the page's 100 entries, one OR of DNs
        return service.lister.read_many(rmap, first, attrs)

    def base_reads() -> object:  # the alternative second pass: one base search per DN
        return [service.directory.read(dn, attrs) for dn in first]

    return [
        ("GET /Users/{id}", get_by_id),
        ('filter userName eq "..."', by_username),
        ("list page of 100, startIndex=1", page),
        (f"list page of 100, startIndex={max(users - 99, 1):,}", far_page),
        ("  pass 1: count walk, 1.1 (without VLV)", count_walk),
        ("  pass 2: read the page, one OR of 100 DNs", page_read),
        ("  (instead: 100 base reads)", base_reads),
    ]


def measure(profile: str, mapping: str, args: argparse.Namespace) -> dict[str, tuple[float, ...]]:
    seed = generate_seed_ldif(args.users, args.users // 100, 10, member_of=profile != "bare")
    t0 = time.perf_counter()
    with Slapd(seed_ldif=seed, profile=profile) as server:
        print(f"{profile}: {args.users} users seeded in {time.perf_counter() - t0:.1f} s")
        directory = slapd_directory(server.info, args.client)
        service = Service(load_mapping(ROOT / "mappings" / mapping), directory, max_results=1000)
        out = {label: timed(fn, args.repeat) for label, fn in cases(service, args.users)}
        directory.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=21)
    ap.add_argument("--client", choices=["ldap3", "libldap"], default="ldap3")
    args = ap.parse_args()
    tuned = measure("tuned", "openldap.yaml", args)
    bare = measure("bare", "openldap-bare.yaml", args)
    print(f"\nclient {args.client}, {args.users} users, median of {args.repeat} (ms)")
    print(f"{'request':40} {'tuned':>8} {'bare':>8} {'bare/tuned':>11}   bare min-max")
    for label, (med, _lo, _hi) in tuned.items():
        bmed, blo, bhi = bare[label]
        print(f"{label:40} {med:8.2f} {bmed:8.2f} {bmed / med:10.1f}x   {blo:.1f}-{bhi:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
