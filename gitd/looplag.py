"""Event-loop lag: how late the loop runs what is due, measured all the time.

A task asks to wake every ``interval`` seconds and records how much later than asked it
woke (the time anything else waiting on the loop waits too) in
``gitd_event_loop_lag_seconds``. A lag over ``warn`` seconds means something blocked
the loop (a blocking call, a long computation): it is counted in
``gitd_event_loop_blocked_total`` and logged, at most once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gitd.metrics import Metrics

log = logging.getLogger("gitd.looplag")

INTERVAL = 0.05
WARN = 0.1
LOG_EVERY = 1.0


class LoopLagMonitor:
    def __init__(self, metrics: Metrics, *, interval: float = INTERVAL, warn: float = WARN):
        self.metrics = metrics
        self.interval = interval
        self.warn = warn
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="gitd-loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        logged = suppressed = 0
        while True:
            due = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            lag = max(0.0, loop.time() - due)
            self.metrics.loop_lag.observe(lag)
            if lag > self.worst:
                self.worst = lag
            if lag >= self.warn:
                self.metrics.loop_blocked.inc()
                now = loop.time()
                if now - logged >= LOG_EVERY:
                    more = f" ({suppressed} more since the last report)" if suppressed else ""
                    log.warning("event loop blocked: a task due %.0f ms ago ran only now%s", lag * 1000, more)
                    logged, suppressed = now, 0
                else:
                    suppressed += 1
