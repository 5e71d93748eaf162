"""Plain HTTP proxying to a space's app: the request's head written in one piece, the app's
answer parsed by llhttp (``httptools``) and streamed back, over connections kept open
between requests where the app allows it.

Why not aiohttp's client: with an app that closes every connection (a stdlib
``http.server``, anything speaking HTTP/1.0) each request opens one, and the client's
connection machinery (a Python socket connected through happy eyeballs, then wrapped, its
options set and read back) cost more than the rest of the proxy together. Here the event
loop connects natively, the answer's bytes are parsed in C, and an answer that has fully
arrived by the time its head is parsed goes back in one write.

Keep-alive: an app server that keeps connections (uvicorn under Gradio, tornado under
Streamlit) gets its next request on the connection its last answer came by, as long as
that answer was whole, framed by a length or chunks, and the app did not say ``close``.
An idle connection is used again for at most ``IDLE_FOR`` seconds (app servers drop idle
connections after a few seconds: uvicorn after 5), at most ``IDLE_MAX`` kept per app. A
reused connection that turns out closed before any byte of the answer came back is
retried once on a fresh connection when the request can be sent again: its body, if any,
is buffered (up to ``REPLAY_MAX`` bytes) and the method is idempotent, or the connection
was closed before the request was written. A request whose body is larger or of unknown
length, and a HEAD (whose answer's length cannot be told from its head), use a connection
of their own, closed after the answer.

What reaches the app: the request's method, target and headers as the caller passes them
(hop-by-hop ones already removed), its body with its length (or chunked when the client
sent none). What comes back: the app's status, reason and headers less the hop-by-hop
ones, and its body's bytes unchanged (no decompression: lengths hold). An answer that is
not HTTP, whose head is over ``MAX_HEAD``, or that stops before its declared end is a
``RelayError``: before anything was sent to the client the caller answers 502, after it
the client's connection is dropped, as a truncated answer must be.
"""

from __future__ import annotations

import asyncio
from collections import deque

import httptools
from aiohttp import web
from multidict import CIMultiDict

from .wsrelay import RelayError

MAX_HEAD = 64 << 10  # the app's status line and headers
HIGH, LOW = 1 << 20, 256 << 10  # answer bytes held: stop reading the app / read again
CONNECT_TIMEOUT = 10.0
IDLE_FOR = 2.0  # seconds an idle connection may be used again
IDLE_MAX = 32  # idle connections kept per app
REPLAY_MAX = 64 << 10  # a body up to this size is buffered, so the request can be sent again
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
DROP = frozenset({b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer",
                  b"transfer-encoding", b"upgrade", b"proxy-connection"})


