"""Whether the object store answers, so that nothing waits on a store known to be down.

A call to an S3 store that is down takes seconds to fail (connection attempts, retries),
and every LFS request would wait that long. ``StorageHealth`` remembers the failure: while
the store is known down, calls fail at once with ``StorageUnavailable`` (503, Retry-After),
the batch API hands out no links, and /readyz says so. One call every ``retry`` seconds is
let through to find out whether it is back, and the daemon also probes it periodically
(``probe``), so an idle daemon knows too. Any call that succeeds marks it up again.
"""

from __future__ import annotations

import logging
import math
import threading

from gitd.clock import SYSTEM_CLOCK, Clock
from gitd.lfs.errors import StorageUnavailable

log = logging.getLogger("gitd.lfs")

MESSAGE = "the object store is unavailable; try again later"


class StorageHealth:
    def __init__(self, *, retry: float = 5.0, clock: Clock = SYSTEM_CLOCK):
        self.retry = retry
        self.clock = clock
        self._lock = threading.Lock()
        self.down_since: float | None = None  # monotonic
        self.error = ""
        self._next_try = 0.0

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def before_call(self) -> None:
        """Raise StorageUnavailable at once while the store is known down, except for one
        call every ``retry`` seconds, which goes ahead to find out."""
        if self.down_since is None:
            return
        now = self.clock.monotonic()
        with self._lock:
            if now >= self._next_try:
                self._next_try = now + self.retry
                return
            wait = self._next_try - now
        raise StorageUnavailable(MESSAGE, detail=f"known down since {self.since():.0f}s ago: {self.error}",
                                 retry_after=max(1, math.ceil(wait)))

    def check_up(self) -> None:
        """Raise StorageUnavailable while the store is known down (no call is let through)."""
        if self.down_since is not None:
            raise StorageUnavailable(MESSAGE, detail=f"known down: {self.error}",
                                     retry_after=max(1, math.ceil(self.retry)))

    def failed(self, error: str) -> None:
        with self._lock:
            now = self.clock.monotonic()
            self.error = error
            self._next_try = now + self.retry
            if self.down_since is None:
                self.down_since = now
                log.error("LFS object store unreachable: %s; LFS requests answer 503 until it is back", error)

    def succeeded(self) -> None:
        if self.down_since is None:
            return
        with self._lock:
            if self.down_since is not None:
                log.warning("LFS object store reachable again after %.0fs", self.since())
                self.down_since = None
                self.error = ""

    def since(self) -> float:
        return 0.0 if self.down_since is None else self.clock.monotonic() - self.down_since

    def reason(self) -> str | None:
        """Why LFS storage is not ready (for /readyz), or None."""
        if self.down_since is None:
            return None
        return f"LFS object store unreachable for {self.since():.0f}s: {self.error}"
