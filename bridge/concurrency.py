"""Run the synchronous service on the event loop, suspending only where it waits for LDAP.

The service is plain synchronous code (one code path for every directory client).  With the
thread-safe but blocking clients (ldap3, the embedded directory) each request runs it in the
threadpool.  That hop — a thread wake-up, the GIL handed back and forth on every LDAP wait, the
result posted back to the loop — cost about 0.4 ms of CPU per request, as much as the rest of
a GET by id.  python-ldap can instead send an operation and poll for its result without
blocking, so with it the service runs in a greenlet on the event loop thread: when it needs an
LDAP result that has not arrived, :func:`await_` switches back to the loop, which waits for the
connection's socket to become readable while other requests run, then resumes the greenlet.
No thread, no lock handoff; everything else about the service is unchanged.

This is the technique SQLAlchemy's asyncio layer uses; the code here is our own and small:

* :func:`run` (async) runs a function in a greenlet (a pooled worker), serving every awaitable
  it yields;
* :func:`await_` (sync, inside that greenlet) waits for an awaitable and returns its result;
* :func:`active` says whether the caller may use :func:`await_`.

Anything slow that is not an LDAP wait (connecting) is awaited in the threadpool through
:func:`offload`, so the loop is never blocked by it; a free pool slot is awaited on the loop
(``Slots.wait``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import threading
import weakref
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

try:
    import greenlet
except ImportError:  # pragma: no cover - greenlet comes with the libldap extra
    AVAILABLE = False
else:
    AVAILABLE = True

T = TypeVar("T")
_MARK = "_bridge_greenio"  # set on the greenlets run() creates


_FINISHED = object()  # what a worker switches back with when its call has returned or raised


def _serve(fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """A worker greenlet's body: run one function after another, each handed in by :func:`run`.

    Workers are kept and reused: a new greenlet costs a fresh Python frame stack (an mmap and a
    page fault per request) on top of its own setup, about a tenth of a lookup's CPU.  The
    outcome goes into ``result`` (which run() takes and clears), not through the switch, so an
    idle worker's suspended frame holds no request's result."""
    me = greenlet.getcurrent()
    while True:
        try:
            me.result = (True, fn(*args))
        except BaseException as exc:  # handed to run(), which raises it in the request
            me.result = (False, exc)
        del fn, args
        # idle here until run() hands in the next call; a worker dropped from the pool is
        # killed at this switch (GreenletExit), which ends the loop
        fn, args = me.parent.switch(_FINISHED)


class _Pool(threading.local):
    idle: list[Any]

    def __init__(self) -> None:
        self.idle = []


_POOL = _Pool()
_IDLE_MAX = 64  # idle workers kept per thread; more concurrent requests make new ones


async def run(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a greenlet on this loop; awaits what it passes to :func:`await_`."""
    idle = _POOL.idle
    here = greenlet.getcurrent()
    if idle:
        worker = idle.pop()
        if worker.parent is not here:
            worker.parent = here
    else:
        worker = greenlet.greenlet(_serve, here)
        setattr(worker, _MARK, True)
    worker.gr_context = contextvars.copy_context()  # as run_in_threadpool: request id, audit log
    pending = worker.switch(fn, args)
    while pending is not _FINISHED:
        try:
            value = await pending
        except BaseException as exc:
            pending = worker.throw(exc)
        else:
            pending = worker.switch(value)
    ok, outcome = worker.result
    worker.result = worker.gr_context = None  # an idle worker holds nothing of this request
    if len(idle) < _IDLE_MAX:
        idle.append(worker)
    if ok:
        return outcome
    raise outcome


def active() -> bool:
    """True inside :func:`run`: :func:`await_` may be called."""
    return AVAILABLE and getattr(greenlet.getcurrent(), _MARK, False)


def await_(awaitable: Awaitable[T]) -> T:
    """Wait for ``awaitable`` on the loop and return its result (inside :func:`run` only)."""
    current = greenlet.getcurrent()
    if not getattr(current, _MARK, False) or current.parent is None:
        raise RuntimeError("await_() outside concurrency.run()")
    return current.parent.switch(awaitable)


def offload(fn: Callable[..., T], *args: Any, executor: Executor | None = None) -> T:
    """``fn(*args)`` in a thread (the loop's default executor, or ``executor``), the calling
    greenlet suspended meanwhile.  Work that may block for long belongs in an executor of its
    own, so it cannot starve short work queued behind it."""
    loop = asyncio.get_running_loop()
    ctx = contextvars.copy_context()
    return await_(loop.run_in_executor(executor, functools.partial(ctx.run, fn, *args)))