class _Answer:
    """One answer on a connection: its head as a future, its body as a queue (llhttp's
    callbacks fill them)."""

    def __init__(self, conn: _Conn, head_only: bool):
        self.conn = conn
        self.head_only = head_only  # a HEAD request: the answer ends with its head
        self.parser = httptools.HttpResponseParser(self)
        self.head: asyncio.Future[int] = conn.loop.create_future()
        self.received = 0  # bytes of this answer seen (0: the app never started answering)
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_size = 0
        self.until_eof = False  # neither a length nor chunks: the body ends when the app closes
        self.chunks: deque[bytes] = deque()
        self.held = 0
        self.complete = False
        self.keep_alive = False  # the app keeps the connection after this answer
        self.error: RelayError | None = None
        self.waiter: asyncio.Future[None] | None = None

    # -- llhttp's callbacks ---------------------------------------------------------------------
    def on_status(self, status: bytes) -> None:
        self.reason += status
        self._count(len(status))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        self._count(len(name) + len(value) + 4)

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (103 Early Hints): the real one follows
            self.reason, self.headers = b"", []
            return
        lengths = {name.lower() for name, _ in self.headers} & {b"content-length", b"transfer-encoding"}
        self.until_eof = not lengths and status not in (204, 304)
        if self.head_only:
            self.complete = True
        if not self.head.done():
            self.head.set_result(status)

    def on_body(self, body: bytes) -> None:
        if self.complete:  # a HEAD answer's stray bytes
            return
        self.chunks.append(body)
        self.held += len(body)
        if self.held > HIGH:
            self.conn.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.head.done():
            self.keep_alive = self.parser.should_keep_alive()  # (llhttp forgets it once the message is over)
            self.complete = True
            self._wake()

    def _count(self, size: int) -> None:
        self.head_size += size
        if self.head_size > MAX_HEAD and not self.head.done():
            raise RelayError(f"the app's answer has a head over {MAX_HEAD} bytes")

    # -- the connection's -----------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        self.received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:  # a callback's own error is its context
            cause = exc.__context__
            self.fail(cause if isinstance(cause, RelayError) else RelayError("the app's answer could not be read"))
        except httptools.HttpParserUpgrade:
            self.fail(RelayError("the app switched protocols on a plain HTTP request"))
        except httptools.HttpParserError as exc:
            self.fail(RelayError(f"the app's answer is not HTTP ({exc})"))

    def ended(self) -> None:
        """The app closed the connection (or it was lost)."""
        if self.complete or self.error is not None:
            return
        if self.head.done() and self.until_eof:
            self.complete = True
            self._wake()
        else:
            self.fail(RelayError("the app closed the connection before its answer was whole"))

    def fail(self, error: RelayError) -> None:
        if self.error is None and not self.complete:
            self.error = error
        if not self.head.done():
            self.head.set_exception(error)
            self.head.exception()  # retrieved here: a handler gone before awaiting it logs nothing
        self._wake()
        self.conn.close()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def reusable(self) -> bool:
        return (self.complete and self.error is None and not self.until_eof and not self.head_only
                and not self.chunks and self.keep_alive)

    async def next_chunk(self) -> bytes | None:
        """The body's next bytes; None at its end. Raises the answer's error."""
        while not self.chunks:
            if self.error is not None:
                raise self.error
            if self.complete:
                return None
            self.waiter = self.conn.loop.create_future()
            await self.waiter
            self.waiter = None
        chunk = self.chunks.popleft()
        self.held -= len(chunk)
        if self.held < LOW:
            self.conn.resume_reading()
        return chunk


