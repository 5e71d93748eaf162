"""The hook socket's server: just enough HTTP/1.1 for the hook programs' one request.

git's receive hooks (hooks/gitd_hook.c, hooks/gitd_hook.py) open a connection, send one
POST with a ``Content-Length`` body and ``Connection: close``, and read the answer until
the daemon closes the socket. aiohttp served that at about a quarter of a millisecond of
the daemon's time per call (request and response objects, routing, keep-alive timers);
the hooks run twice on every push, on its critical path, so this module reads the
request itself: the request line, ``Content-Length`` and the push token header. A request
it does not understand gets a 4xx answer; either way the connection is closed after one
answer. The socket is private to the daemon's user (mode 0600).

A handler takes (token or None, body) and returns (status, text); text goes back as the
plain-text body, which the hook prints for the pusher.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

log = logging.getLogger("gitd.hookapi")

Handler = Callable[[str | None, bytes], Awaitable[tuple[int, str]]]

MAX_HEAD = 16 * 1024
INTERNAL = "gitd: internal error in the push hook; push refused. The server log has the details."
REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           411: "Length Required", 413: "Content Too Large", 500: "Internal Server Error"}


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def response(status: int, text: str) -> bytes:
    if text and not text.endswith("\n"):
        text += "\n"
    body = text.encode("utf-8", "replace")
    return (f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


class HookServer:
    """Serves ``routes`` (path: handler, all POST) on a Unix socket."""

    def __init__(self, routes: Mapping[str, Handler], *, token_header: str, max_body: int = 64 * 1024 * 1024):
        self.routes = dict(routes)
        self.token_header = token_header.lower()
        self.max_body = max_body
        self.tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.AbstractServer | None = None

    async def start(self, path: str) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(lambda: _Connection(self), path)

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop accepting; give calls under way ``timeout`` seconds to answer."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=timeout)

    def parse_head(self, head: bytes) -> tuple[Handler, str | None, int]:
        """(handler, push token, body length) from the request line and headers."""
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise BadRequest(400, "gitd: malformed hook request.")
        method, path, _ = parts
        handler = self.routes.get(path)
        if handler is None:
            raise BadRequest(404, "gitd: no such hook endpoint.")
        if method != "POST":
            raise BadRequest(405, "gitd: hook endpoints take POST.")
        token: str | None = None
        length: str | None = None
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise BadRequest(400, "gitd: malformed hook request header.")
            name, value = name.strip().lower(), value.strip()
            if name == "content-length":
                if length is not None and length != value:
                    raise BadRequest(400, "gitd: conflicting Content-Length headers.")
                length = value
            elif name == "transfer-encoding":
                raise BadRequest(411, "gitd: hook requests carry a Content-Length.")
            elif name == self.token_header:
                token = value
        if length is None:
            raise BadRequest(411, "gitd: hook requests carry a Content-Length.")
        if not length.isdigit() or not length.isascii():
            raise BadRequest(400, "gitd: malformed Content-Length.")
        digits = length.lstrip("0") or "0"
        if len(digits) > 18 or int(digits) > self.max_body:  # (int() refuses more than 4300 digits)
            raise BadRequest(413, "gitd: hook request too large.")
        return handler, token, int(digits)


class _Connection(asyncio.Protocol):
    """One hook call: read the request, run its handler, answer, close."""

    def __init__(self, server: HookServer):
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.request: tuple[Handler, str | None, int] | None = None
        self.answered = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Duck-typed: uvloop's transports are not asyncio's classes.
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.answered:
            return
        self.buffer += data
        if self.request is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    self.reply(400, "gitd: hook request header too large.")
                return
            try:
                self.request = self.server.parse_head(bytes(self.buffer[:end]))
            except BadRequest as exc:
                self.reply(exc.status, exc.message)
                return
            del self.buffer[:end + 4]
        handler, token, length = self.request
        if len(self.buffer) < length:
            return
        body = bytes(self.buffer[:length])
        self.buffer.clear()
        self.answered = True  # anything after the body is ignored
        assert self.transport is not None
        self.transport.pause_reading()
        task = asyncio.get_running_loop().create_task(self._run(handler, token, body))
        self.server.tasks.add(task)
        task.add_done_callback(self.server.tasks.discard)

    def eof_received(self) -> bool:
        if not self.answered:
            self.reply(400, "gitd: incomplete hook request.")
        return True  # the client only closed its side: the answer can still go out (then we close)

    async def _run(self, handler: Handler, token: str | None, body: bytes) -> None:
        try:
            status, text = await handler(token, body)
        except Exception:
            log.exception("hook call failed")
            status, text = 500, INTERNAL
        self.send(status, text)

    def reply(self, status: int, text: str) -> None:
        self.answered = True
        self.send(status, text)

    def send(self, status: int, text: str) -> None:
        if self.transport is None or self.transport.is_closing():
            return  # the hook went away; what the handler did stands
        self.transport.write(response(status, text))
        self.transport.close()
