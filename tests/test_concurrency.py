"""bridge.concurrency: synchronous code on the event loop, suspended only where it awaits."""

from __future__ import annotations

import asyncio
import contextvars
import socket
import threading
import time
from typing import Any

import pytest

try:
    import greenlet  # comes with the libldap extra
except ImportError:
    from tests.conftest import unavailable

    unavailable("greenlet (the libldap extra) is not installed", module=True)

from bridge import concurrency

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


async def _value(v: int, delay: float = 0.0) -> int:
    await asyncio.sleep(delay)
    return v


def test_run_returns_and_await_gives_results() -> None:
    def work(a: int) -> int:
        assert concurrency.active()
        return a + concurrency.await_(_value(1)) + concurrency.await_(_value(2))

    assert asyncio.run(concurrency.run(work, 10)) == 13


def test_errors_reach_the_greenlet_and_then_the_caller() -> None:
    async def boom() -> None:
        raise KeyError("x")

    def caught() -> str:
        try:
            concurrency.await_(boom())
        except KeyError:
            return "caught"
        return "no"

    def uncaught() -> None:
        concurrency.await_(boom())

    assert asyncio.run(concurrency.run(caught)) == "caught"
    with pytest.raises(KeyError):
        asyncio.run(concurrency.run(uncaught))


def test_outside_run_await_is_refused() -> None:
    assert not concurrency.active()
    coro = _value(1)
    with pytest.raises(RuntimeError):
        concurrency.await_(coro)
    coro.close()


def test_the_caller_context_is_seen_and_not_changed() -> None:
    def work() -> str:
        seen = var.get()
        var.set("inside")
        return seen

    async def main() -> tuple[str, str]:
        var.set("request-1")
        seen = await concurrency.run(work)
        return seen, var.get()

    assert asyncio.run(main()) == ("request-1", "request-1")


def test_calls_interleave_on_one_loop() -> None:
    """While one call waits, another runs to completion: the loop is never blocked."""
    order: list[str] = []

    def slow() -> None:
        order.append("slow start")
        concurrency.await_(asyncio.sleep(0.05))
        order.append("slow end")

    def fast() -> None:
        order.append("fast")

    async def main() -> None:
        task = asyncio.ensure_future(concurrency.run(slow))
        await asyncio.sleep(0.01)
        await concurrency.run(fast)
        await task

    asyncio.run(main())
    assert order == ["slow start", "fast", "slow end"]


def test_offload_runs_blocking_work_in_a_thread() -> None:
    ticks: list[float] = []

    def blocking() -> str:
        time.sleep(0.1)
        return threading.current_thread().name

    async def ticker() -> None:
        for _ in range(5):
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    async def main() -> str:
        t = asyncio.ensure_future(ticker())
        name = await concurrency.run(concurrency.offload, blocking)
        await t
        return name

    name = asyncio.run(main())
    assert name != threading.main_thread().name
    assert len(ticks) == 5 and ticks[-1] - ticks[0] < 0.09  # ticked during the sleep


def test_workers_are_reused_with_a_fresh_context_each_call() -> None:
    """A finished call's greenlet serves the next one (a new greenlet per request costs a
    fresh frame stack); what one call set in its context is not seen by the next."""

    def first() -> object:
        var.set("left behind")
        return greenlet.getcurrent()

    def second() -> tuple[object, str]:
        return greenlet.getcurrent(), var.get()

    def fails() -> None:
        var.set("failed")
        raise KeyError("boom")

    async def main() -> None:
        one = await concurrency.run(first)
        two, seen = await concurrency.run(second)
        assert two is one and seen == "unset"
        with pytest.raises(KeyError):
            await concurrency.run(fails)
        three, seen = await concurrency.run(second)  # an error does not cost the worker
        assert three is one and seen == "unset"
        assert not one.dead and one.gr_context is None and one.result is None  # idle: nothing held

    asyncio.run(main())


def test_a_cancelled_call_leaves_a_worker_that_still_works() -> None:
    cleaned: list[str] = []

    def waits() -> None:
        try:
            concurrency.await_(asyncio.sleep(10))
        finally:
            cleaned.append("finally ran")

    async def main() -> int:
        task = asyncio.ensure_future(concurrency.run(waits))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await concurrency.run(lambda: 1 + concurrency.await_(_value(1)))

    assert asyncio.run(main()) == 2
    assert cleaned == ["finally ran"]


