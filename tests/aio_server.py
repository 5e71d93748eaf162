"""aiohttp applications served on loopback ports for tests that need a server of their own:
from a background thread (a misbehaving LFS server, a hub without git), or on the test's own
event loop (``serve_here``), under each loop implementation gitd runs on (``LOOPS``)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import uvloop
from aiohttp import web

from tests.http_peer import free_port


class AioServer:
    def __init__(self, app: web.Application):
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def start(self) -> AioServer:
        self._thread.start()

        async def up() -> None:
            self._runner = web.AppRunner(self.app)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

        asyncio.run_coroutine_threadsafe(up(), self._loop).result(10)
        return self

    def stop(self) -> None:
        async def down() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(down(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": asyncio.new_event_loop,
                                                            "uvloop": uvloop.new_event_loop}


async def serve_here(app: web.Application) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on a free loopback port on the running loop: (its runner, the port)."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
