"""WebSocket proxying as a byte relay: after the handshake, the two sockets are joined.

The client's upgrade request goes to the app as it came (its ``Sec-WebSocket-Key``,
version, protocols and extensions: whatever the two negotiate, compression included, is
theirs); the app's ``101`` goes back to the client; from then on bytes are copied both
ways in the transports' callbacks, with no frame parsed and no coroutine per message
(parsing and re-framing every message on both legs cost about 0.1 ms a round trip, as
much as the app's own echo). Each direction stops reading while the other side's write
buffer is over ``HIGH`` and reads again once it drains below ``LOW``.

The client side rides on aiohttp's connection: after the ``101`` is sent, the request's
protocol is given a payload parser (what aiohttp's own WebSocketResponse does) whose
``feed_data`` writes to the app.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

from aiohttp import web
from yarl import URL

HIGH, LOW = 1 << 20, 256 << 10  # write buffer bytes: stop reading the other side / read again
MAX_HEAD = 64 << 10  # the app's handshake answer
HANDSHAKE_TIMEOUT = 30.0
KEEP_FROM_APP = frozenset({"upgrade", "connection", "sec-websocket-accept", "sec-websocket-protocol",
                           "sec-websocket-extensions", "set-cookie"})


class RelayError(Exception):
    """The app did not accept the upgrade (its status line, or why it could not be read)."""


class _Side:
    """One direction's flow control: ``source`` stops reading while ``sink`` is full.
    (Transports are duck-typed: uvloop's are not subclasses of asyncio's.)"""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.source: asyncio.BaseTransport | None = None
        self.sink: asyncio.WriteTransport | None = None
        self.paused = False

    def write(self, data: bytes) -> None:
        sink = self.sink
        if sink is None or sink.is_closing():
            return
        sink.write(data)
        if not self.paused and sink.get_write_buffer_size() > HIGH and self.source is not None:
            self.paused = True
            self.source.pause_reading()  # type: ignore[attr-defined]
            self.loop.call_later(0.005, self._drained)

    def _drained(self) -> None:
        sink, source = self.sink, self.source
        if sink is None or sink.is_closing() or source is None or source.is_closing():
            self.paused = False
            return
        if sink.get_write_buffer_size() > LOW:
            self.loop.call_later(0.005, self._drained)
            return
        self.paused = False
        source.resume_reading()  # type: ignore[attr-defined]


class _AppSide(asyncio.Protocol):
    """The connection to the app: first its handshake answer, then bytes for the client."""

    def __init__(self, loop: asyncio.AbstractEventLoop, to_client: _Side, done: asyncio.Future[None]):
        self.head: asyncio.Future[tuple[bytes, bytes]] = loop.create_future()
        self.buffer = b""
        self.to_client = to_client
        self.done = done
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        if self.head.done():
            self.to_client.write(data)
            return
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end >= 0:
            self.head.set_result((self.buffer[:end], self.buffer[end + 4:]))
            self.buffer = b""
        elif len(self.buffer) > MAX_HEAD:
            self.head.set_exception(RelayError("the app's handshake answer is too long"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.head.done():
            self.head.set_exception(RelayError("the app closed the connection during the handshake"))
        if not self.done.done():
            self.done.set_result(None)


class _ClientSide:
    """The payload parser aiohttp feeds the client's bytes to once upgraded."""

    def __init__(self, to_app: _Side, done: asyncio.Future[None]):
        self.to_app = to_app
        self.done = done

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.to_app.write(data)
        return False, b""

    def feed_eof(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


def _request(raw: web.Request, port: int, path: str, headers: Iterable[tuple[str, str]]) -> bytes:
    target = URL.build(path="/" + path).raw_path
    if raw.rel_url.raw_query_string:
        target += "?" + raw.rel_url.raw_query_string
    lines = [f"GET {target} HTTP/1.1"]
    host = f"127.0.0.1:{port}"
    for name, value in headers:
        if name.lower() == "host":
            host = value
        else:
            lines.append(f"{name}: {value}")
    lines.insert(1, f"Host: {host}")
    lines += ["Upgrade: websocket", "Connection: Upgrade"]
    lines += [f"{k}: {v}" for k, v in raw.headers.items() if k.lower().startswith("sec-websocket-")]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _parse_head(head: bytes) -> tuple[int, list[tuple[str, str]]]:
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise RelayError(f"the app answered the upgrade with {status_line[:80]!r}")
    headers = []
    for line in header_lines:
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name.strip(), value.strip()))
    return int(parts[1]), headers


async def relay_websocket(raw: web.Request, port: int, path: str,
                          headers: Iterable[tuple[str, str]]) -> web.StreamResponse:
    """Proxy the WebSocket upgrade ``raw`` to the app on ``port`` at ``path`` and relay the
    connection's bytes until either side closes. RelayError if the app does not accept it."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    to_client, to_app = _Side(loop), _Side(loop)
    transport, app = await loop.create_connection(lambda: _AppSide(loop, to_client, done), "127.0.0.1", port)
    try:
        transport.write(_request(raw, port, path, headers))
        async with asyncio.timeout(HANDSHAKE_TIMEOUT):
            head, rest = await app.head
        status, app_headers = _parse_head(head)
        if status != 101:
            raise RelayError(f"the app refused the WebSocket upgrade ({status})")
        response = web.StreamResponse(status=101, reason="Switching Protocols")
        for name, value in app_headers:
            if name.lower() in KEEP_FROM_APP:
                response.headers.add(name, value)
        await response.prepare(raw)
        client = raw.transport
        if client is None:  # the client went away meanwhile
            return response
        raw.protocol.keep_alive(False)
        to_client.source, to_client.sink = transport, client
        to_app.source, to_app.sink = client, transport
        if rest:
            to_client.write(rest)
        raw.protocol.set_parser(_ClientSide(to_app, done))  # bytes the client sent meanwhile are fed now
        await done
        return response
    finally:
        with contextlib.suppress(Exception):
            transport.close()
