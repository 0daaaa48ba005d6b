"""Paging at directory scale: slapd seeded with 100,000 users, measured through the bridge's
Service (the same code path as ``GET /Users``), not through raw LDAP.

    PYTHONPATH=$PWD /work/venv/bin/python bench/paging.py [--users 100000] [--repeat 7]

Prints a table: a page of 100 at startIndex=1 vs startIndex=90,001 (median of ``--repeat``
runs, default order and sortBy=userName), ``count=0`` (totalResults only), a filtered page,
and a full ``nextCursor`` walk (RFC 9865) with the time per page at the start, middle and end
of the walk.  Not run by CI (timing-based).  Results: bench/RESULTS-paging.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from bridge.directory.ldap3_client import ConnectionSettings, Ldap3Directory  # noqa: E402
from bridge.mapping.load import load_mapping  # noqa: E402
from bridge.scim.cursor import derive_key  # noqa: E402
from bridge.service.facade import ListQuery, Service  # noqa: E402
from devtools.slapd import Slapd  # noqa: E402
from devtools.slapd_ldif import generate_seed_ldif  # noqa: E402

BASE_URL = "https://scim.example.test/scim/v2"


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float, float, object]:
    """(median, min, max) milliseconds over ``repeat`` runs, after one warm-up run."""
    result = fn()
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - t) * 1e3)
    return statistics.median(samples), min(samples), max(samples), result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--walk-count", type=int, default=1000, help="page size of the cursor walk")
    args = ap.parse_args()
    far = max(args.users - 9_999, 1)  # 90,001 for 100,000 users

    t0 = time.perf_counter()
    seed = generate_seed_ldif(users=args.users, groups=args.users // 1000, members_per_group=10)
    with Slapd(seed_ldif=seed) as server:
        info = server.info
        print(
            f"slapd seeded with {args.users} users in {time.perf_counter() - t0:.1f} s "
            f"({info.url}, bound as {info.bind_dn})"
        )
        mapping = load_mapping(ROOT / "mappings" / "openldap.yaml")
        directory = Ldap3Directory(
            ConnectionSettings(
                urls=(info.url,), bind_dn=info.bind_dn, bind_password=info.bind_password
            )
        )
        service = Service(mapping, directory, max_results=1000, default_count=100)
        service.cursor_key = derive_key("bench")
        caps = directory.capabilities
        print(f"directory: vlv={caps.vlv} sort={caps.sort} paged={caps.paged}\n")

        def page(start: int, count: int = 100, **kw: object) -> Callable[[], object]:
            query = ListQuery(start_index=start, count=count, **kw)  # type: ignore[arg-type]
            return lambda: service.search("User", query, BASE_URL)

        rows: list[tuple[str, float, float, float, str]] = []
        cases: list[tuple[str, Callable[[], object]]] = [
            ("page of 100, startIndex=1", page(1)),
            (f"page of 100, startIndex={far:,}", page(far)),
            ("sortBy=userName, startIndex=1", page(1, sort_by="userName")),
            (f"sortBy=userName, startIndex={far:,}", page(far, sort_by="userName")),
            (
                f"sortBy=userName desc, startIndex={far:,}",
                page(far, sort_by="userName", sort_order="descending"),
            ),
            ("count=0 (totalResults only)", page(1, count=0)),
            ('filter userName sw "user09", startIndex=1', page(1, filter='userName sw "user09"')),
            ('filter userName eq "user042000"', page(1, filter='userName eq "user042000"')),
        ]
        for label, fn in cases:
            med, lo, hi, res = timed(fn, args.repeat)
            rows.append((label, med, lo, hi, f"{len(res.resources)}/{res.total}"))  # type: ignore[attr-defined]

        walk = cursor_walk(service, args.walk_count)
        print(f"{'case':46} {'median ms':>10} {'min':>8} {'max':>8}  page/total")
        for label, med, lo, hi, what in rows:
            print(f"{label:46} {med:10.1f} {lo:8.1f} {hi:8.1f}  {what}")
        ratio = rows[1][1] / rows[0][1]
        print(f"\nstartIndex={far:,} vs 1 (default order): {ratio:.2f}x")
        pages, seconds, per_page, seen = walk
        n = len(per_page)
        third = max(n // 3, 1)
        parts = [per_page[:third], per_page[third : 2 * third], per_page[2 * third :]]
        print(
            f"cursor walk, count={args.walk_count}: {pages} pages, {seen} users "
            f"(all distinct), {seconds:.1f} s total, {seconds / pages * 1e3:.0f} ms/page"
        )
        print(
            "  median ms/page  first third {:.0f}  middle third {:.0f}  last third {:.0f}".format(
                *(statistics.median(p) for p in parts if p)
            )
        )
        directory.close()
    return 0


def cursor_walk(service: Service, count: int) -> tuple[int, float, list[float], int]:
    """Follow nextCursor from the first page to the last."""
    ids: set[str] = set()
    per_page: list[float] = []
    cursor = ""
    start = time.perf_counter()
    while True:
        t = time.perf_counter()
        res = service.search("User", ListQuery(count=count, cursor=cursor), BASE_URL)
        per_page.append((time.perf_counter() - t) * 1e3)
        ids.update(r["id"] for r in res.resources)
        if not res.next_cursor:
            break
        cursor = res.next_cursor
    assert len(ids) == res.total, (len(ids), res.total)
    return len(per_page), time.perf_counter() - start, per_page, len(ids)


if __name__ == "__main__":
    sys.exit(main())
