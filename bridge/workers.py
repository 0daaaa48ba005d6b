"""``serve --workers N`` with one listening socket per worker (``SO_REUSEPORT``, Linux).

uvicorn's own multi-process mode shares ONE listening socket between its workers: whichever
worker's ``accept`` the kernel wakes first takes the connection, and an idle worker tends to
win again, so the few long-lived keep-alive connections of an IdP (or its on-prem agent) often
all land on one worker, which then does all the work (issue 19; bench/workers.py measures it).
Here the supervisor binds N sockets to the same address with ``SO_REUSEPORT`` before starting
the workers, and each worker accepts on its own socket only: the kernel spreads NEW connections
over the sockets by a hash of the connection's addresses and ports, whatever the workers are
doing.  A dead worker is restarted on the same socket; SIGINT/SIGTERM stop them all (uvicorn's
graceful shutdown in each).
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import sys
import time
from typing import Any

log = logging.getLogger("bridge")

#: connections waiting to be accepted, per worker socket (uvicorn's default backlog)
BACKLOG = 2048
APP = "bridge.web.asgi:app"
#: a worker that dies sooner than this after starting is not restarted (a bad configuration)
STARTUP_GRACE = 10.0


def reuseport_supported() -> bool:
    """Linux spreads connections over ``SO_REUSEPORT`` sockets (BSDs do not balance)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def bind(host: str, port: int) -> socket.socket:
    """One listening socket on (host, port) that more sockets can share by ``SO_REUSEPORT``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def _worker(options: dict[str, Any], sock: socket.socket) -> None:
    import uvicorn

    config = uvicorn.Config(APP, factory=True, **options)
    uvicorn.Server(config).run(sockets=[sock])


def serve(workers: int, options: dict[str, Any]) -> None:
    """Run ``workers`` uvicorn workers of :data:`APP`, each on its own ``SO_REUSEPORT``
    socket, until SIGINT/SIGTERM.  ``options``: uvicorn.Config keywords (host and port
    included)."""
    socks = [bind(options["host"], options["port"]) for _ in range(workers)]
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked LDAP sockets
    procs = [
        ctx.Process(target=_worker, args=(options, s), name=f"worker-{i}")
        for i, s in enumerate(socks)
    ]
    started = [0.0] * workers
    stopping = False

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for i, p in enumerate(procs):
            p.start()
            started[i] = time.monotonic()
        while not stopping:
            time.sleep(0.25)
            for i, p in enumerate(procs):
                if p.is_alive() or stopping:
                    continue
                if time.monotonic() - started[i] < STARTUP_GRACE:
                    # dying at start-up (bad settings, mapping): restarting would only loop
                    log.error("worker %s failed to start (code %s): stopping", p.name, p.exitcode)
                    raise SystemExit(1)
                log.warning("worker %s exited (code %s): restarting it", p.name, p.exitcode)
                procs[i] = ctx.Process(target=_worker, args=(options, socks[i]), name=p.name)
                procs[i].start()
                started[i] = time.monotonic()
    finally:
        for p in procs:
            if p.is_alive() and p.pid is not None:
                p.terminate()  # SIGTERM: uvicorn shuts down gracefully
        for p in procs:
            p.join(timeout=30)
        for s in socks:
            s.close()
        for sig, handler in old.items():
            signal.signal(sig, handler)
