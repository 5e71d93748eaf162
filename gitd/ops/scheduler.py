"""Periodic work inside the daemon: each task runs every ``interval`` seconds, one run at a
time, a blocking function on a thread of its own (never on the event loop), a coroutine
function on the loop; a task that fails is logged and runs again at its next turn.
Started and stopped by ``gitd serve`` (``server.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gitd.jobs.threads import ThreadPool

log = logging.getLogger("gitd.ops")


@dataclass(frozen=True)
class PeriodicTask:
    name: str
    interval: float
    run: Callable[[], Any]  # returns what it did, for the log (None: nothing worth a line)
    first: float  # seconds after the start before the first run


class Periodic:
    def __init__(self) -> None:
        self.tasks: list[PeriodicTask] = []
        self._running: list[asyncio.Task[None]] = []
        self._threads = ThreadPool("gitd-periodic")
        self.runs: dict[str, int] = {}

    def every(self, name: str, interval: float, run: Callable[[], Any], *,
              first: float | None = None) -> None:
        """Run ``run()`` (on a thread; awaited on the loop if it is a coroutine function)
        every ``interval`` seconds; the first time
        ``first`` seconds after the start (default: one interval). An interval <= 0: never."""
        if interval > 0:
            self.tasks.append(PeriodicTask(name, interval, run, interval if first is None else first))

    async def start(self) -> None:
        self._running = [asyncio.create_task(self._loop(task), name=f"gitd-periodic-{task.name}")
                         for task in self.tasks]

    async def stop(self) -> None:
        """Stop scheduling; a run in progress is abandoned on its (daemon) thread."""
        for task in self._running:
            task.cancel()
        for task in self._running:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._running = []

    async def _loop(self, task: PeriodicTask) -> None:
        await asyncio.sleep(task.first)
        while True:
            try:
                if inspect.iscoroutinefunction(task.run):
                    result = await task.run()
                else:
                    result = await self._threads.run(task.run)
            except Exception:
                log.exception("periodic task %s failed; it runs again in %gs", task.name, task.interval)
            else:
                if result:
                    log.info("periodic task %s: %s", task.name, result)
            self.runs[task.name] = self.runs.get(task.name, 0) + 1
            await asyncio.sleep(task.interval)
