"""The read-idle timeout of request bodies, on every route.

A request whose body has not all arrived gets a watch: if no byte of it arrives for
``[server] body_timeout`` seconds while the daemon has read everything the client sent
(so the client, not the daemon, is the slow side), reading the body raises
``RequestTimeout`` (408) and the connection is closed after the answer. A body the
daemon is slow to consume (git busy, the disk slow) is never timed out: then bytes wait
in the buffer and the client cannot send more.

Cost: one timer every ``timeout / 4`` seconds per body still arriving; none for a
request whose body is already in when the handler starts, nor for one without a body.
"""

from __future__ import annotations

import asyncio

from aiohttp import StreamReader, web

from gitd.errors import RequestTimeout

TICKS = 4  # checks per timeout period: a stall is noticed within 1.25 timeouts


def _buffered(payload: StreamReader) -> int:
    """Bytes received and not yet read by the handler (aiohttp keeps no public count)."""
    return int(getattr(payload, "_size", 1))


class BodyWatch:
    def __init__(self, payload: StreamReader, timeout: float):
        self.payload = payload
        self.timeout = timeout
        self._loop = asyncio.get_running_loop()
        self._seen = payload.total_bytes
        self._last = self._loop.time()
        self._handle: asyncio.TimerHandle | None = self._loop.call_later(timeout / TICKS, self._check)
        self.fired = False

    @classmethod
    def start(cls, request: web.Request, timeout: float) -> BodyWatch | None:
        """A watch on the request's body, or None when there is nothing to wait for."""
        if timeout <= 0 or not request.body_exists:
            return None
        payload = request.content
        if payload.is_eof() or payload.exception() is not None:
            return None
        return cls(payload, timeout)

    def _check(self) -> None:
        self._handle = None
        payload = self.payload
        if payload.is_eof() or payload.exception() is not None:
            return
        now = self._loop.time()
        if payload.total_bytes != self._seen or _buffered(payload) > 0:
            self._seen = payload.total_bytes
            self._last = now
        elif now - self._last >= self.timeout:
            self.fired = True
            payload.set_exception(RequestTimeout(
                f"the request body stalled: nothing arrived for {self.timeout:g} seconds"))
            return
        self._handle = self._loop.call_later(self.timeout / TICKS, self._check)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
