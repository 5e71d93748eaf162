"""The offload budget: work on client data runs on a few threads, with a time limit."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from gitd.http.offload import Offload, Overrun, check_deadline


def test_regression_work_that_overruns_is_refused_in_time_and_gives_back_its_thread():
    """Parsing client data ran on the event loop (validate-yaml: 15 s per MB), or without a limit."""
    stopped = threading.Event()

    def endless() -> None:
        while True:
            check_deadline()  # raises once the request's time is up: the abandoned call ends
            time.sleep(0.01)

    def ended() -> None:
        try:
            endless()
        finally:
            stopped.set()

    async def main() -> float:
        offload = Offload(workers=1, limit=0.3)
        started = time.monotonic()
        with pytest.raises(Overrun, match=r"took more than 0\.3 s"):
            await offload.run(ended, what="the test")
        took = time.monotonic() - started
        assert stopped.wait(2)
        assert await offload.run(lambda: 42) == 42  # the slot came back
        return took

    assert asyncio.run(main()) < 1.0


def test_the_loop_stays_free_while_work_runs():
    async def main() -> None:
        offload = Offload(workers=2, limit=5)
        work = asyncio.ensure_future(offload.run(time.sleep, 0.5))
        started = time.monotonic()
        await asyncio.sleep(0.01)
        assert time.monotonic() - started < 0.2
        await work

    asyncio.run(main())


def test_calls_waiting_for_a_thread_are_refused_after_the_limit_and_never_start():
    ran = []

    async def main() -> None:
        offload = Offload(workers=1, limit=0.3)
        first = asyncio.ensure_future(offload.run(time.sleep, 0.6))
        await asyncio.sleep(0.05)
        with pytest.raises(Overrun, match="busy"):
            await offload.run(ran.append, 1)
        with pytest.raises(Overrun):
            await first

    asyncio.run(main())
    time.sleep(0.1)
    assert ran == []


def test_errors_come_back_as_they_were_raised():
    async def main() -> None:
        with pytest.raises(ValueError, match="bad"):
            await Offload().run(lambda: (_ for _ in ()).throw(ValueError("bad")))

    asyncio.run(main())
