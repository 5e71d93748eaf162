"""The relay lane (plugin API 1.6): plain HTTP requests to a plugin's relayed route, such as
the spaces plugin's ``/spaces/NS/NAME/app/...``, answered on the connection's own
callbacks instead of through aiohttp's request machinery.

Every HTTP connection starts here. The lane reads each request's head and takes the
request when it can answer exactly as the route's handler would by relaying it:

* the path is a relayed route's (``/{type prefix/}NS/NAME/SEGMENT/...``), without dot
  segments, on a host no ``HostRoute`` claims;
* no ``Upgrade``, ``Expect`` or ``Transfer-Encoding``; a body, if any, of a stated length
  up to ``MAX_BODY`` (read whole before it is sent on);
* the daemon's checks pass as for the handler: the caller's credentials, the route's
  access level on the repository, the rate limits;
* the plugin's ``relay(repo)`` names a port (an app that is up).

The request then goes to 127.0.0.1:PORT with the caller's credentials and the hop-by-hop
headers left out and ``X-Forwarded-For/Proto/Host/Prefix`` added, over a connection kept
from an earlier request where the app allows it (at most ``IDLE_MAX`` idle per port, used
again within ``IDLE_FOR`` seconds; a kept connection found closed before any byte of the
answer came back is tried once more on a fresh one when the method is idempotent). The
answer is parsed by llhttp (``httptools``) and streamed back as it comes, with
``X-Request-Id`` added and its framing kept (chunks re-framed; an answer that ends when the
app closes is sent chunked to an HTTP/1.1 client); the app's reading waits while the
client's connection is full. An app that cannot be reached, or whose answer is not HTTP,
is a 502 while nothing was sent; a cut answer drops the client's connection.

Anything else is handed, unread, to aiohttp with the rest of the connection, where the
routes run as always (the handler then serves a waking app, a WebSocket, a large upload, a
401 or a 404). The header and body time limits are the listener's (``server.header_timeout``,
``server.body_timeout``); the same request metrics are counted, and
``gitd_http_relayed_total`` counts what the lane answered.

Why: aiohttp's request and response objects, its dispatcher and the daemon's route layers
cost a proxied request about three times the CPU of relaying it (bench/spaces.py), and on
a busy host a proxy's CPU is its latency.
"""

from __future__ import annotations

import asyncio
import http
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httptools

from gitd.access.auth import Authenticator
from gitd.access.rules import Access, AccessLevel
from gitd.errors import GitdError
from gitd.http.app import REQUEST_ID
from gitd.http.hosts import HostRoutes
from gitd.limits.rates import RateLimits
from gitd.metrics import Metrics
from gitd.names import TYPE_PREFIX, is_valid_name
from gitd.plugins.contrib import ANY_METHOD, ROUTE_METHODS, RelayTarget, RepoRoute
from gitd.repos import RepoService

log = logging.getLogger("gitd.http.relay")

MAX_HEAD = 16 << 10  # a longer request head is aiohttp's to refuse
MAX_BODY = 64 << 10  # a larger body (or one of unknown length) is the handler's to stream
MAX_ANSWER_HEAD = 64 << 10  # the app's status line and headers
CONNECT_TIMEOUT = 10.0
IDLE_FOR = 2.0  # seconds an idle connection to an app may be used again (uvicorn drops them after 5)
IDLE_MAX = 32  # idle connections kept per app
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})
LEVELS = {"read": AccessLevel.READ, "write": AccessLevel.WRITE, "admin": AccessLevel.ADMIN}
# Not passed on to the app: hop-by-hop headers, the caller's credentials, the framing (the
# lane writes its own), and any X-Forwarded-* the caller sent (the lane writes the true ones).
REQUEST_DROP = frozenset({b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
                          b"trailer", b"transfer-encoding", b"upgrade", b"authorization", b"proxy-connection",
                          b"content-length"})
ANSWER_DROP = frozenset({b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
                         b"trailer", b"transfer-encoding", b"upgrade", b"proxy-connection"})
REFUSE = frozenset({b"upgrade", b"expect", b"transfer-encoding"})
_DOT_SEGMENT = re.compile(rb"/\.\.?(?:/|$)|%2[eE]")
_NAME = rb"([A-Za-z0-9][A-Za-z0-9._-]{0,95})"
REASONS = {s.value: s.phrase.encode() for s in http.HTTPStatus}

