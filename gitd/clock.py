"""Time, injected: caches and sessions ask a ``Clock`` instead of reading ``time`` themselves,
so tests can move time forward and a later multi-process step can share one."""

from __future__ import annotations

import time as _time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (durations, expiry of cached answers)."""

    def time(self) -> float:
        """Seconds since the epoch (timestamps that outlive the process)."""

    def time_ns(self) -> int:
        """``time()`` in nanoseconds (compared with file times)."""


class SystemClock:
    """The process's clocks (the default everywhere)."""

    monotonic = staticmethod(_time.monotonic)
    time = staticmethod(_time.time)
    time_ns = staticmethod(_time.time_ns)


SYSTEM_CLOCK: Clock = SystemClock()


class ManualClock:
    """A clock that moves only when told to (tests)."""

    def __init__(self, start: float = 1_000_000.0):
        self.now = start

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def time_ns(self) -> int:
        return int(self.now * 1e9)

    def advance(self, seconds: float) -> None:
        self.now += seconds
