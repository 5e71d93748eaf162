"""The event-loop lag monitor sees a blocked loop, counts it and logs it."""

import asyncio
import logging
import time

from gitd.looplag import LoopLagMonitor
from gitd.metrics import Metrics


def test_a_blocked_loop_is_measured_counted_and_logged(caplog):
    metrics = Metrics()

    async def go() -> LoopLagMonitor:
        monitor = LoopLagMonitor(metrics, interval=0.01, warn=0.1)
        monitor.start()
        await asyncio.sleep(0.05)
        time.sleep(0.3)  # blocks the loop
        await asyncio.sleep(0.05)
        await monitor.stop()
        return monitor

    with caplog.at_level(logging.WARNING, logger="gitd.looplag"):
        monitor = asyncio.run(go())
    assert monitor.worst >= 0.2
    assert metrics.loop_blocked.value() >= 1
    assert metrics.loop_lag.count() >= 3
    assert any("event loop blocked" in r.getMessage() for r in caplog.records)
    assert 'gitd_event_loop_lag_seconds_bucket{le="0.5"}' in metrics.render()
