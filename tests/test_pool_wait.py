"""Slots.wait: a pool slot awaited on the event loop (python-ldap's cooperative mode), with no
thread per waiter: first come first served, a timeout that leaks nothing, a waiter that goes
away passing its turn on, and a slot given back from another thread."""

from __future__ import annotations

import asyncio
import threading

import pytest

from bridge.directory.connections import PoolTimeout, Slots


def test_a_free_slot_is_taken_at_once_with_the_idle_connection() -> None:
    slots: Slots[str] = Slots(2)
    first = slots.take(0)
    assert first is None and slots.in_use == 1
    slots.give("conn-a")

    async def main() -> str | None:
        return await slots.wait(1.0)

    assert asyncio.run(main()) == "conn-a" and slots.in_use == 1 and slots.idle == 0


def test_waiters_get_the_slot_in_order_and_with_the_connection() -> None:
    slots: Slots[str] = Slots(1)
    order: list[tuple[int, str | None]] = []

    async def waiter(i: int) -> None:
        conn = await slots.wait(2.0)
        order.append((i, conn))
        await asyncio.sleep(0.005)
        slots.give(f"conn-{i}")

    async def main() -> None:
        assert slots.take(0) is None  # every slot taken
        tasks = [asyncio.ensure_future(waiter(i)) for i in range(4)]
        await asyncio.sleep(0.01)
        assert not order  # all waiting
        slots.give("conn-x")
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert order == [(0, "conn-x"), (1, "conn-0"), (2, "conn-1"), (3, "conn-2")]
    assert slots.in_use == 0 and slots.idle == 1


def test_a_timeout_raises_and_leaks_no_slot() -> None:
    slots: Slots[str] = Slots(1)

    async def main() -> None:
        assert slots.take(0) is None
        with pytest.raises(PoolTimeout):
            await slots.wait(0.02)
        slots.give(None)  # the holder finishes: the slot is free again, not owed to anyone
        assert slots.in_use == 0
        assert await slots.wait(0.02) is None and slots.in_use == 1

    asyncio.run(main())


def test_a_waiter_that_goes_away_passes_its_turn_on() -> None:
    """Cancelled before the slot came (its request went away), or just after it was handed
    over but before it ran: either way the next waiter gets the slot."""
    slots: Slots[str] = Slots(1)

    async def main() -> str | None:
        assert slots.take(0) is None
        gone = asyncio.ensure_future(slots.wait(2.0))
        late = asyncio.ensure_future(slots.wait(2.0))
        nxt = asyncio.ensure_future(slots.wait(2.0))
        await asyncio.sleep(0.01)
        gone.cancel()
        await asyncio.sleep(0)
        slots.give("conn-1")  # goes to `late`...
        late.cancel()  # ...which is cancelled before the hand-over runs: on to `nxt`
        got = await nxt
        assert gone.cancelled() and late.cancelled()
        return got

    assert asyncio.run(main()) == "conn-1"
    assert slots.in_use == 1


def test_a_slot_given_back_in_another_thread_wakes_the_loop_waiter() -> None:
    slots: Slots[str] = Slots(1)
    threads_before = threading.active_count()

    async def main() -> str | None:
        assert slots.take(0) is None
        waits = [asyncio.ensure_future(slots.wait(2.0)) for _ in range(50)]
        await asyncio.sleep(0.01)
        assert threading.active_count() == threads_before  # no thread per waiter
        t = threading.Thread(target=slots.give, args=("from-thread",))
        t.start()
        got = await waits[0]
        t.join()
        for w in waits[1:]:
            w.cancel()
        return got

    assert asyncio.run(main()) == "from-thread"


def test_a_waiter_whose_loop_closed_is_skipped() -> None:
    slots: Slots[str] = Slots(1)
    assert slots.take(0) is None

    pending: list[asyncio.Future[str | None]] = []

    async def abandon() -> None:
        pending.append(asyncio.ensure_future(slots.wait(5.0)))
        await asyncio.sleep(0.01)

    loop = asyncio.new_event_loop()
    loop.run_until_complete(abandon())
    loop.close()  # the waiter's loop is gone, its future never resolved
    slots.give("conn")  # nobody to hand it to: back to the pool
    assert slots.in_use == 0 and slots.idle == 1
