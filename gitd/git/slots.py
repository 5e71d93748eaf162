"""Who may run a git process now: the daemon's git process slots.

``[git] max_processes`` slots in all; of these, one client address may hold at most
``per_client`` and anonymous callers together at most ``anonymous``, so one address, or
the anonymous public, cannot take every slot. A caller over a limit waits in line (first
come, first served among those a free slot may go to) for at most ``wait`` seconds, then
gets ``ServiceUnavailable`` with a Retry-After instead of hanging.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from gitd.errors import ServiceUnavailable

# Retry-After, in seconds, of a caller that found no slot.
RETRY_AFTER = 5


@dataclass(frozen=True)
class Caller:
    """Whom a git process runs for: the client's address (None: unknown) and whether it is anonymous."""

    address: str | None = None
    anonymous: bool = False


UNKNOWN_CALLER = Caller()


@dataclass(frozen=True)
class SlotsState:
    total: int
    used: int
    waiting: int
    anonymous: int

    @property
    def free(self) -> int:
        return self.total - self.used

    def as_dict(self) -> dict[str, int]:
        return {"slots": self.total, "used": self.used, "free": self.free, "waiting": self.waiting,
                "anonymous": self.anonymous}


class GitSlots:
    def __init__(self, total: int, *, per_client: int = 0, anonymous: int = 0, wait: float = 0.0):
        """``per_client`` / ``anonymous``: 0 means no limit beyond ``total``; ``wait``: 0 means
        wait as long as it takes."""
        self.total = max(1, total)
        self.per_client = per_client
        self.anonymous_cap = anonymous
        self.wait = wait
        self._used = 0
        self._anonymous = 0
        self._by_client: dict[str, int] = {}
        self._queue: collections.deque[tuple[asyncio.Future[None], Caller]] = collections.deque()

    def state(self) -> SlotsState:
        return SlotsState(self.total, self._used, len(self._queue), self._anonymous)

    def _fits(self, caller: Caller) -> bool:
        if self._used >= self.total:
            return False
        if caller.anonymous and self.anonymous_cap and self._anonymous >= self.anonymous_cap:
            return False
        return not (self.per_client and caller.address is not None
                    and self._by_client.get(caller.address, 0) >= self.per_client)

    def _take(self, caller: Caller) -> None:
        self._used += 1
        if caller.anonymous:
            self._anonymous += 1
        if caller.address is not None:
            self._by_client[caller.address] = self._by_client.get(caller.address, 0) + 1

    def _give_back(self, caller: Caller) -> None:
        self._used -= 1
        if caller.anonymous:
            self._anonymous -= 1
        if caller.address is not None:
            left = self._by_client[caller.address] - 1
            if left:
                self._by_client[caller.address] = left
            else:
                del self._by_client[caller.address]
        self._hand_out()

    def _hand_out(self) -> None:
        """Give free slots to the first waiters they may go to."""
        for entry in list(self._queue):
            if self._used >= self.total:
                return
            future, caller = entry
            if future.done():
                continue
            if self._fits(caller):
                self._take(caller)
                self._queue.remove(entry)
                future.set_result(None)

    @contextlib.asynccontextmanager
    async def hold(self, caller: Caller = UNKNOWN_CALLER) -> AsyncIterator[None]:
        """A slot for ``caller`` for the block; ServiceUnavailable after waiting ``wait`` seconds."""
        if not self._queue and self._fits(caller):
            self._take(caller)
        else:
            await self._wait_for_slot(caller)
        try:
            yield
        finally:
            self._give_back(caller)

    async def _wait_for_slot(self, caller: Caller) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (future, caller)
        self._queue.append(entry)
        self._hand_out()  # those ahead may be waiting for limits that do not hold this caller back
        try:
            async with asyncio.timeout(self.wait if self.wait > 0 else None):
                await future
        except BaseException as exc:
            if future.done() and not future.cancelled():
                self._give_back(caller)  # granted just as we gave up: pass it on
            else:
                future.cancel()
                with contextlib.suppress(ValueError):
                    self._queue.remove(entry)
            if isinstance(exc, TimeoutError):
                raise ServiceUnavailable(self._busy_message(caller), retry_after=RETRY_AFTER) from None
            raise

    def _busy_message(self, caller: Caller) -> str:
        if self.per_client and caller.address is not None \
                and self._by_client.get(caller.address, 0) >= self.per_client:
            return (f"too many git requests from your address at once (at most {self.per_client}); "
                    f"try again in a moment")
        if caller.anonymous and self.anonymous_cap and self._anonymous >= self.anonymous_cap:
            return "the server is busy with anonymous git requests; try again in a moment, or sign in"
        return "the server is busy (every git process slot is in use); try again in a moment"
