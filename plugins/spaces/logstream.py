"""The Hub's logs endpoints (``/api/spaces/NS/NAME/logs/build|run``): server-sent events.

On the kubernetes runtime the lines come from the API server (``stream_lines``: a blocking
reader on a thread of its own, at most ``AHEAD`` lines ahead of the client); on this host,
from the runner's log files (``stream``):

Each line of the log is one event, ``data: {"data": LINE, "timestamp": ISO}`` (what
huggingface_hub's ``fetch_space_logs`` and ``hf spaces logs`` read). The stream replays
what is kept of the log (both generations of the ``BoundedLog``, at most twice
``max_log``), then follows it while the space is live (building, for the build log;
starting, running or restarting, for the run log), across rotations, and ends when it is
not, after ``log_follow`` seconds, or when the daemon stops. A quiet stream carries an
empty ``data:`` event now and then (a keep-alive less often than huggingface_hub's 5 s
"no more logs" timeout, which ends a client that does not follow). Reads are small and
run off the event loop; nothing holds more than one 64 KiB chunk of the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime

from aiohttp import web

from gitd.plugin_api import BoundedLog

CHUNK = 64 * 1024
POLL = 0.25         # seconds between looks at a followed log
KEEPALIVE = 15.0    # seconds of quiet before an empty event
AHEAD = 256         # lines a reader thread may get ahead of its client


class LogFollower:
    """A ``BoundedLog`` read from its oldest kept byte, then as it grows. A rotation
    (the file renamed to ``NAME.1``, a new one started) is followed: the rest of the
    renamed file first. A cleared log (a new build) starts again from the new file."""

    def __init__(self, log: BoundedLog):
        self.current = log.path
        self.older = log.path.with_name(log.path.name + ".1")
        self._inode: int | None = None
        self._offset = 0
        self._older_done = False
        self._older_offset = 0

    def read(self, budget: int = 4 * CHUNK) -> Iterator[tuple[bytes, float]]:
        """Chunks (with the modification time of the file they come from) appended since the
        last call, up to about ``budget`` bytes; none when caught up."""
        if not self._older_done:  # the older generation first, from where the last call stopped
            try:
                with open(self.older, "rb") as f:
                    mtime = os.fstat(f.fileno()).st_mtime
                    f.seek(self._older_offset)
                    while budget > 0 and (chunk := f.read(min(CHUNK, budget))):
                        self._older_offset += len(chunk)
                        budget -= len(chunk)
                        yield chunk, mtime
                    if budget <= 0:
                        return
            except FileNotFoundError:
                pass
            self._older_done = True
        try:
            f = open(self.current, "rb")  # noqa: SIM115 -- closed below, after a possible switch
        except FileNotFoundError:
            return
        with f:
            st = os.fstat(f.fileno())
            if self._inode is not None and st.st_ino != self._inode:
                yield from self._rest_of_rotated(budget)
                self._offset = 0
            self._inode = st.st_ino
            if st.st_size < self._offset:  # truncated in place: start over
                self._offset = 0
            f.seek(self._offset)
            while budget > 0 and (chunk := f.read(min(CHUNK, budget))):
                self._offset += len(chunk)
                budget -= len(chunk)
                yield chunk, st.st_mtime

    def _rest_of_rotated(self, budget: int) -> Iterator[tuple[bytes, float]]:
        try:
            with open(self.older, "rb") as f:
                st = os.fstat(f.fileno())
                if st.st_ino != self._inode:
                    return  # cleared, not rotated (or rotated twice): what was lost is lost
                f.seek(self._offset)
                while budget > 0 and (chunk := f.read(CHUNK)):
                    budget -= len(chunk)
                    yield chunk, st.st_mtime
        except FileNotFoundError:
            return


class Lines:
    """Bytes into whole lines (a line longer than a chunk is cut into chunk-sized pieces)."""

    def __init__(self) -> None:
        self.rest = b""

    def feed(self, data: bytes) -> list[bytes]:
        self.rest += data
        *lines, self.rest = self.rest.split(b"\n")
        out = [line + b"\n" for line in lines]
        while len(self.rest) >= CHUNK:
            out.append(self.rest[:CHUNK])
            self.rest = self.rest[CHUNK:]
        return out

    def flush(self) -> list[bytes]:
        out, self.rest = ([self.rest] if self.rest else []), b""
        return out


def timestamp(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def event(line: bytes, when: float | str) -> bytes:
    stamp = when if isinstance(when, str) else timestamp(when)
    body = json.dumps({"data": line.decode("utf-8", "replace"), "timestamp": stamp})
    return b"data: " + body.encode() + b"\n\n"


def _events_response() -> web.StreamResponse:
    return web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                       "X-Accel-Buffering": "no"})


async def stream_lines(raw: web.Request, lines: Iterator[tuple[bytes, str]], stop: Callable[[], None], *,
                       follow_for: float, closing: Callable[[], bool], log: logging.Logger) -> web.StreamResponse:
    """Answer ``raw`` with the (line, timestamp) pairs of the blocking iterator ``lines`` as
    server-sent events until it ends, for at most ``follow_for`` seconds, or until the daemon
    stops. ``lines`` runs on a thread of its own; ``stop`` (called from the event loop when the
    answer ends, whyever) must make it return. Why ``lines`` failed, if it did, goes to ``log``
    (the client sees the stream end)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    room, ended, done = threading.Semaphore(AHEAD), threading.Event(), object()

    def put(item: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def pump() -> None:
        try:
            for item in lines:
                while not room.acquire(timeout=1.0):
                    if ended.is_set():
                        return
                if ended.is_set():
                    return
                put(item)
        except Exception as exc:  # the API server went away mid-stream, say
            put(exc)
        finally:
            put(done)

    resp = _events_response()
    await resp.prepare(raw)
    deadline = time.monotonic() + follow_for
    quiet_since = time.monotonic()
    reader = threading.Thread(target=pump, name="space-log", daemon=True)
    reader.start()
    try:
        while not closing() and time.monotonic() < deadline:
            try:
                item = await asyncio.wait_for(queue.get(), timeout=min(1.0, max(deadline - time.monotonic(), 0.0)))
            except TimeoutError:
                if time.monotonic() - quiet_since > KEEPALIVE:
                    await resp.write(b"data: \n\n")
                    quiet_since = time.monotonic()
                continue
            if isinstance(item, Exception):
                log.warning("a logs stream ended early: %s", item)
                break
            if item is done:
                break
            room.release()
            line, stamp = item  # type: ignore[misc]
            await resp.write(event(line, stamp or time.time()))
            quiet_since = time.monotonic()
        await resp.write_eof()
    except ConnectionResetError:  # the client went away
        pass
    finally:
        ended.set()
        stop()
    return resp


async def stream(raw: web.Request, log: BoundedLog, live: Callable[[], Awaitable[bool]], *,
                 follow_for: float, closing: Callable[[], bool]) -> web.StreamResponse:
    """Answer ``raw`` with the log at ``path`` as server-sent events, following it while
    ``live()`` says so, for at most ``follow_for`` seconds."""
    follower, lines = LogFollower(log), Lines()
    resp = _events_response()
    await resp.prepare(raw)
    deadline = time.monotonic() + follow_for
    quiet_since = time.monotonic()
    held = False  # a partial line waited one look already
    try:
        while True:
            chunks = await asyncio.to_thread(lambda: list(follower.read()))
            for data, when in chunks:
                for line in lines.feed(data):
                    await resp.write(event(line, when))
            if chunks:
                quiet_since, held = time.monotonic(), False
                continue
            if lines.rest and held:  # no newline came: send what there is
                for line in lines.flush():
                    await resp.write(event(line, time.time()))
            held = bool(lines.rest)
            if closing() or time.monotonic() > deadline or not await live():
                for data, when in await asyncio.to_thread(lambda: list(follower.read())):
                    for line in lines.feed(data):
                        await resp.write(event(line, when))
                for line in lines.flush():
                    await resp.write(event(line, time.time()))
                break
            if time.monotonic() - quiet_since > KEEPALIVE:
                await resp.write(b"data: \n\n")
                quiet_since = time.monotonic()
            await asyncio.sleep(POLL)
        await resp.write_eof()
    except ConnectionResetError:  # the client went away
        pass
    return resp
