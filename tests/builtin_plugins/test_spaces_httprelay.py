"""The spaces proxy's plain-HTTP relay between a real aiohttp client and real app servers
(an aiohttp app that keeps connections, a stdlib ``http.server`` that closes them, and raw
sockets answering what no good server would), on asyncio's loop and on uvloop: bodies both
ways whole (buffered, streamed, chunked, far larger than the relay's buffers), connections
kept between requests and given up when the app closes them, and broken answers refused
(502) or cut (the client sees a truncated body, never a shorter whole one)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import aiohttp
import pytest
from aiohttp import web
from gitd_plugins.spaces.httprelay import HIGH, IDLE_FOR, MAX_HEAD, REPLAY_MAX, HttpRelay, RelayError

from tests.aio_server import LOOPS, serve_here


def run(loop_name: str, scenario: Callable[[], Awaitable[None]]) -> None:
    loop = LOOPS[loop_name]()
    try:
        loop.run_until_complete(asyncio.wait_for(scenario(), 60))
    finally:
        loop.close()


async def proxy_to(relay: HttpRelay, port: int, refusals: list[str]) -> tuple[web.AppRunner, int]:
    async def handle(request: web.Request) -> web.StreamResponse:
        target = request.raw_path.removeprefix("/p")
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in ("connection", "transfer-encoding")]
        try:
            return await relay.relay(request, port, target, headers)
        except (RelayError, ConnectionError) as exc:
            refusals.append(str(exc))
            return web.Response(status=502, text=str(exc))

    app = web.Application()
    app.router.add_route("*", "/p{tail:.*}", handle)
    return await serve_here(app)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_bodies_pass_whole_and_kept_connections_are_used_again(loop_name: str) -> None:
    async def scenario() -> None:
        connections: set[int] = set()

        async def echo(request: web.Request) -> web.StreamResponse:
            connections.add(id(request.transport))
            data = await request.read()
            return web.json_response({"length": len(data), "sha": hashlib.sha256(data).hexdigest(),
                                      "chunked": request.headers.get("Transfer-Encoding", ""),
                                      "path": request.raw_path})

        async def big(request: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse()  # chunked, far over the relay's high-water mark
            await resp.prepare(request)
            for n in range(6):
                await resp.write(bytes([n]) * (HIGH // 2 + 7))
            await resp.write_eof()
            return resp

        app = web.Application(client_max_size=64 << 20)
        app.router.add_route("*", "/echo{tail:.*}", echo)
        app.router.add_get("/big", big)
        async def empty(request: web.Request) -> web.Response:
            return web.Response(status=204)

        app.router.add_get("/gone", empty)
        app_runner, app_port = await serve_here(app)
        relay = HttpRelay()
        refusals: list[str] = []
        proxy_runner, proxy_port = await proxy_to(relay, app_port, refusals)
        base = f"http://127.0.0.1:{proxy_port}/p"
        try:
            async with aiohttp.ClientSession(auto_decompress=False) as client:
                for n in range(20):
                    async with client.get(f"{base}/echo/a%2Fb?x={n}&y=%20") as r:
                        got = await r.json()
                        assert r.status == 200 and got["length"] == 0
                        assert got["path"] == f"/echo/a%2Fb?x={n}&y=%20"
                assert len(connections) == 1, "the app's kept connection is used for every request"
                assert relay.idle(app_port) == 1

                small = os.urandom(REPLAY_MAX // 2)
                large = os.urandom(REPLAY_MAX * 40)
                for data in (small, large):
                    async with client.post(f"{base}/echo", data=data) as r:
                        got = await r.json()
                        assert (got["length"], got["sha"]) == (len(data), hashlib.sha256(data).hexdigest())

                async def gen():
                    for _ in range(5):
                        yield large[:100_000]

                async with client.put(f"{base}/echo", data=gen()) as r:  # no length: chunked to the app
                    got = await r.json()
                    assert got["chunked"] == "chunked" and got["length"] == 500_000
                    assert got["sha"] == hashlib.sha256(large[:100_000] * 5).hexdigest()

                async with client.get(f"{base}/big") as r:
                    body = await r.read()
                assert body == b"".join(bytes([n]) * (HIGH // 2 + 7) for n in range(6))

                async with client.head(f"{base}/echo") as r:
                    assert r.status == 200 and int(r.headers["Content-Length"]) > 0
                async with client.get(f"{base}/gone") as r:
                    assert r.status == 204 and await r.read() == b""
                assert refusals == []

                before = len(connections)
                await asyncio.sleep(IDLE_FOR + 0.3)  # idle too long: not used again
                async with client.get(f"{base}/echo") as r:
                    assert r.status == 200
                assert len(connections) == before + 1
        finally:
            await proxy_runner.cleanup()
            await app_runner.cleanup()

    run(loop_name, scenario)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_an_app_that_closes_every_connection(loop_name: str) -> None:
    """A stdlib http.server (HTTP/1.0, no keep-alive): a fresh connection each request."""

    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/nolength":  # the body ends when the connection does
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"x" * 100_000)
                return
            body = str(self.client_address[1]).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    async def scenario() -> None:
        relay = HttpRelay()
        refusals: list[str] = []
        proxy_runner, proxy_port = await proxy_to(relay, server.server_address[1], refusals)
        try:
            async with aiohttp.ClientSession() as client:
                ports = set()
                for _ in range(5):
                    async with client.get(f"http://127.0.0.1:{proxy_port}/p/pid") as r:
                        ports.add(await r.text())
                assert len(ports) == 5 and relay.idle(server.server_address[1]) == 0
                async with client.get(f"http://127.0.0.1:{proxy_port}/p/nolength") as r:
                    assert await r.read() == b"x" * 100_000
            assert refusals == []
        finally:
            await proxy_runner.cleanup()

    try:
        run(loop_name, scenario)
    finally:
        server.shutdown()
        server.server_close()


async def raw_app(answer: Callable[[int, bytes], bytes | None], keep: bool = True,
                  ) -> tuple[asyncio.Server, int, list[bytes]]:
    """An app on raw sockets: ``answer(n, request)`` for the n-th request on a connection
    gives the bytes to send back (None: close without answering); ``keep=False``: close
    after the first answer."""
    requests: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                request = head + await reader.readexactly(length)
                requests.append(request)
                reply = answer(n, request)
                n += 1
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
                if not keep:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], requests


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_kept_connection_closed_by_the_app_is_retried_only_when_safe(loop_name: str) -> None:
    """The app keeps the connection after its first answer, then drops it on the second
    request without a word (what an app's idle timeout racing the request looks like): a
    GET goes again on a fresh connection; a POST, which the app may have acted on, is a 502."""

    async def scenario() -> None:
        server, port, requests = await raw_app(lambda n, request: OK if n == 0 else None)
        relay = HttpRelay()
        refusals: list[str] = []
        proxy_runner, proxy_port = await proxy_to(relay, port, refusals)
        try:
            async with aiohttp.ClientSession() as client:
                async with client.get(f"http://127.0.0.1:{proxy_port}/p/one") as r:
                    assert r.status == 200 and await r.read() == b"ok"
                async with client.get(f"http://127.0.0.1:{proxy_port}/p/two") as r:
                    assert r.status == 200 and await r.read() == b"ok"
                assert [q.split(b" ")[1] for q in requests] == [b"/one", b"/two", b"/two"]
                assert refusals == []
                async with client.post(f"http://127.0.0.1:{proxy_port}/p/three", data=b"pay once") as r:
                    assert r.status == 502
                assert [q.split(b" ")[1] for q in requests].count(b"/three") == 1
                assert refusals == ["the app closed the connection before its answer was whole"]
        finally:
            await proxy_runner.cleanup()
            server.close()

    run(loop_name, scenario)


@pytest.mark.parametrize("loop_name", LOOPS)
@pytest.mark.parametrize(("reply", "refusal"), [
    (b"SPAM\r\n\r\n", "not HTTP"),
    (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (MAX_HEAD + 10) + b"\r\n\r\n", "head over"),
    (b"HTTP/1.1 200 OK\r\nContent-Len", "before its answer was whole"),
    (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n", "switched protocols"),
])
def test_broken_answers_are_502(loop_name: str, reply: bytes, refusal: str) -> None:
    async def scenario() -> None:
        server, port, _ = await raw_app(lambda n, request: reply, keep=False)
        relay = HttpRelay()
        refusals: list[str] = []
        proxy_runner, proxy_port = await proxy_to(relay, port, refusals)
        try:
            async with aiohttp.ClientSession() as client, client.get(f"http://127.0.0.1:{proxy_port}/p/x") as r:
                assert r.status == 502
            assert len(refusals) == 1 and refusal in refusals[0]
            assert relay.idle(port) == 0
        finally:
            await proxy_runner.cleanup()
            server.close()

    run(loop_name, scenario)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_an_answer_cut_short_is_cut_for_the_client_too(loop_name: str) -> None:
    body = b"y" * (HIGH * 2)
    cut = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(body) * 2, body)

    async def scenario() -> None:
        server, port, _ = await raw_app(lambda n, request: cut, keep=False)
        relay = HttpRelay()
        proxy_runner, proxy_port = await proxy_to(relay, port, [])
        try:
            async with aiohttp.ClientSession() as client, client.get(f"http://127.0.0.1:{proxy_port}/p/x") as r:
                assert r.status == 200
                with pytest.raises(aiohttp.ClientPayloadError):
                    await r.read()
            assert relay.idle(port) == 0
        finally:
            await proxy_runner.cleanup()
            server.close()

    run(loop_name, scenario)
