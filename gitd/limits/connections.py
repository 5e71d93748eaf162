"""How many connections the daemon holds open: per client address and in all.

One ``ConnectionLimiter`` is shared by every listener (HTTP and SSH), so together they
stay below the process's descriptor limit: a flood of idle connections is refused at
accept time (and the admitted ones time out), instead of taking the last descriptor
the daemon needs for its database, git pipes and health checks.
"""

from __future__ import annotations

import logging
import resource
import time

from gitd.metrics import Counter

log = logging.getLogger("gitd.limits")

# Descriptors kept back from connections: the database, logs, LFS files, hook calls...
RESERVED_FDS = 256
# ...and per git process slot (three pipes and a pidfd, with room to spare).
FDS_PER_GIT_PROCESS = 6
# At least this many connections, however low the descriptor limit.
MIN_CONNECTIONS = 64
# Connections the kernel queues for a listener until the daemon accepts them. A flood fills
# a short queue faster than the daemon accepts (and refuses) them, and then the kernel drops
# other clients' SYNs (they retry after a second); a long one makes the daemon accept (and
# refuse) in long batches that hold up its event loop.
LISTEN_BACKLOG = 512
# Seconds between two warnings that a connection limit refused someone.
WARN_EVERY = 60.0


def raise_descriptor_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def automatic_cap(descriptors: int, git_processes: int) -> int:
    """Connections the daemon may hold with ``descriptors`` file descriptors."""
    return max(MIN_CONNECTIONS, descriptors - RESERVED_FDS - FDS_PER_GIT_PROCESS * git_processes)


class ConnectionLimiter:
    def __init__(self, total: int, per_address: int = 0, refused: Counter | None = None):
        """``total`` connections in all; ``per_address`` from one client address (0: no limit).
        ``refused`` counts refusals (labels: transport, reason)."""
        self.total = total
        self.per_address = per_address
        self.refused = refused
        self.open = 0
        self._by_address: dict[str, int] = {}
        self._warned = 0.0

    def admit(self, address: str | None, transport: str) -> bool:
        """Count a new connection in, or say it must be refused."""
        reason = None
        if self.open >= self.total:
            reason = "total"
        elif self.per_address and address is not None and self._by_address.get(address, 0) >= self.per_address:
            reason = "address"
        if reason is not None:
            self._refuse(address, transport, reason)
            return False
        self.open += 1
        if address is not None:
            self._by_address[address] = self._by_address.get(address, 0) + 1
        return True

    def release(self, address: str | None) -> None:
        self.open -= 1
        if address is not None:
            left = self._by_address.get(address, 1) - 1
            if left > 0:
                self._by_address[address] = left
            else:
                self._by_address.pop(address, None)

    def from_address(self, address: str) -> int:
        return self._by_address.get(address, 0)

    def _refuse(self, address: str | None, transport: str, reason: str) -> None:
        if self.refused is not None:
            self.refused.inc(transport=transport, reason=reason)
        now = time.monotonic()
        if now - self._warned >= WARN_EVERY:
            self._warned = now
            if reason == "total":
                log.warning("connection limit reached: %d open; refusing new %s connections", self.open, transport)
            else:
                log.warning("%s has %d connections open (the limit per address); refusing more %s connections",
                            address, self.per_address, transport)