class Watch:
    """The readiness of one long-lived socket (a pooled LDAP connection), for :func:`await_`.

    Registering the descriptor with the loop for each wait and removing it after (a libuv
    poll handle made and closed, four ``epoll_ctl`` calls) was about 4% of a lookup's CPU
    under load.  A Watch stays registered between waits, so a connection that serves request
    after request is registered once.  It stops watching by itself when
    the socket turns readable with nobody waiting (the server closed the connection, or sent
    a notice of disconnection): a level-triggered reader would fire on every loop pass.

    Which Watch holds a descriptor on a loop is recorded, so a descriptor number reused by a
    new connection is taken over cleanly (the old registration removed first), and
    :meth:`close` — which the owner calls *before* closing the socket — removes only its own.

    A server runs one loop per process, but a connection pool can serve several loops (one
    per thread, as Starlette's test client makes per request): each loop's registration is
    its own, touched only on that loop's thread, and answers only a wait made on that loop.
    :meth:`close` from another thread hands each removal to its loop and waits for it."""

    __slots__ = ("fd", "loops", "waiter")

    def __init__(self, fd: int):
        self.fd = fd
        #: the loops this descriptor is registered on (one, unless the pool serves several)
        self.loops: list[asyncio.AbstractEventLoop] = []
        self.waiter: asyncio.Future[bool] | None = None

    async def wait(self, timeout: float) -> bool:
        """Until the socket is reported readable (True) or ``timeout`` seconds pass (False).

        True may be stale on asyncio's own loop: a readiness report for data the previous
        wait's caller has since read can still be queued behind it (uvloop runs I/O callbacks
        before the woken tasks, so there it does not happen).  Callers poll after a wait and
        wait again when nothing is there, as the python-ldap client does."""
        loop = asyncio.get_running_loop()
        held = _held(loop)
        if held.get(self.fd) is not self:
            if self.fd in held:  # the number's last holder is gone without closing its watch
                loop.remove_reader(self.fd)
            loop.add_reader(self.fd, self._fire, loop)
            held[self.fd] = self
            self.loops = [x for x in self.loops if x is not loop and not x.is_closed()]
            self.loops.append(loop)
        ready: asyncio.Future[bool] = loop.create_future()
        self.waiter = ready
        timer = loop.call_later(timeout, _expire, ready)
        try:
            return await ready
        finally:
            timer.cancel()
            self.waiter = None

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        """On ``loop``'s thread: the socket is readable."""
        ready = self.waiter
        if ready is not None and ready.get_loop() is loop:
            if not ready.done():
                ready.set_result(True)
            return
        self._drop(loop)  # readable, nobody waiting here: stop watching until the next wait

    def _drop(self, loop: asyncio.AbstractEventLoop) -> None:
        """On ``loop``'s thread (or with it stopped): unregister there, if still the holder."""
        with contextlib.suppress(ValueError):
            self.loops.remove(loop)
        if loop.is_closed():
            return
        held = _held(loop)
        if held.get(self.fd) is self:
            del held[self.fd]
            loop.remove_reader(self.fd)

    def close(self) -> None:
        """Stop watching on every loop; call it before the socket is closed (any thread)."""
        for loop in list(self.loops):
            self._close_on(loop)

    def _close_on(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop.is_closed():
            self._drop(loop)
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop or not loop.is_running():
            self._drop(loop)
            return
        done = threading.Event()

        def drop() -> None:
            try:
                self._drop(loop)
            finally:
                done.set()

        try:
            loop.call_soon_threadsafe(drop)
        except RuntimeError:  # closed meanwhile: its registrations went with it
            with contextlib.suppress(ValueError):
                self.loops.remove(loop)
            return
        done.wait(5.0)


_HELD: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, Watch]]
_HELD = weakref.WeakKeyDictionary()
_HELD_LOCK = threading.Lock()


def _held(loop: asyncio.AbstractEventLoop) -> dict[int, Watch]:
    """descriptor -> the Watch registered for it on ``loop``."""
    held = _HELD.get(loop)
    if held is None:
        with _HELD_LOCK:
            held = _HELD.setdefault(loop, {})
    return held


def _expire(ready: asyncio.Future[bool]) -> None:
    if not ready.done():
        ready.set_result(False)