SNIFF, BODY, RELAY, HANDED, CLOSED = range(5)


@dataclass(frozen=True)
class _Relayed:
    """A relayed route: its pattern for one repository type."""

    plugin: str
    route: RepoRoute
    repo_type: str
    pattern: re.Pattern[bytes]
    segment: str
    methods: frozenset[bytes]
    level: AccessLevel

    @property
    def name(self) -> str:  # the route's name in the metrics (as gitd.http.plugin_routes names it)
        return f"plugin:{self.plugin}:{self.route.method} {self.route.path}"


class RelayLane:
    """What the lane serves, the daemon's checks it applies, and its connections."""

    def __init__(self, routes: list[tuple[str, RepoRoute]], *, auth: Authenticator, repos: RepoService,
                 access: Access, rates: RateLimits, metrics: Metrics, hosts: HostRoutes | None = None,
                 header_timeout: float = 30.0, body_timeout: float = 60.0):
        self.routes: list[_Relayed] = []
        for plugin, route in routes:
            segment = route.path.split("/")[1]
            methods = ROUTE_METHODS if route.method == ANY_METHOD else (route.method.upper(),)
            for repo_type in route.types:
                prefix = TYPE_PREFIX[repo_type]
                pattern = re.compile(b"/" + (prefix.encode() + b"/" if prefix else b"") + _NAME + b"/" + _NAME
                                     + b"/" + re.escape(segment.encode()) + rb"(/[^?]*)(\?.*)?", re.DOTALL)
                self.routes.append(_Relayed(plugin, route, repo_type, pattern, segment,
                                            frozenset(m.encode() for m in methods), LEVELS[route.access]))
        self.starts = tuple({b"/" + TYPE_PREFIX[r.repo_type].encode() for r in self.routes})
        self.auth = auth
        self.repos = repos
        self.access = access
        self.rates = rates
        self.metrics = metrics
        self.hosts = hosts if hosts is not None and hosts.routes else None
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.pool = _Pool()
        self.connections: set[LaneConnection] = set()
        self.stopping = False

    def connection(self, factory: Callable[[], asyncio.Protocol]) -> LaneConnection:
        return LaneConnection(self, factory)

    # -- deciding -------------------------------------------------------------------------------
    def take(self, head: bytes, conn: LaneConnection) -> _Request | None:
        """The request ``head`` holds if the lane answers it, else None (aiohttp's)."""
        if self.stopping:
            return None
        space = head.find(b" ")
        if space < 0 or not head.startswith(self.starts, space + 1):
            return None
        parsed = _Head()
        parser = httptools.HttpRequestParser(parsed)
        try:
            parser.feed_data(head)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):  # also CONNECT, an Upgrade
            return None
        if not parsed.complete:
            return None
        method = parser.get_method()
        authorization = host = given_id = None
        length = 0
        for name, value in parsed.headers:
            low = name.lower()
            if low in REFUSE:
                return None
            if low == b"authorization":
                authorization = value.decode("latin-1")
            elif low == b"host":
                host = value.decode("latin-1")
            elif low == b"content-length":
                if length or not value.isdigit():
                    return None
                length = int(value)
            elif low in (b"x-request-id", b"x-amzn-trace-id") and given_id is None:
                given_id = value.decode("latin-1")
        if length > MAX_BODY or _DOT_SEGMENT.search(parsed.url.partition(b"?")[0]):
            return None
        if self.hosts is not None and host and self.hosts.match(_host_name(host)) is not None:
            return None
        for relayed in self.routes:
            m = relayed.pattern.fullmatch(parsed.url)
            if m is not None and method in relayed.methods:
                break
        else:
            return None
        ns, name = m.group(1).decode(), m.group(2).decode()
        if not (is_valid_name(ns) and is_valid_name(name)):
            return None
        repo = self.repos.find(relayed.repo_type, ns, name)
        if repo is None:
            return None
        try:
            who = self.auth.principal_from_header(authorization)
        except GitdError:
            return None
        if self.access.level(who, repo) < relayed.level:
            return None
        if self.rates.enabled and self.rates.check(conn.address, authorization) is not None:
            return None  # the route answers the 429
        info = self.repos.info(repo)
        try:
            target = relayed.route.relay(info)  # type: ignore[misc]
        except Exception:
            log.exception("plugin %s: relay for %s failed", relayed.plugin, info.full_name)
            return None
        if not isinstance(target, RelayTarget):
            if target is not None:
                log.error("plugin %s: relay answered %r, not a RelayTarget; ignored", relayed.plugin, target)
            return None
        prefix = "/" + "/".join(filter(None, (TYPE_PREFIX[relayed.repo_type], info.full_name, relayed.segment)))
        lines = [b"%s %s%s HTTP/1.1\r\n" % (method, m.group(3), m.group(4) or b"")]
        lines += [b"%s: %s\r\n" % (n, v) for n, v in parsed.headers
                  if (low := n.lower()) not in REQUEST_DROP and not low.startswith(b"x-forwarded-")]
        if host is None:  # (HTTP/1.0 allows that; the app gets HTTP/1.1, which does not)
            lines.append(f"Host: {conn.local}\r\n".encode("latin-1"))
        lines.append((f"X-Forwarded-For: {conn.address or ''}\r\nX-Forwarded-Proto: {conn.scheme}\r\n"
                      f"X-Forwarded-Host: {host or conn.local}\r\nX-Forwarded-Prefix: {prefix}\r\n").encode("latin-1"))
        if length or method in (b"POST", b"PUT", b"PATCH"):
            lines.append(b"Content-Length: %d\r\n" % length)
        lines.append(b"\r\n")
        request_id = given_id if given_id is not None and REQUEST_ID.match(given_id) else uuid.uuid4().hex
        return _Request(method, b"".join(lines), length, target, relayed.name, parser.should_keep_alive(),
                        parser.get_http_version() != "1.0", request_id.encode())

    # -- stopping -------------------------------------------------------------------------------
    def begin_stop(self, grace: float) -> None:
        """The daemon is stopping: idle connections close now, busy ones after their answer,
        and whatever is left once ``grace`` is over."""
        self.stopping = True
        for conn in list(self.connections):
            conn.stop()
        asyncio.get_running_loop().call_later(grace, self.close_all)

    def close_all(self) -> None:
        for conn in list(self.connections):
            conn.abort()
        self.pool.close()