def test_many_concurrent_calls_and_a_bounded_pool() -> None:
    def work(i: int) -> int:
        return i + concurrency.await_(_value(0, 0.001 * (i % 5)))

    async def main() -> list[int]:
        return await asyncio.gather(*(concurrency.run(work, i) for i in range(300)))

    assert asyncio.run(main()) == list(range(300))
    assert 0 < len(concurrency._POOL.idle) <= concurrency._IDLE_MAX


def test_each_thread_has_its_own_workers() -> None:
    """Greenlets cannot switch across threads: a loop in another thread (Starlette's test
    client runs the app in one) gets workers of its own."""

    def me() -> object:
        return greenlet.getcurrent()

    here = asyncio.run(concurrency.run(me))
    there: list[object] = []
    t = threading.Thread(target=lambda: there.append(asyncio.run(concurrency.run(me))))
    t.start()
    t.join()
    assert there and there[0] is not here
    assert asyncio.run(concurrency.run(me)) is here


# ---------------------------------------------------------------------------- Watch
def _loops() -> list[Any]:
    out: list[Any] = [asyncio.new_event_loop]
    try:
        import uvloop
    except ImportError:
        return out
    return [*out, uvloop.new_event_loop]


@pytest.fixture(params=_loops(), ids=lambda f: f.__module__.split(".")[0])
def run_loop(request: pytest.FixtureRequest) -> Any:
    """Runs a coroutine on a fresh loop of each kind (uvloop is what production runs)."""

    def run(coro: Any) -> Any:
        loop = request.param()
        try:
            return loop.run_until_complete(coro)
        finally:
            loop.close()

    return run


def test_a_watch_registers_once_for_many_waits() -> None:
    a, b = socket.socketpair()
    calls: list[int] = []

    async def main() -> list[bool]:
        loop = asyncio.get_running_loop()
        add = loop.add_reader

        def counting(fd: int, cb: Any, *args: Any) -> None:
            calls.append(fd)
            add(fd, cb, *args)

        loop.add_reader = counting  # type: ignore[method-assign]
        watch = concurrency.Watch(a.fileno())
        got = []
        for i in range(5):
            b.send(b"x%d" % i)
            got.append(await watch.wait(1.0))
            a.recv(10)
        # nothing sent: times out (asyncio's loop may first hand over one stale report)
        got.append(await watch.wait(0.02) and await watch.wait(0.02))
        watch.close()
        assert a.fileno() not in loop._selector.get_map()  # type: ignore[attr-defined]
        return got

    try:
        assert asyncio.run(main()) == [True] * 5 + [False]
        assert calls == [a.fileno()]
    finally:
        a.close()
        b.close()


def test_a_watch_stops_when_readable_with_nobody_waiting(run_loop: Any) -> None:
    """A server closing an idle pooled connection makes it readable (EOF): the watch drops
    its registration at once (else every loop pass would call it) and registers again at
    the next wait."""
    a, b = socket.socketpair()

    async def main() -> tuple[Any, bool]:
        watch = concurrency.Watch(a.fileno())
        b.send(b"1")
        assert await watch.wait(1.0)
        a.recv(1)
        b.send(b"unasked")  # readable, nobody waiting
        await asyncio.sleep(0.02)
        stopped = list(watch.loops)
        ready = await watch.wait(1.0)  # still readable: registers again, answers at once
        watch.close()
        return stopped, ready

    try:
        assert run_loop(main()) == ([], True)
    finally:
        a.close()
        b.close()


def test_a_reused_descriptor_number_is_taken_over_cleanly(run_loop: Any) -> None:
    """libldap may close its socket by itself (a read error) before the bridge closes the
    watch; a new connection can then get the same descriptor number.  The new watch takes the
    number over (the stale registration removed first, which libuv needs), and the old
    watch's late close leaves the new registration alone."""

    async def main() -> list[bool]:
        a, b = socket.socketpair()
        old = concurrency.Watch(a.fileno())
        b.send(b"x")
        assert await old.wait(1.0)
        number = a.fileno()
        a.close()  # closed under the old watch's registration
        b.close()
        c, d = socket.socketpair()
        if number not in (c.fileno(), d.fileno()):
            pytest.skip("the descriptor number was not reused")  # never seen on Linux
        mine, peer = (c, d) if c.fileno() == number else (d, c)
        new = concurrency.Watch(number)
        got = []
        try:
            peer.send(b"y")
            got.append(await new.wait(1.0))
            mine.recv(1)
            # late, while the new watch waits: must not remove the new registration
            loop = asyncio.get_running_loop()
            loop.call_later(0.01, old.close)
            loop.call_later(0.03, peer.send, b"z")
            got.append(await new.wait(1.0))
            new.close()
        finally:
            c.close()
            d.close()
        return got

    assert run_loop(main()) == [True, True]


