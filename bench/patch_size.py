"""PATCH cost against body size: a ~100 KB and a ~1 MB PATCH of phone numbers and emails.

    PYTHONPATH=. python bench/patch_size.py                        # embedded directory
    PYTHONPATH=. python bench/patch_size.py --slapd                # a slapd it starts itself
    PYTHONPATH=. python bench/patch_size.py --slapd --client libldap

Each repeat creates a fresh user and PATCHes it with operations that each add 15 work phone
numbers, 15 mobile numbers and 30 work emails (``{"op": "add", "path": "phoneNumbers", ...}``),
until the body reaches the size asked for, through the HTTP app in-process (Starlette
TestClient, ``attributes=id`` so the response stays small).  It reports the median and p90
wall time per size and the ratio of the medians: with planning linear in the body, a 10x
larger body costs about 10x (issue 16 item 4: it was quadratic, 5,000 values took 6.7 s).
The sizes stay under the limits (10,000 values per attribute, 1,000 operations).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from bridge.directory.base import Directory
from bridge.directory.embedded import EmbeddedDirectory
from bridge.mapping.load import load_mapping
from bridge.runtime import seed_structure
from bridge.settings import Settings, Token
from bridge.web.app import build_app

MAPPING = "mappings/openldap.yaml"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
TOKEN = "bench-token-patch-size"
LOCAL = ".a-rather-long-mailbox-name-for-size"  # ~1 MB within 10,000 values per attribute


def body_of(size: int) -> bytes:
    """A PATCH body of about ``size`` bytes: add operations of 15 + 15 + 30 values."""
    ops: list[dict[str, Any]] = []
    n = 0
    while len(orjson.dumps({"schemas": [PATCH_OP], "Operations": ops})) < size:
        base = n * 30
        ops.append(_op("phoneNumbers", "work", [f"+1 555 w{base + i:07d}" for i in range(15)]))
        ops.append(_op("phoneNumbers", "mobile", [f"+1 555 m{base + i:07d}" for i in range(15)]))
        ops.append(_op("emails", "work", [f"{base + i:07d}{LOCAL}@example.org" for i in range(30)]))
        n += 1
    return orjson.dumps({"schemas": [PATCH_OP], "Operations": ops})


def _op(path: str, kind: str, values: list[str]) -> dict[str, Any]:
    return {"op": "add", "path": path, "value": [{"type": kind, "value": v} for v in values]}


@contextmanager
def directory(args: argparse.Namespace) -> Iterator[Directory]:
    mapping = load_mapping(MAPPING)
    if not args.slapd:
        d: Directory = EmbeddedDirectory()
        seed_structure(d, mapping)
        yield d
        return
    from devtools.clients import slapd_directory
    from devtools.slapd import Slapd

    server = Slapd()
    info = server.start()
    d = slapd_directory(info, args.client)
    try:
        yield d
    finally:
        d.close()
        server.stop()
        server.cleanup()


def run(args: argparse.Namespace) -> dict[int, list[float]]:
    from starlette.testclient import TestClient

    sizes = [int(s) for s in args.sizes.split(",")]
    bodies = {s: body_of(s) for s in sizes}
    out: dict[int, list[float]] = {s: [] for s in sizes}
    with directory(args) as d:
        settings = Settings(tokens=(Token("bench", TOKEN),), max_body_bytes=4 << 20)
        app = build_app(settings, directory=d, mapping=load_mapping(MAPPING))
        with TestClient(app, base_url="https://scim.example.test") as tc:
            tc.headers["Authorization"] = f"Bearer {TOKEN}"
            headers = {"Content-Type": "application/scim+json"}
            for r in range(args.repeats + 1):  # the first round warms up, not counted
                for s in sizes:
                    made = tc.post(
                        "/scim/v2/Users", json={"schemas": [USER], "userName": f"p{r}-{s}"}
                    )
                    uid = made.json()["id"]
                    t = time.perf_counter()
                    res = tc.patch(
                        f"/scim/v2/Users/{uid}?attributes=id", content=bodies[s], headers=headers
                    )
                    took = time.perf_counter() - t
                    if res.status_code != 200:
                        raise SystemExit(f"PATCH of {s} bytes: {res.status_code} {res.text[:300]}")
                    if r:
                        out[s].append(took)
                    tc.delete(f"/scim/v2/Users/{uid}")
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="100000,1000000", help="body sizes in bytes, comma-separated")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--slapd", action="store_true", help="a throwaway slapd instead of embedded")
    p.add_argument("--client", choices=["ldap3", "libldap"], default="ldap3")
    args = p.parse_args(argv)
    results = run(args)
    where = f"slapd ({args.client})" if args.slapd else "embedded"
    print(f"PATCH cost by body size, {where}, {args.repeats} repeats\n")
    print("| body bytes | values | median ms | p90 ms |")
    print("|---|---|---|---|")
    medians = {}
    for s, times in results.items():
        body = orjson.loads(body_of(s))
        values = sum(len(o["value"]) for o in body["Operations"])
        times.sort()
        medians[s] = statistics.median(times)
        p90 = times[min(len(times) - 1, int(len(times) * 0.9))]
        ms, p90ms = medians[s] * 1000, p90 * 1000
        print(f"| {len(orjson.dumps(body)):,} | {values:,} | {ms:.1f} | {p90ms:.1f} |")
    sizes = sorted(medians)
    if len(sizes) >= 2:
        lo, hi = sizes[0], sizes[-1]
        print(f"\nmedian ratio {hi:,} / {lo:,} bytes: {medians[hi] / medians[lo]:.1f}x")


if __name__ == "__main__":
    main()
