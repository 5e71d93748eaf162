"""Free disk space, and the watermark below which the daemon refuses new writes.

A full disk fails writes half-way (a pack half received, an LFS upload half stored) and
clients retry what cannot succeed. So the daemon keeps ``[server] min_free_space`` for
itself: below it, pushes, LFS uploads and API commits are refused up front with 507 ("the
server is out of disk space"), reads go on, /readyz says why it is not ready, and the log
says so once each time the space falls below (and climbs back over) the watermark. A write
that still meets a full disk (ENOSPC) answers 507 too (``gitd.http.errors.resource_error``).

Free space is read with ``statvfs`` at most once a second per filesystem (the clock is
injected); every directory given is watched (one that does not exist yet is skipped), so
an LFS store on its own disk counts.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from gitd.clock import SYSTEM_CLOCK, Clock
from gitd.errors import InsufficientStorage

log = logging.getLogger("gitd.ops")

# Seconds a free-space reading is trusted.
READ_EVERY = 1.0
MESSAGE = "the server is out of disk space; try again later"


@dataclass(frozen=True)
class Reading:
    path: Path
    free: int  # bytes available to the daemon's user
    total: int


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


class DiskSpace:
    def __init__(self, paths: list[Path], watermark: int, *, clock: Clock = SYSTEM_CLOCK):
        self.paths = list(dict.fromkeys(paths))
        self.watermark = watermark
        self.clock = clock
        self._read: dict[Path, tuple[float, Reading]] = {}
        self._was_low = False

    def readings(self) -> list[Reading]:
        """Free space on each watched filesystem (read at most once a second each)."""
        now = self.clock.monotonic()
        out = []
        for path in self.paths:
            cached = self._read.get(path)
            if cached is None or now - cached[0] >= READ_EVERY:
                try:
                    st = os.statvfs(path)
                except OSError:
                    continue
                cached = (now, Reading(path, st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize))
                self._read[path] = cached
            out.append(cached[1])
        return out

    def free(self) -> int | None:
        """The least free space of the watched filesystems (None when none could be read)."""
        readings = self.readings()
        return min(r.free for r in readings) if readings else None

    def low(self) -> Reading | None:
        """The first watched filesystem below the watermark, if any (and log crossings)."""
        found = None
        if self.watermark > 0:
            found = next((r for r in self.readings() if r.free < self.watermark), None)
        if (found is not None) != self._was_low:
            self._was_low = found is not None
            if found is not None:
                log.error("disk space low: %s free on %s, under the %s kept free ([server] min_free_space); "
                          "pushes, uploads and commits are refused until there is more", _human(found.free),
                          found.path, _human(self.watermark))
            else:
                log.warning("disk space is above [server] min_free_space again; writes are accepted")
        return found

    def check(self) -> None:
        """InsufficientStorage (507) while a watched filesystem is below the watermark."""
        found = self.low()
        if found is not None:
            raise InsufficientStorage(MESSAGE, detail=f"{_human(found.free)} free on {found.path}, under the "
                                                      f"{_human(self.watermark)} watermark")

    def reason(self) -> str | None:
        """Why the daemon is not ready for writes (for /readyz), or None."""
        found = self.low()
        if found is None:
            return None
        return f"disk space low: {_human(found.free)} free on {found.path} (keeps {_human(self.watermark)} free)"
