"""The hook socket's minimal HTTP server, over a real Unix socket, on both event loops."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from gitd import eventloop
from gitd.hooks.server import HookServer

TOKEN = "X-Gitd-Push-Token"


def request(path: str = "/hook/pre-receive", body: bytes = b"refs", *, method: str = "POST",
            headers: str | None = None) -> bytes:
    if headers is None:
        headers = f"Host: gitd\r\n{TOKEN}: tok-1\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
    return f"{method} {path} HTTP/1.1\r\n{headers}\r\n".encode() + body


async def exchange(path: Path, chunks: list[bytes], *, half_close: bool = False) -> tuple[int, bytes, bytes]:
    """Send ``chunks`` (one write each, with a pause between), read the answer until the server closes."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    for chunk in chunks:
        writer.write(chunk)
        await writer.drain()
        await asyncio.sleep(0.01)
    if half_close:
        writer.write_eof()
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    return int(lines[0].split(b" ")[1]), head, body


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_kind(request) -> str:
    return request.param


def serve(tmp_path: Path, test, loop_kind: str) -> None:
    calls: list[tuple[str | None, bytes]] = []

    async def handler(token: str | None, body: bytes) -> tuple[int, str]:
        calls.append((token, body))
        if body == b"boom":
            raise RuntimeError("handler bug")
        if body == b"slow":
            await asyncio.sleep(0.2)
        return (403, "refused: see\nthe message") if body == b"refuse" else (200, "")

    async def main() -> None:
        server = HookServer({"/hook/pre-receive": handler}, token_header=TOKEN, max_body=1000)
        sock = tmp_path / "hooks.sock"
        await server.start(str(sock))
        try:
            await test(sock, calls, server)
        finally:
            await server.stop()

    eventloop.run(main(), eventloop.loop_factory(loop_kind))


def test_a_hook_call_reaches_its_handler_with_token_and_body_and_gets_a_closing_answer(tmp_path: Path, loop_kind):
    async def test(sock, calls, server):
        status, head, body = await exchange(sock, [request(body=b"a b c\n")])
        assert status == 200 and body == b"" and b"Content-Length: 0" in head and b"Connection: close" in head
        assert calls == [("tok-1", b"a b c\n")]
        status, head, body = await exchange(sock, [request(body=b"refuse")])
        assert status == 403 and body == b"refused: see\nthe message\n"
        assert f"Content-Length: {len(body)}".encode() in head

    serve(tmp_path, test, loop_kind)


def test_a_request_in_pieces_and_a_client_that_half_closes_are_served(tmp_path: Path, loop_kind):
    async def test(sock, calls, server):
        raw = request(body=b"x" * 300)
        pieces = [raw[:7], raw[7:40], raw[40:-100], raw[-100:]]
        assert (await exchange(sock, pieces, half_close=True))[0] == 200
        assert calls == [("tok-1", b"x" * 300)]

    serve(tmp_path, test, loop_kind)


@pytest.mark.parametrize(("raw", "status"), [
    (request(path="/hook/nope"), 404),
    (request(method="GET"), 405),
    (request(headers="Host: gitd\r\n"), 411),                                   # no Content-Length
    (request(headers="Transfer-Encoding: chunked\r\n"), 411),
    (request(headers="Content-Length: 1\r\nContent-Length: 2\r\n"), 400),
    (request(headers="Content-Length: -1\r\n"), 400),
    (request(headers="Content-Length: 1001\r\n"), 413),                        # over max_body
    (request(headers="no colon here\r\nContent-Length: 1\r\n"), 400),
    (b"POST /hook/pre-receive\r\n\r\n", 400),                                   # no version
    (b"X" * 20000, 400),                                                        # endless header
])
def test_requests_the_server_does_not_take_are_answered_without_calling_the_handler(tmp_path, raw, status, loop_kind):
    async def test(sock, calls, server):
        assert (await exchange(sock, [raw]))[0] == status
        assert calls == []

    serve(tmp_path, test, loop_kind)


def test_a_request_cut_short_is_refused_and_a_handler_error_is_a_500_without_details(tmp_path: Path, loop_kind):
    async def test(sock, calls, server):
        raw = request(body=b"0123456789")
        assert (await exchange(sock, [raw[:-3]], half_close=True))[0] == 400
        status, _, body = await exchange(sock, [request(body=b"boom")])
        assert status == 500 and b"handler bug" not in body and b"internal error" in body
        assert calls == [("tok-1", b"boom")]

    serve(tmp_path, test, loop_kind)


def test_stop_lets_a_call_under_way_answer(tmp_path: Path, loop_kind):
    async def test(sock, calls, server):
        pending = asyncio.create_task(exchange(sock, [request(body=b"slow")]))
        while not calls:
            await asyncio.sleep(0.01)
        await server.stop()
        assert (await pending)[0] == 200
        with pytest.raises(OSError), socket.socket(socket.AF_UNIX) as s:
            s.connect(str(sock))

    serve(tmp_path, test, loop_kind)


def test_regression_a_content_length_of_5000_digits_is_answered_413(tmp_path: Path, loop_kind):
    # int() refused to convert it (ValueError inside data_received): the connection closed unanswered.
    async def test(sock, calls, server):
        for digits in ("9" * 5000, "1" + "0" * 30):
            assert (await exchange(sock, [request(headers=f"Content-Length: {digits}\r\n")]))[0] == 413
        assert calls == []
        assert (await exchange(sock, [request(headers=f"Content-Length: {'0' * 5000}1\r\n")]))[0] == 200
        assert calls == [(None, b"r")]  # one byte of the body "refs"

    serve(tmp_path, test, loop_kind)