class _Head:
    """llhttp's callbacks for a request head."""

    __slots__ = ("complete", "headers", "url")

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.complete = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.complete = True


@dataclass(slots=True)
class _Request:
    method: bytes
    head: bytes  # as the app gets it
    length: int
    target: RelayTarget
    route: str
    keep_alive: bool  # the client keeps its connection after this answer
    http11: bool
    request_id: bytes
    body: bytes = b""


def _host_name(host: str) -> str:
    """The name in a Host header (its port left out)."""
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.partition(":")[0]


class LaneConnection(asyncio.Protocol):
    """A client connection: requests the lane takes are relayed here, one at a time; the
    first it does not take hands the connection (with that request, unread) to aiohttp."""

    def __init__(self, lane: RelayLane, factory: Callable[[], asyncio.Protocol]):
        self.lane = lane
        self.factory = factory
        self.inner: asyncio.Protocol | None = None
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.state = SNIFF
        self.request: _Request | None = None
        self.upstream: _Upstream | None = None
        self.started = 0.0
        self.sent = False  # bytes of the current answer were written to the client
        self.status = 0
        self.timer: asyncio.TimerHandle | None = None
        self.reading_paused = False
        self.writing_paused = False
        self.eof = False
        self.stopping = False
        self.address: str | None = None
        self.scheme = "http"
        self.local = "127.0.0.1"

    # -- the transport's callbacks --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.address = peer[0] if isinstance(peer, tuple) and peer else None
        if transport.get_extra_info("sslcontext") is not None:
            self.scheme = "https"
        sock = transport.get_extra_info("sockname")
        if isinstance(sock, tuple) and sock:
            self.local = f"[{sock[0]}]:{sock[1]}" if ":" in sock[0] else f"{sock[0]}:{sock[1]}"
        self.lane.connections.add(self)
        self._arm(self.lane.header_timeout)

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)
            return
        self.buf += data
        if self.state == SNIFF:
            self._next()
        elif self.state == BODY:
            self._arm(self.lane.body_timeout)
            self._body()
        elif len(self.buf) > MAX_HEAD + MAX_BODY and self.transport is not None and not self.reading_paused:
            self.reading_paused = True  # a client sending ahead while its answer is on the way
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        if self.inner is not None:
            return self.inner.eof_received()
        self.eof = True
        if self.state == RELAY:
            return True  # the answer still goes back; the connection closes after it
        if self.state == SNIFF and self.buf:
            self._hand_off()  # a last request without its end: aiohttp answers it
            return self.inner.eof_received() if self.inner is not None else None
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        inner, self.inner = self.inner, None
        if inner is not None:
            inner.connection_lost(exc)
            return
        self.lane.connections.discard(self)
        self._disarm()
        if self.state == RELAY and self.request is not None:
            self._end(499, reuse=False)  # the client left before its answer was whole
        self.state = CLOSED

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()
            return
        self.writing_paused = True
        if self.upstream is not None:
            self.upstream.pause()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()
            return
        self.writing_paused = False
        if self.upstream is not None:
            self.upstream.resume()

    # -- requests -------------------------------------------------------------------------------
    def _next(self) -> None:
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD or b"\n\n" in buf:  # too long, or lines ended by LF alone
                self._hand_off()
            return
        try:
            request = self.lane.take(bytes(buf[:end + 4]), self)
        except Exception:  # never the client's problem: the handler answers instead
            log.exception("relay lane: deciding on a request failed")
            request = None
        if request is None:
            self._hand_off()
            return
        del buf[:end + 4]
        self.request = request
        self.started = time.monotonic()
        self.sent = False
        self.status = 0
        if request.length:
            self.state = BODY
            self._arm(self.lane.body_timeout)
            self._body()
        else:
            self._send()

    def _body(self) -> None:
        request = self.request
        assert request is not None
        if len(self.buf) < request.length:
            if self.eof:
                self._close()
            return
        request.body = bytes(self.buf[:request.length])
        del self.buf[:request.length]
        self._send()

    def _send(self, *, fresh: bool = False) -> None:
        request = self.request
        assert request is not None and self.transport is not None
        self.state = RELAY
        self._disarm()
        if len(self.buf) > MAX_HEAD + MAX_BODY and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()
        port = request.target.port
        up = None if fresh else self.lane.pool.take(port)
        if up is None:
            asyncio.get_running_loop().create_task(self._connect(port, request))
            return
        up.begin(self, request, reused=True)

    async def _connect(self, port: int, request: _Request) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                _, up = await loop.create_connection(lambda: _Upstream(self.lane.pool, port), "127.0.0.1", port)
        except (OSError, TimeoutError) as exc:
            if self.request is request and self.state == RELAY:
                self.fail(f"the app is not answering ({type(exc).__name__})")
            return
        if self.request is not request or self.state != RELAY:  # the client left meanwhile
            up.close()
            return
        up.begin(self, request, reused=False)

    # -- the answer (the upstream's callbacks) --------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.transport is not None and self.state == RELAY:
            self.sent = True
            self.transport.write(data)

    def retry(self) -> None:
        """A kept connection was closed before answering: once more, on a fresh one."""
        self.upstream = None
        self._send(fresh=True)

    def fail(self, reason: str) -> None:
        """The answer cannot be had: a 502 while nothing was sent, else the connection drops."""
        if self.sent or self.transport is None:
            self._end(502, reuse=False)
            self._close()
            return
        body = b'{"error": "%s"}' % reason.replace('"', "'").encode("latin-1", "replace")
        request = self.request
        assert request is not None
        self.transport.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                             b"X-Request-Id: %s\r\n%s\r\n%s" % (
                                 len(body), request.request_id,
                                 b"" if request.keep_alive else b"Connection: close\r\n", body))
        self._end(502, reuse=False)
        self._after()

    def answered(self, status: int, *, reuse: bool, keep_client: bool) -> None:
        """The answer was passed on whole."""
        assert self.request is not None
        if not keep_client:
            self.request.keep_alive = False
        self._end(status, reuse=reuse)
        self._after()

    def _end(self, status: int, *, reuse: bool) -> None:
        request, self.request = self.request, None
        up, self.upstream = self.upstream, None
        if up is not None:
            up.release(reuse)
        if request is None:
            return
        try:
            if request.target.done is not None:
                request.target.done()
        except Exception:
            log.exception("relay: the plugin's done() failed")
        metrics = self.lane.metrics
        method = request.method.decode("latin-1")
        metrics.http_requests.inc(method=method, route=request.route, status=str(status))
        metrics.http_duration.observe(time.monotonic() - self.started, route=request.route)
        metrics.http_relayed.inc(route=request.route)
        self._last_keep = request.keep_alive

    def _after(self) -> None:
        """The exchange is over: the next request, or the connection's end."""
        if self.state != RELAY:
            return
        if not self._last_keep or self.eof or self.stopping:
            self._close()
            return
        self.state = SNIFF
        self._arm(self.lane.header_timeout)
        if self.reading_paused and self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()
        if self.buf:
            self._next()

    _last_keep = False

    # -- the connection's end, or aiohttp's -----------------------------------------------------
    def _hand_off(self) -> None:
        self._disarm()
        self.lane.connections.discard(self)
        self.state = HANDED
        transport = self.transport
        assert transport is not None
        if self.reading_paused:
            self.reading_paused = False
            transport.resume_reading()
        inner = self.factory()
        self.inner = inner
        inner.connection_made(transport)
        if self.buf:
            data, self.buf = bytes(self.buf), bytearray()
            inner.data_received(data)

    def stop(self) -> None:
        self.stopping = True
        if self.state == SNIFF and not self.buf:
            self._close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _close(self) -> None:
        self._disarm()
        if self.transport is not None:
            self.transport.close()

    def _arm(self, seconds: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(seconds, self._timed_out)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _timed_out(self) -> None:
        self.timer = None
        if self.state == BODY and self.transport is not None:
            body = b"the request body stalled; send it again\n"
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\n"
                                 b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            self._end(408, reuse=False)
        if self.state in (SNIFF, BODY):
            self._close()


class _Upstream(asyncio.Protocol):
    """A connection to an app: one request at a time, its answer parsed by llhttp and written
    on to the client as it comes."""

    def __init__(self, pool: _Pool, port: int):
        self.pool = pool
        self.port = port
        self.transport: asyncio.Transport | None = None
        self.client: LaneConnection | None = None
        self.closed = False
        self.idle_since = 0.0
        self.paused = False
        self._reset(None)

    def _reset(self, request: _Request | None) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.method = request.method if request is not None else b""
        self.http11 = request.http11 if request is not None else True
        self.received = 0
        self.status = 0  # the final answer's, once its head is here
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_size = 0
        self.chunk_out = False
        self.until_eof = False
        self.keep_client = True
        self.keep_up = False  # the app keeps the connection after this answer
        self.extra = False  # the app sent more than the answer (then the connection is not used again)
        self.complete = False
        self.reused = False
        self.out: list[bytes] = []
        self.error: str | None = None

    def begin(self, client: LaneConnection, request: _Request, *, reused: bool) -> None:
        self._reset(request)
        self.client = client
        self.reused = reused
        client.upstream = self
        if client.writing_paused:
            self.pause()
        assert self.transport is not None
        self.transport.write(request.head + request.body if request.body else request.head)

    def release(self, reuse: bool) -> None:
        self.client = None
        if reuse and not self.closed:
            self.resume()
            self.pool.give(self)
        else:
            self.close()

    def pause(self) -> None:
        if not self.paused and self.transport is not None and not self.closed:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # -- the transport's callbacks --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        client = self.client
        if client is None or self.complete:  # bytes nobody asked for: this connection is done
            self.close()
            return
        self.received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            self.error = self.error or f"the app's answer could not be read ({exc.__context__})"
        except httptools.HttpParserUpgrade:
            self.error = "the app switched protocols on a plain HTTP request"
        except httptools.HttpParserError as exc:
            self.error = f"the app's answer is not HTTP ({exc})"
        if self.out:
            client.write(b"".join(self.out))
            self.out.clear()
        if self.complete:  # (bytes after the answer, or an error in them, only cost the app its connection)
            client.answered(self.status, reuse=self._reusable() and self.error is None, keep_client=self.keep_client)
        elif self.error is not None:
            self.closed = True
            client.fail(self.error)

    def eof_received(self) -> bool:
        self._ended()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended()

    def _ended(self) -> None:
        was_closed, self.closed = self.closed, True
        client = self.client
        if client is None or self.complete:
            return
        if self.status and self.until_eof:  # an answer that ends when the app closes
            if self.chunk_out:
                client.write(b"0\r\n\r\n")
            self.complete = True
            client.answered(self.status, reuse=False, keep_client=self.keep_client)
        elif self.reused and not self.received and self.method in IDEMPOTENT and not was_closed:
            client.retry()
        else:
            client.fail("the app closed the connection before its answer was whole")

    def _reusable(self) -> bool:
        return (self.complete and not self.until_eof and not self.extra and self.method != b"HEAD"
                and self.keep_up)

    # -- llhttp's callbacks ---------------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.complete:
            self.extra = True

    def on_status(self, status: bytes) -> None:
        if self.complete:
            return
        self.reason += status
        self._count(len(status))

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.complete:
            return
        self.headers.append((name, value))
        self._count(len(name) + len(value) + 4)

    def _count(self, size: int) -> None:
        self.head_size += size
        if self.head_size > MAX_ANSWER_HEAD:
            self.error = f"the app's answer has a head over {MAX_ANSWER_HEAD} bytes"
            raise ValueError(self.error)

    def on_headers_complete(self) -> None:
        if self.complete:
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (103 Early Hints): the real one follows
            self.reason, self.headers, self.head_size = b"", [], 0
            return
        client = self.client
        assert client is not None and client.request is not None
        request = client.request
        self.status = status
        self.keep_up = self.parser.should_keep_alive()  # (llhttp forgets it once the answer is over)
        names = {name.lower() for name, _ in self.headers}
        bodiless = self.method == b"HEAD" or status in (204, 304)
        chunked_in = b"transfer-encoding" in names
        self.until_eof = not bodiless and not chunked_in and b"content-length" not in names
        self.keep_client = request.keep_alive
        if not bodiless and (chunked_in or self.until_eof):
            if self.http11:
                self.chunk_out = True
            else:
                self.keep_client = False  # an HTTP/1.0 client: the end of the answer is the connection's
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, self.reason or REASONS.get(status, b""))]
        has_id = False
        for name, value in self.headers:
            low = name.lower()
            if low in ANSWER_DROP or (self.chunk_out and low == b"content-length"):
                continue
            has_id = has_id or low == b"x-request-id"
            lines.append(b"%s: %s\r\n" % (name, value))
        if not has_id:
            lines.append(b"X-Request-Id: %s\r\n" % request.request_id)
        if self.chunk_out:
            lines.append(b"Transfer-Encoding: chunked\r\n")
        if not self.keep_client:
            lines.append(b"Connection: close\r\n")
        elif not self.http11:
            lines.append(b"Connection: keep-alive\r\n")
        lines.append(b"\r\n")
        self.out.append(b"".join(lines))
        if bodiless:
            self.complete = True  # (llhttp would wait for a HEAD answer's stated length)

    def on_body(self, body: bytes) -> None:
        if not self.status or self.complete:
            return
        self.out.append(b"%x\r\n%b\r\n" % (len(body), body) if self.chunk_out else body)

    def on_message_complete(self) -> None:
        if not self.status or self.complete:  # an interim answer's end; or a bodiless one's, already over
            return
        if self.chunk_out:
            self.out.append(b"0\r\n\r\n")
        self.complete = True


class _Pool:
    """Idle connections to apps, by port."""

    def __init__(self) -> None:
        self.idle: dict[int, list[_Upstream]] = {}

    def take(self, port: int) -> _Upstream | None:
        idle = self.idle.get(port)
        now = time.monotonic()
        while idle:
            up = idle.pop()
            if not up.closed and now - up.idle_since <= IDLE_FOR:
                return up
            up.close()
        return None

    def give(self, up: _Upstream) -> None:
        idle = self.idle.setdefault(up.port, [])
        if len(idle) >= IDLE_MAX:
            up.close()
            return
        up.idle_since = time.monotonic()
        idle.append(up)

    def close(self) -> None:
        for idle in self.idle.values():
            for up in idle:
                up.close()
        self.idle.clear()
