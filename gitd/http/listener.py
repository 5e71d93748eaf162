"""The HTTP listener: aiohttp's TCP site with connections counted per client address.

aiohttp has no connection limit, so the site's protocol factory is wrapped: each new
connection is admitted by the shared ``ConnectionLimiter`` (per client address and in
all, HTTP and SSH together) before aiohttp sees it, and a connection over a limit gets
a short 503 and is closed at once, so an idle flood cannot take every descriptor.
Header and keep-alive idle time are aiohttp's ``keepalive_timeout`` (it runs from the
moment a connection opens, and closes it while no whole request has arrived); the
body's idle time is ``gitd.http.body_watch``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from gitd.limits.connections import LISTEN_BACKLOG, ConnectionLimiter

if TYPE_CHECKING:
    from gitd.http.relay_lane import RelayLane

_BODY = b"too many connections; try again later\n"
REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nConnection: close\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n\r\n%s" % (len(_BODY), _BODY))


class GuardedConnection(asyncio.Protocol):
    """One client connection: admitted by the limiter, then handed to aiohttp's handler."""

    __slots__ = ("_address", "_factory", "_inner", "_limiter")

    def __init__(self, factory: Callable[[], asyncio.Protocol], limiter: ConnectionLimiter):
        self._factory = factory
        self._limiter = limiter
        self._inner: asyncio.Protocol | None = None
        self._address: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self._address = peer[0] if isinstance(peer, tuple) and peer else None
        if not self._limiter.admit(self._address, "http"):
            transport.write(REFUSAL)  # type: ignore[attr-defined]
            transport.close()
            return
        self._inner = self._factory()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        inner, self._inner = self._inner, None
        if inner is not None:
            self._limiter.release(self._address)
            inner.connection_lost(exc)


class GuardedSite(web.TCPSite):
    """``web.TCPSite`` whose connections pass through ``limiter`` first, then (when given)
    the relay ``lane``, which hands aiohttp whatever it does not answer itself."""

    def __init__(self, runner: web.BaseRunner, host: str | None, port: int | None, *,
                 limiter: ConnectionLimiter, backlog: int = LISTEN_BACKLOG, lane: RelayLane | None = None,
                 **kwargs: object):
        super().__init__(runner, host, port, backlog=backlog, **kwargs)  # type: ignore[arg-type]
        self._limiter = limiter
        self._lane = lane

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert server is not None
        limiter, lane = self._limiter, self._lane
        factory: Callable[[], asyncio.Protocol] = server if lane is None else (lambda: lane.connection(server))
        self._server = await asyncio.get_running_loop().create_server(
            lambda: GuardedConnection(factory, limiter), self._host, self._port, ssl=self._ssl_context,
            backlog=self._backlog, reuse_address=self._reuse_address, reuse_port=self._reuse_port)
        self._bound_port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port
