"""bridge.greenio: synchronous code on the event loop, suspended only where it awaits."""

from __future__ import annotations

import asyncio
import contextvars
import socket
import threading
import time

import pytest

try:
    import greenlet  # comes with the libldap extra
except ImportError:
    from tests.conftest import unavailable

    unavailable("greenlet (the libldap extra) is not installed", module=True)

from bridge import greenio

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


async def _value(v: int, delay: float = 0.0) -> int:
    await asyncio.sleep(delay)
    return v


def test_run_returns_and_await_gives_results() -> None:
    def work(a: int) -> int:
        assert greenio.active()
        return a + greenio.await_(_value(1)) + greenio.await_(_value(2))

    assert asyncio.run(greenio.run(work, 10)) == 13


def test_errors_reach_the_greenlet_and_then_the_caller() -> None:
    async def boom() -> None:
        raise KeyError("x")

    def caught() -> str:
        try:
            greenio.await_(boom())
        except KeyError:
            return "caught"
        return "no"

    def uncaught() -> None:
        greenio.await_(boom())

    assert asyncio.run(greenio.run(caught)) == "caught"
    with pytest.raises(KeyError):
        asyncio.run(greenio.run(uncaught))


def test_outside_run_await_is_refused() -> None:
    assert not greenio.active()
    coro = _value(1)
    with pytest.raises(RuntimeError):
        greenio.await_(coro)
    coro.close()


def test_the_caller_context_is_seen_and_not_changed() -> None:
    def work() -> str:
        seen = var.get()
        var.set("inside")
        return seen

    async def main() -> tuple[str, str]:
        var.set("request-1")
        seen = await greenio.run(work)
        return seen, var.get()

    assert asyncio.run(main()) == ("request-1", "request-1")


def test_calls_interleave_on_one_loop() -> None:
    """While one call waits, another runs to completion: the loop is never blocked."""
    order: list[str] = []

    def slow() -> None:
        order.append("slow start")
        greenio.await_(asyncio.sleep(0.05))
        order.append("slow end")

    def fast() -> None:
        order.append("fast")

    async def main() -> None:
        task = asyncio.ensure_future(greenio.run(slow))
        await asyncio.sleep(0.01)
        await greenio.run(fast)
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
        name = await greenio.run(greenio.offload, blocking)
        await t
        return name

    name = asyncio.run(main())
    assert name != threading.main_thread().name
    assert len(ticks) == 5 and ticks[-1] - ticks[0] < 0.09  # ticked during the sleep


def test_readable() -> None:
    a, b = socket.socketpair()
    try:

        async def main() -> tuple[bool, bool]:
            idle = await greenio.readable(a.fileno(), 0.02)
            b.send(b"x")
            ready = await greenio.readable(a.fileno(), 1.0)
            return idle, ready

        assert asyncio.run(main()) == (False, True)
    finally:
        a.close()
        b.close()


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
        one = await greenio.run(first)
        two, seen = await greenio.run(second)
        assert two is one and seen == "unset"
        with pytest.raises(KeyError):
            await greenio.run(fails)
        three, seen = await greenio.run(second)  # an error does not cost the worker
        assert three is one and seen == "unset"
        assert not one.dead and one.gr_context is None and one.result is None  # idle: nothing held

    asyncio.run(main())


def test_a_cancelled_call_leaves_a_worker_that_still_works() -> None:
    cleaned: list[str] = []

    def waits() -> None:
        try:
            greenio.await_(asyncio.sleep(10))
        finally:
            cleaned.append("finally ran")

    async def main() -> int:
        task = asyncio.ensure_future(greenio.run(waits))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await greenio.run(lambda: 1 + greenio.await_(_value(1)))

    assert asyncio.run(main()) == 2
    assert cleaned == ["finally ran"]


def test_many_concurrent_calls_and_a_bounded_pool() -> None:
    def work(i: int) -> int:
        return i + greenio.await_(_value(0, 0.001 * (i % 5)))

    async def main() -> list[int]:
        return await asyncio.gather(*(greenio.run(work, i) for i in range(300)))

    assert asyncio.run(main()) == list(range(300))
    assert 0 < len(greenio._POOL.idle) <= greenio._IDLE_MAX


def test_each_thread_has_its_own_workers() -> None:
    """Greenlets cannot switch across threads: a loop in another thread (Starlette's test
    client runs the app in one) gets workers of its own."""

    def me() -> object:
        return greenlet.getcurrent()

    here = asyncio.run(greenio.run(me))
    there: list[object] = []
    t = threading.Thread(target=lambda: there.append(asyncio.run(greenio.run(me))))
    t.start()
    t.join()
    assert there and there[0] is not here
    assert asyncio.run(greenio.run(me)) is here
