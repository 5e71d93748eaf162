"""The spaces proxy's WebSocket byte relay between a real aiohttp client and a real aiohttp
WebSocket app, on asyncio's loop and on uvloop (whose transports are not asyncio's
classes): messages both ways, one far larger than the relay's write buffers (reading
pauses and resumes), the app refusing the upgrade, and either side closing."""

from __future__ import annotations

import asyncio
import os

import aiohttp
import pytest
from aiohttp import web
from gitd_plugins.spaces.wsrelay import HIGH, RelayError, relay_websocket

from tests.aio_server import LOOPS, serve_here


async def scenario() -> dict:
    seen: dict = {"closed_by_client": asyncio.Event(), "refusals": [], "queries": []}

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("chat",), max_msg_size=0)
        await ws.prepare(request)
        seen["queries"].append(request.query_string)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT and msg.data == "bye":
                await ws.close(message=b"app says bye")
            elif msg.type == aiohttp.WSMsgType.TEXT and msg.data == "flood":
                for n in range(3):  # faster than the client reads: the relay stops reading the app
                    await ws.send_bytes(bytes([n]) * (2 * HIGH))
            elif msg.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str(msg.data.upper())
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(msg.data[::-1])
        seen["closed_by_client"].set()
        return ws

    app = web.Application()
    app.router.add_get("/ws", echo)
    app.router.add_get("/plain", lambda r: web.Response(text="no websocket here"))
    app_runner, app_port = await serve_here(app)

    async def proxy(request: web.Request) -> web.StreamResponse:
        try:
            return await relay_websocket(request, app_port, request.match_info["path"], [])
        except RelayError as exc:
            seen["refusals"].append(str(exc))
            return web.Response(status=502, text=str(exc))

    front = web.Application()
    front.router.add_get("/p/{path:.*}", proxy)
    front_runner, port = await serve_here(front)
    try:
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(f"ws://127.0.0.1:{port}/p/ws?a=1%202", protocols=("chat",),
                                    max_msg_size=0) as ws:
                assert ws.protocol == "chat"
                for word in ("hello", "wörld"):
                    await ws.send_str(word)
                    assert (await ws.receive()).data == word.upper()
                big = os.urandom(4 * HIGH + 12345)  # past the write buffers: reading pauses and resumes
                await ws.send_bytes(big)
                reply = await asyncio.wait_for(ws.receive(), 30)
                assert reply.type == aiohttp.WSMsgType.BINARY and reply.data == big[::-1]
                await ws.send_str("flood")
                await asyncio.sleep(0.5)  # not reading: buffers fill up to the relay
                for n in range(3):
                    reply = await asyncio.wait_for(ws.receive(), 30)
                    assert reply.data == bytes([n]) * (2 * HIGH)
                await ws.send_str("still")
                assert (await ws.receive()).data == "STILL"
            await asyncio.wait_for(seen["closed_by_client"].wait(), 10)  # the client's close reached the app
            async with s.ws_connect(f"ws://127.0.0.1:{port}/p/ws") as ws:
                await ws.send_str("bye")
                msg = await asyncio.wait_for(ws.receive(), 10)  # the app's close reaches the client
                assert msg.type == aiohttp.WSMsgType.CLOSE and msg.extra == "app says bye"
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await s.ws_connect(f"ws://127.0.0.1:{port}/p/plain")
            assert refused.value.status == 502
    finally:
        await front_runner.cleanup()
        await app_runner.cleanup()
    return seen


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_the_relay_carries_both_ways_pauses_for_big_messages_and_closes(loop):
    ev = LOOPS[loop]()
    try:
        seen = ev.run_until_complete(asyncio.wait_for(scenario(), 60))
    finally:
        ev.close()
    assert seen["queries"] == ["a=1 2", ""]  # the query string reached the app as the client sent it
    assert seen["refusals"] == ["the app refused the WebSocket upgrade (200)"]