class _Conn(asyncio.Protocol):
    """A connection to an app, carrying one answer at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.answer: _Answer | None = None
        self.closed = False
        self.wrote = False  # the current request's bytes were handed to the transport
        self.idle_since = 0.0
        self.reading_paused = False
        self.writing_paused = False
        self.drained: asyncio.Future[None] | None = None

    def begin(self, head_only: bool) -> _Answer:
        self.answer = _Answer(self, head_only)
        self.wrote = False
        return self.answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        answer = self.answer
        if answer is None or answer.complete:  # bytes nobody asked for: this connection is done
            self.close()
            return
        answer.feed(data)

    def eof_received(self) -> bool:
        self.closed = True
        if self.answer is not None:
            self.answer.ended()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.answer is not None:
            self.answer.ended()
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def pause_reading(self) -> None:
        if not self.reading_paused and self.transport is not None and not self.closed:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused and self.transport is not None and not self.closed:
            self.reading_paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def send(self, data: bytes) -> None:
        if self.closed or self.transport is None or self.transport.is_closing():
            raise RelayError("the app closed the connection before reading the request")
        self.transport.write(data)
        self.wrote = True
        if self.writing_paused:
            self.drained = self.loop.create_future()
            await self.drained


class HttpRelay:
    """The proxy's connections to apps, by port: idle ones kept for the next request."""

    def __init__(self) -> None:
        self._idle: dict[int, list[_Conn]] = {}

    def idle(self, port: int) -> int:
        return len(self._idle.get(port, ()))

    def _take(self, port: int, now: float) -> _Conn | None:
        idle = self._idle.get(port)
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since <= IDLE_FOR:
                return conn
            conn.close()
        return None

    def _give(self, port: int, conn: _Conn, now: float) -> None:
        idle = self._idle.setdefault(port, [])
        if conn.closed or len(idle) >= IDLE_MAX:
            conn.close()
            return
        conn.answer = None
        conn.idle_since = now
        idle.append(conn)

    async def _connect(self, port: int) -> _Conn:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(CONNECT_TIMEOUT):
            _, conn = await loop.create_connection(lambda: _Conn(loop), "127.0.0.1", port)
        return conn

    async def relay(self, request: web.Request, port: int, target: str,
                    headers: list[tuple[str, str]]) -> web.StreamResponse:
        """Send ``request`` to the app on 127.0.0.1:``port`` as ``target`` (path and query,
        already percent-encoded) with ``headers``, and answer the client with the app's answer."""
        loop = asyncio.get_running_loop()
        method = request.method
        length = request.content_length if request.body_exists else 0
        body: bytes | None = b""
        if request.body_exists:
            body = await request.content.read() if length is not None and length <= REPLAY_MAX else None
        keep = body is not None and method != "HEAD"
        head = _head(method, target, headers, length, keep)
        conn = self._take(port, loop.time()) if keep else None
        reused = conn is not None
        if conn is None:
            conn = await self._connect(port)
        try:
            try:
                answer, status = await self._ask(request, conn, head, body, length)
            except RelayError:
                # A kept connection the app closed before answering: once more on a fresh one,
                # if the app cannot have acted on the request (or acting twice is harmless).
                if not reused or conn.answer is None or conn.answer.received or (
                        conn.wrote and method not in IDEMPOTENT):
                    raise
                conn.close()
                conn = await self._connect(port)
                answer, status = await self._ask(request, conn, head, body, length)
            out = CIMultiDict[str]()
            for name, value in answer.headers:
                if name.lower() not in DROP:
                    out.add(name.decode("latin-1"), value.decode("latin-1"))
            reason = answer.reason.decode("latin-1") or None
            if answer.complete and not answer.head_only:  # the whole answer is here: one write
                data = b"".join(answer.chunks)
                answer.chunks.clear()
                out.popall("Content-Length", None)
                response = web.Response(status=status, reason=reason, body=data, headers=out)
            else:
                response = web.StreamResponse(status=status, reason=reason, headers=out)
                await response.prepare(request)
                if not answer.head_only:
                    try:
                        while (chunk := await answer.next_chunk()) is not None:
                            await response.write(chunk)
                    except RelayError:  # the client must not take a cut answer for a whole one
                        if request.transport is not None:
                            request.transport.close()
                        return response
                await response.write_eof()
            if keep and answer.reusable:
                self._give(port, conn, loop.time())
                conn = None
            return response
        finally:
            if conn is not None:
                conn.close()

    @staticmethod
    async def _ask(request: web.Request, conn: _Conn, head: bytes, body: bytes | None,
                   length: int | None) -> tuple[_Answer, int]:
        """Send the request on ``conn`` (``body``: buffered, or None: streamed from the
        client) and wait for the head of its answer: (the answer, its status)."""
        answer = conn.begin(request.method == "HEAD")
        if body is not None:
            await conn.send(head + body)
            return answer, await answer.head
        await conn.send(head)
        async for chunk in request.content.iter_any():
            await conn.send(chunk if length is not None else b"%x\r\n%b\r\n" % (len(chunk), chunk))
        if length is None:
            await conn.send(b"0\r\n\r\n")
        return answer, await answer.head


def _head(method: str, target: str, headers: list[tuple[str, str]], length: int | None, keep: bool) -> bytes:
    """The request's head: its body framed by ``length`` (None: chunked), ``Connection:
    close`` unless the connection is to be kept."""
    lines = [f"{method} {target} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in headers if name.lower() not in ("content-length", "expect")]
    if length is None:
        lines.append("Transfer-Encoding: chunked")
    elif length or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {length}")
    if not keep:
        lines.append("Connection: close")
    # aiohttp's parser refused CR and LF in the method, target and header fields
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
