"""What the two network clients (ldap3, python-ldap) share: their settings, the bounded pool of
connections, and AD's extended-DN values.  One copy here instead of a parallel one in each
client, so the clients cannot drift apart.
"""

from __future__ import annotations

import asyncio
import collections
import re
import select
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from bridge.directory.syntax import normalize_dn

T = TypeVar("T")


@dataclass(frozen=True)
class ConnectionSettings:
    urls: tuple[str, ...]
    bind_dn: str = ""
    bind_password: str = field(default="", repr=False)
    start_tls: bool = False
    ca_file: str | None = None
    verify: bool = True
    tls_hostname: str | None = None
    connect_timeout: float = 5.0
    operation_timeout: float = 30.0
    pool_size: int = 8
    page_size: int = 500
    #: pooled connections idle longer than this are closed instead of reused (0: never)
    idle_timeout: float = 300.0
    #: a server that failed to connect is tried after the others for this long
    server_backoff: float = 30.0
    #: passwords may go over plain ldap:// to a loopback host (they are refused over any other
    #: unencrypted connection: bridge/directory/transport.py)
    allow_plain_passwords_on_loopback: bool = False


class PoolTimeout(Exception):
    """No connection slot became free in time."""


class Slots(Generic[T]):
    """At most ``size`` connections in use at once, idle ones reused most recent first.

    A slot is taken with :meth:`take`, which hands back an idle connection or ``None`` (the
    caller opens one), and given back with :meth:`give`, with the connection to keep (or
    ``None`` when it was closed).  One plain lock; a waiter only when every slot is taken.
    LIFO keeps the few warm connections busy, so idle ones age out under light load."""

    def __init__(self, size: int):
        self.size = size
        self._idle: list[T] = []
        self._free = size
        self._lock = threading.Lock()
        self._freed = threading.Condition(self._lock)
        self._waiting = 0
        #: callers waiting on an event loop (:meth:`wait`), first come first served; a slot
        #: given back goes straight to the first of them
        self._waiters: collections.deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]]
        self._waiters = collections.deque()

    def take(self, timeout: float) -> T | None:
        with self._lock:
            if self._free <= 0:
                self._waiting += 1
                try:
                    if not self._freed.wait_for(lambda: self._free > 0, timeout):
                        raise PoolTimeout
                finally:
                    self._waiting -= 1
            self._free -= 1
            return self._idle.pop() if self._idle else None

    async def wait(self, timeout: float) -> T | None:
        """:meth:`take` for a caller on an event loop: waits there, not in a thread (a thread
        per waiter cost as much CPU as the rest of a lookup, whenever more requests ran at
        once than the pool has connections)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._free > 0:
                self._free -= 1
                return self._idle.pop() if self._idle else None
            ready: asyncio.Future[Any] = loop.create_future()
            waiter = (loop, ready)
            self._waiters.append(waiter)

        def expire() -> None:
            with self._lock:
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    return  # a slot was handed over just now: it wins
            if not ready.done():
                ready.set_exception(PoolTimeout())

        timer = loop.call_later(timeout, expire)
        try:
            return await ready
        finally:
            timer.cancel()

    def give(self, conn: T | None) -> None:
        with self._lock:
            while self._waiters:  # hand the slot to the first loop waiter still there
                loop, ready = self._waiters.popleft()
                try:
                    loop.call_soon_threadsafe(self._hand_over, ready, conn)
                except RuntimeError:  # its loop is closed: nobody waits there any more
                    continue
                return
            if conn is not None:
                self._idle.append(conn)
            self._free += 1
            if self._waiting:
                self._freed.notify()

    def _hand_over(self, ready: asyncio.Future[Any], conn: T | None) -> None:
        """On the waiter's loop: the slot (and ``conn``) is its, unless it gave up meanwhile
        (cancelled: the request went away), then the slot goes on to the next."""
        if ready.done():
            self.give(conn)
        else:
            ready.set_result(conn)

    def pop_idle(self) -> T | None:
        """An idle connection taken out of the pool for good (closing), or ``None``."""
        with self._lock:
            return self._idle.pop() if self._idle else None

    @property
    def in_use(self) -> int:
        return self.size - self._free

    @property
    def idle(self) -> int:
        return len(self._idle)


def reusable(sock: Any, idle_since: float, idle_timeout: float) -> bool:
    """Whether a pooled connection may serve another request: not idle longer than
    ``idle_timeout`` (0: no limit; firewalls drop idle TCP silently, AD closes idle LDAP after
    900 s), and its socket not readable — readable with nothing outstanding means the server
    closed it (a restart) or sent a Notice of Disconnection."""
    if idle_timeout and time.monotonic() - idle_since > idle_timeout:
        return False
    try:
        poller = select.poll()  # not select(): it fails for descriptors >= 1024
        poller.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
        return not poller.poll(0)
    except (OSError, ValueError):
        return False


# AD's extended-DN form of a DN value: hex objectGUID, optional SID, then the DN.  Parsed only
# in DN-valued attributes (a displayName that merely looks like this stays as it is).
_EXTENDED = re.compile(rb"^<GUID=([0-9a-fA-F]{32})>;(?:<SID=[0-9a-fA-F]*>;)?(.*)$", re.S)
EXTENDED_DN_ATTRS = frozenset(
    {"member", "memberof", "manager", "directreports", "managedby", "owner", "seealso"}
)


def plain_dn(dn: str) -> str:
    """An entry DN returned in extended form -> the DN."""
    m = _EXTENDED.match(dn.encode("utf-8"))
    return m.group(2).decode("utf-8") if m else dn


def split_extended(value: bytes, guids: dict[str, bytes]) -> bytes:
    """``<GUID=hex>;<SID=hex>;dn`` -> ``dn``, recording the GUID (the hex of its raw bytes)."""
    m = _EXTENDED.match(value)
    if m is None:
        return value
    dn = m.group(2)
    guids[normalize_dn(dn.decode("utf-8", "replace"))] = bytes.fromhex(m.group(1).decode())
    return dn
