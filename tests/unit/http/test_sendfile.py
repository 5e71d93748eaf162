"""gitd.http.sendfile on both event loops the daemon can run (stdlib asyncio and uvloop)."""

import asyncio
import hashlib
import os
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from gitd.eventloop import loop_factory
from gitd.http.sendfile import send_local

SIZE = 32 * 1024 * 1024 + 123  # more than loopback socket buffers hold: sendfile(2) must wait for room


async def _serve_and_fetch(path: Path, ranges: list[tuple[int, int]]) -> list[bytes]:
    async def handler(request: web.Request) -> web.StreamResponse:
        start, end = int(request.query["start"]), int(request.query["end"])
        response = web.StreamResponse(status=200)
        response.content_length = end - start
        assert await send_local(request, response, path, start, end)
        return response

    app = web.Application()
    app.router.add_get("/f", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    bodies = []
    try:
        async with aiohttp.ClientSession() as session:
            for start, end in ranges:
                async with session.get(f"http://127.0.0.1:{port}/f", params={"start": start, "end": end}) as r:
                    assert r.status == 200
                    body = bytearray()
                    async for chunk in r.content.iter_chunked(64 * 1024):
                        body += chunk
                        await asyncio.sleep(0)  # a reader slower than the sender
                    bodies.append(bytes(body))
    finally:
        await runner.cleanup()
    return bodies


@pytest.mark.parametrize("kind", ["asyncio", "uvloop"])
def test_sendfile_sends_exact_ranges_on_either_loop(tmp_path, monkeypatch, kind):
    kernel_copies = []
    real_sendfile = os.sendfile

    def observed(*args):  # the real call, counted: the bytes must go through sendfile(2), not a copy
        sent = real_sendfile(*args)
        kernel_copies.append(sent)
        return sent

    monkeypatch.setattr(os, "sendfile", observed)
    data = os.urandom(SIZE)
    path = tmp_path / "obj"
    path.write_bytes(data)
    ranges = [(0, SIZE), (1000, 1000 + 5 * 1024 * 1024), (SIZE - 10, SIZE)]
    with asyncio.Runner(loop_factory=loop_factory(kind)) as runner:
        if kind == "uvloop":
            assert type(runner.get_loop()).__module__.startswith("uvloop")
        bodies = runner.run(_serve_and_fetch(path, ranges))
    for (start, end), body in zip(ranges, bodies, strict=True):
        assert hashlib.sha256(body).digest() == hashlib.sha256(data[start:end]).digest()
    assert sum(kernel_copies) == sum(end - start for start, end in ranges)
