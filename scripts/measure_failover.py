"""Failover and recovery latency of the ldap3 client against two throwaway slapds.

PYTHONPATH=. python scripts/measure_failover.py
"""

from __future__ import annotations

import logging
import statistics
import time

from bridge.directory.ldap3_client import ConnectionSettings, Ldap3Directory
from devtools.slapd import Slapd


def main(rounds: int = 5) -> None:
    logging.disable(logging.WARNING)
    a, b = Slapd(), Slapd()
    ia, ib = a.start(), b.start()

    def directory(*urls: str) -> Ldap3Directory:
        return Ldap3Directory(
            ConnectionSettings(
                urls=urls, bind_dn=ia.bind_dn, bind_password=ia.bind_password, connect_timeout=2
            )
        )

    failover: list[float] = []
    all_down: list[float] = []
    restart: list[float] = []
    try:
        for _ in range(rounds):
            d = directory(ia.url, ib.url)
            d.check()
            a.stop()
            t = time.perf_counter()
            d.check()
            failover.append(time.perf_counter() - t)
            b.stop()
            t = time.perf_counter()
            try:
                d.check()
            except Exception:
                all_down.append(time.perf_counter() - t)
            a.start()
            b.start()
            d.close()
            d = directory(ia.url)
            d.check()
            a.restart()
            t = time.perf_counter()
            d.check()
            restart.append(time.perf_counter() - t)
            d.close()
    finally:
        a.cleanup()
        b.cleanup()

    def ms(xs: list[float]) -> str:
        return f"median {statistics.median(xs) * 1e3:.1f} ms, max {max(xs) * 1e3:.1f} ms"

    print("first request after the primary stopped (failover):", ms(failover))
    print("request with every server down (503):", ms(all_down))
    print("first request after a slapd restart:", ms(restart))


if __name__ == "__main__":
    main()
