"""ThreadPool: plugin code on reusable daemon threads."""

from __future__ import annotations

import asyncio
import sys
import threading
import time

import pytest

from gitd.jobs.threads import PluginCrashed, ThreadPool


def test_threads_are_reused_and_added_only_when_all_are_busy():
    pool = ThreadPool("t")

    async def scenario() -> None:
        names = {await pool.run(lambda: threading.current_thread().name) for _ in range(5)}
        assert names == {"t-1"} and pool.threads == 1  # one at a time: one thread
        release = threading.Event()
        busy = [asyncio.ensure_future(pool.run(release.wait)) for _ in range(3)]
        await asyncio.sleep(0.05)
        assert pool.threads == 3
        release.set()
        await asyncio.gather(*busy)
        assert all(t.daemon for t in threading.enumerate() if t.name.startswith("t-"))

    asyncio.run(scenario())


def test_errors_come_back_and_systemexit_is_contained():
    pool = ThreadPool("e")

    async def scenario() -> None:
        with pytest.raises(ValueError, match="bad"):
            await pool.run(lambda: (_ for _ in ()).throw(ValueError("bad")))
        with pytest.raises(PluginCrashed, match="SystemExit: 4"):
            await pool.run(sys.exit, 4)
        assert await pool.run(lambda x: x + 1, 1) == 2  # the thread lived on

    asyncio.run(scenario())


def test_a_caller_that_gives_up_abandons_the_call_without_waiting():
    pool = ThreadPool("h")
    release = threading.Event()

    async def scenario() -> float:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(pool.run(release.wait, 10), 0.1)
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 2
    release.set()