def test_a_watch_closed_from_another_thread_is_removed_by_its_loop(run_loop: Any) -> None:
    a, b = socket.socketpair()

    async def main() -> Any:
        watch = concurrency.Watch(a.fileno())
        b.send(b"x")
        assert await watch.wait(1.0)
        a.recv(1)
        t = threading.Thread(target=watch.close)
        t.start()
        while t.is_alive():  # the loop must keep running to do the removal
            await asyncio.sleep(0.005)
        return watch.loops

    try:
        assert run_loop(main()) == []
    finally:
        a.close()
        b.close()


def test_a_watch_shared_by_two_loops_keeps_each_registration_on_its_own_loop() -> None:
    """A pooled connection can serve requests on several loops (Starlette's test client runs
    each request on a loop of its own, in its own thread).  Each loop's registration answers
    only that loop's waits and is changed only on that loop's thread; close() removes it from
    every loop.  Before, the watch remembered only the last loop: the first loop's reader
    stayed behind, fired into the other loop's future from the wrong thread, and a later
    registration on that loop found the descriptor already in its epoll set (FileExistsError,
    seen in CI)."""
    a, b = socket.socketpair()
    loops = [asyncio.new_event_loop(), asyncio.new_event_loop()]
    threads = [threading.Thread(target=lp.run_forever, daemon=True) for lp in loops]
    for t in threads:
        t.start()
    watch = concurrency.Watch(a.fileno())
    fired_on: list[tuple[int, bool]] = []
    wrong_thread: list[str] = []  # registration changes made off the loop's own thread
    for i, lp in enumerate(loops):

        def guarded(real: Any, i: int = i) -> Any:
            def call(*args: Any) -> Any:
                if threading.current_thread() is not threads[i]:
                    wrong_thread.append(f"{real.__name__} on loop {i}")
                return real(*args)

            return call

        lp.add_reader = guarded(lp.add_reader)  # type: ignore[method-assign]
        lp.remove_reader = guarded(lp.remove_reader)  # type: ignore[method-assign]

    async def one_wait(i: int) -> bool:
        b.send(b"x")
        got = await watch.wait(2.0)
        fired_on.append((i, threading.current_thread() is threads[i]))
        a.recv(10)
        return got

    try:
        results = []
        for n in range(40):  # alternate, and now and then twice on the same loop
            i = (n // 3) % 2 if n % 5 else n % 2
            fut = asyncio.run_coroutine_threadsafe(one_wait(i), loops[i])
            results.append(fut.result(5.0))
            # readable with nobody waiting: each registration drops itself on its own loop
            if n % 7 == 0:
                b.send(b"idle")
                time.sleep(0.02)
                a.recv(10)
        assert results == [True] * 40
        # the last two waits on different loops, with nothing to read: both loops keep their
        # registration until close()
        for lp in loops:
            asyncio.run_coroutine_threadsafe(watch.wait(0.05), lp).result(5.0)
        assert all(here for _, here in fired_on)
        assert wrong_thread == []
        assert set(watch.loops) <= set(loops)
        watch.close()  # from a third thread: each loop removes its own registration
        assert watch.loops == []
        for lp in loops:
            maps = asyncio.run_coroutine_threadsafe(_registered(), lp).result(5.0)
            assert a.fileno() not in maps
    finally:
        for lp in loops:
            lp.call_soon_threadsafe(lp.stop)
        for t in threads:
            t.join(5.0)
        for lp in loops:
            lp.close()
        a.close()
        b.close()


async def _registered() -> set[int]:
    """The descriptors asyncio's selector holds on the running loop."""
    loop = asyncio.get_running_loop()
    return set(loop._selector.get_map())  # type: ignore[attr-defined]
