"""Throughput of POST /Bulk against sequential POSTs (issue 9).

One bulk of N user creates against N sequential ``POST /Users`` on one keep-alive HTTP
connection, both through a real uvicorn server on 127.0.0.1, on the embedded directory and on a
throwaway slapd (devtools/slapd.py).  Every measurement starts from an empty directory
(a fresh embedded directory, or the slapd instance emptied); the two variants alternate so a
load spike on the machine hits both.

    PYTHONPATH=$PWD /work/venv/bin/python bench/bulk.py [--users 1000] [--rounds 3]
        [--backend embedded|slapd|both]
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parent.parent

from bridge.directory.base import Directory  # noqa: E402
from bridge.directory.embedded import EmbeddedDirectory  # noqa: E402
from bridge.mapping.load import load_mapping  # noqa: E402
from bridge.mapping.model import MappingConfig  # noqa: E402
from bridge.runtime import seed_structure  # noqa: E402
from bridge.settings import Settings, Token  # noqa: E402
from bridge.web.app import build_app  # noqa: E402

TOKEN = "bench-token-9Xk2"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


def user(i: int) -> dict[str, Any]:
    return {
        "schemas": [USER],
        "userName": f"bench{i:05}",
        "name": {"givenName": "Bench", "familyName": f"User {i}"},
        "emails": [{"value": f"bench{i:05}@example.org", "type": "work"}],
    }


@contextlib.contextmanager
def server(directory: Directory, mapping: MappingConfig) -> Iterator[str]:
    settings = Settings(tokens=(Token("bench", TOKEN),), log_level="WARNING")
    app = build_app(settings, directory=directory, mapping=mapping)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/scim/v2"
    finally:
        srv.should_exit = True
        thread.join(10)
        sock.close()


def sequential(base: str, n: int) -> float:
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as http:
        t0 = time.perf_counter()
        for i in range(n):
            r = http.post(f"{base}/Users", json=user(i))
            assert r.status_code == 201, r.text
        return time.perf_counter() - t0


def bulk(base: str, n: int) -> float:
    ops = [
        {"method": "POST", "path": "/Users", "bulkId": f"u{i}", "data": user(i)} for i in range(n)
    ]
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=600) as http:
        t0 = time.perf_counter()
        r = http.post(f"{base}/Bulk", json={"schemas": [BULK], "Operations": ops})
        elapsed = time.perf_counter() - t0
    assert r.status_code == 200, r.text
    statuses = {op["status"] for op in r.json()["Operations"]}
    assert statuses == {"201"} and len(r.json()["Operations"]) == n, statuses
    return elapsed


def run(
    name: str, fresh: Callable[[], Directory], mapping: MappingConfig, n: int, rounds: int
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"sequential": [], "bulk": []}
    for _ in range(rounds):
        for kind, fn in (("sequential", sequential), ("bulk", bulk)):
            directory = fresh()
            with server(directory, mapping) as base:
                times[kind].append(fn(base, n))
            directory.close()
    for kind, values in times.items():
        med = statistics.median(values)
        print(
            f"{name:9} {kind:10} n={n}: median {med:6.2f} s  ({n / med:6.0f} users/s)  "
            f"runs {', '.join(f'{v:.2f}' for v in values)}",
            flush=True,
        )
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--backend", choices=("embedded", "slapd", "both"), default="both")
    args = ap.parse_args()
    mapping = load_mapping(ROOT / "mappings" / "openldap.yaml")
    if args.backend in ("embedded", "both"):

        def embedded() -> Directory:
            d = EmbeddedDirectory()
            seed_structure(d, mapping)
            return d

        run("embedded", embedded, mapping, args.users, args.rounds)
    if args.backend in ("slapd", "both"):
        from bridge.directory.ldap3_client import ConnectionSettings, Ldap3Directory
        from devtools.slapd import Slapd

        with Slapd() as slapd:
            info = slapd.info

            def connect() -> Directory:
                d = Ldap3Directory(
                    ConnectionSettings(
                        urls=(info.url,), bind_dn=info.bind_dn, bind_password=info.bind_password
                    )
                )
                for rmap in mapping.resources.values():  # empty, as tests/conftest.py does
                    for e in d.search(
                        rmap.base_dn, "(objectClass=*)", ["1.1"], scope="one"
                    ).entries:
                        d.delete(e.dn)
                return d

            run("slapd", connect, mapping, args.users, args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
