"""Run the daemon's coroutines from worker threads (plugins, jobs), and from the CLI.

Plugin code runs on threads and is written as plain blocking code; some of what it
uses (LFS storage, commits through the hook chain) is asynchronous and belongs to an
event loop. ``Portal.run`` hands a coroutine to the daemon's loop while the daemon runs
(``attach``), or to a private loop on a background thread in processes that have none
(the CLI, tests), and waits for its result.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class Portal:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._own: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run coroutines on ``loop`` (the daemon's) from now on."""
        self._loop = loop

    def detach(self) -> None:
        self._loop = None

    def run(self, make: Callable[[], Awaitable[T]], *, timeout: float | None = None) -> T:
        """Run the coroutine ``make()`` on the loop and return its result (from a thread that
        is not running an event loop)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError("Portal.run was called from an event loop thread; await the coroutine instead")
        loop = self._loop or self._private_loop()

        async def call() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(call(), loop).result(timeout)

    def _private_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._own is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=_run_then_close, args=(loop,), name="gitd-portal", daemon=True).start()
                self._own = loop
            return self._own

    def close(self) -> None:
        with self._lock:
            if self._own is not None:
                self._own.call_soon_threadsafe(self._own.stop)
                self._own = None


def _run_then_close(loop: asyncio.AbstractEventLoop) -> None:
    """The private loop's thread: run until ``close()`` stops it, then close it here (a loop
    left unclosed is closed by the garbage collector, on whatever thread, later)."""
    try:
        loop.run_forever()
    finally:
        loop.close()
