"""GitSlots: git process slots with per-address and anonymous shares and a bounded wait."""

import asyncio

import pytest

from gitd.errors import ServiceUnavailable
from gitd.git.slots import Caller, GitSlots


async def _holding(slots: GitSlots, caller: Caller, release: asyncio.Event, started: asyncio.Event | None = None):
    async with slots.hold(caller):
        if started is not None:
            started.set()
        await release.wait()


def test_one_address_cannot_take_every_slot_and_others_still_get_one():
    async def go():
        slots = GitSlots(4, per_client=2, wait=0.2)
        release = asyncio.Event()
        a = Caller("10.0.0.1")
        held = [asyncio.create_task(_holding(slots, a, release)) for _ in range(2)]
        await asyncio.sleep(0)
        assert slots.state().used == 2
        with pytest.raises(ServiceUnavailable) as refused:  # a third from the same address waits, then 503
            async with slots.hold(a):
                pass
        assert refused.value.retry_after and "your address" in refused.value.message
        async with slots.hold(Caller("10.0.0.2")):  # another address is served at once
            assert slots.state().used == 3
        release.set()
        await asyncio.gather(*held)
        assert slots.state().used == 0 and slots.state().waiting == 0

    asyncio.run(go())


def test_anonymous_callers_leave_slots_for_signed_in_ones():
    async def go():
        slots = GitSlots(3, anonymous=2, wait=0.2)
        release = asyncio.Event()
        held = [asyncio.create_task(_holding(slots, Caller(f"10.0.0.{i}", anonymous=True), release))
                for i in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(ServiceUnavailable, match="anonymous"):
            async with slots.hold(Caller("10.0.0.9", anonymous=True)):
                pass
        async with slots.hold(Caller("10.0.0.9", anonymous=False)):
            assert slots.state().as_dict() == {"slots": 3, "used": 3, "free": 0, "waiting": 0, "anonymous": 2}
        release.set()
        await asyncio.gather(*held)

    asyncio.run(go())


def test_waiters_get_freed_slots_in_order_and_one_held_back_by_its_address_does_not_block_others():
    async def go():
        slots = GitSlots(2, per_client=1, wait=5)
        release_a, release_b = asyncio.Event(), asyncio.Event()
        a1 = asyncio.create_task(_holding(slots, Caller("a"), release_a))
        b1 = asyncio.create_task(_holding(slots, Caller("b"), release_b))
        await asyncio.sleep(0)
        order: list[str] = []

        async def waiter(name: str, address: str) -> None:
            async with slots.hold(Caller(address)):
                order.append(name)

        a2 = asyncio.create_task(waiter("a2", "a"))  # waits for a's slot
        c1 = asyncio.create_task(waiter("c1", "c"))  # waits for any slot
        await asyncio.sleep(0.01)
        assert slots.state().waiting == 2
        release_b.set()  # b's slot frees: a2 may not take it (a holds one), c1 may
        await asyncio.wait_for(c1, 2)
        assert order == ["c1"] and not a2.done()
        release_a.set()
        await asyncio.wait_for(a2, 2)
        await asyncio.gather(a1, b1)
        assert order == ["c1", "a2"] and slots.state().used == 0

    asyncio.run(go())


def test_a_cancelled_waiter_leaves_no_slot_behind():
    async def go():
        slots = GitSlots(1)
        release = asyncio.Event()
        holder = asyncio.create_task(_holding(slots, Caller("a"), release))
        await asyncio.sleep(0)
        waiter = asyncio.create_task(_holding(slots, Caller("b"), asyncio.Event()))
        await asyncio.sleep(0.01)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        assert slots.state().waiting == 0
        release.set()
        await holder
        assert slots.state().used == 0
        async with slots.hold(Caller("c")):
            assert slots.state().used == 1

    asyncio.run(go())
