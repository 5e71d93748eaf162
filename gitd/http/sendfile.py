"""Local files sent with sendfile(2): the kernel copies them from the page cache to the socket.

Used by LFS downloads and the Hub's /resolve for objects on local storage. The file is
opened on the event loop: on a local disk that costs less than the two thread hops
aiohttp's FileResponse makes per request (open and stat, then close), and small objects
are mostly per-request cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import BinaryIO, cast

from aiohttp import web

# Bytes per read where sendfile(2) is not available (TLS) and the file is copied instead.
COPY_BLOCK = 256 * 1024
# Most bytes one sendfile(2) call moves where the daemon drives it (uvloop); the socket
# buffer takes less than this anyway, so it only bounds a call on a very fast reader.
SENDFILE_BLOCK = 16 * 1024 * 1024


def open_local(path: Path) -> tuple[BinaryIO, int] | None:
    """The open file and its size; None if it is not there (or not readable)."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the caller
    except OSError:
        return None
    try:
        return f, os.fstat(f.fileno()).st_size
    except OSError:
        f.close()
        return None


async def send_open_file(request: web.BaseRequest, response: web.StreamResponse, f: BinaryIO,
                         start: int, end: int) -> int:
    """Send the headers of ``response`` and then bytes ``start`` to ``end`` of ``f`` (nothing
    for HEAD). Returns the body bytes sent."""
    await response.prepare(request)  # a StreamResponse sends its headers right away
    if request.method == "HEAD" or end <= start:
        await response.write_eof()
        return 0
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("the client went away")
    loop = asyncio.get_running_loop()
    try:
        await _sendfile(loop, transport, f, start, end - start)
    except NotImplementedError:  # e.g. TLS: copy through user space instead
        f.seek(start)
        remaining = end - start
        while remaining > 0:
            block = await loop.run_in_executor(None, f.read, min(COPY_BLOCK, remaining))
            if not block:
                break
            await response.write(block)
            remaining -= len(block)
    await response.write_eof()
    return end - start


async def _sendfile(loop: asyncio.AbstractEventLoop, transport: asyncio.BaseTransport, f: BinaryIO,
                    offset: int, count: int) -> None:
    """sendfile(2) of ``count`` bytes of ``f`` from ``offset`` to the transport's socket.

    The stdlib loop does it itself (``loop.sendfile``). uvloop has no ``loop.sendfile``, and
    a transport's own descriptor cannot be watched beside it, so here the kernel is driven
    directly: once the transport has flushed what it holds (the headers), sendfile(2) goes
    to a duplicate of the socket's descriptor, waiting for it to be writable whenever the
    socket buffer is full. Nothing else writes to the connection meanwhile: the response
    is ours until it ends. NotImplementedError where there is no plain socket (TLS)."""
    if isinstance(loop, asyncio.BaseEventLoop):
        await loop.sendfile(transport, f, offset, count, fallback=False)
        return
    sock = transport.get_extra_info("socket")
    if sock is None or transport.get_extra_info("sslcontext") is not None:
        raise NotImplementedError("no plain socket to sendfile(2) to")
    writer = cast(asyncio.WriteTransport, transport)  # uvloop's transports are not asyncio's classes
    while writer.get_write_buffer_size():  # the headers, rarely still queued
        if transport.is_closing():
            raise ConnectionResetError("the client went away")
        await asyncio.sleep(0.001)
    fd = os.dup(sock.fileno())
    try:
        while count > 0:
            try:
                sent = os.sendfile(fd, f.fileno(), offset, min(count, SENDFILE_BLOCK))
            except BlockingIOError:
                await _writable(loop, fd)
                continue
            if sent == 0:  # the file is shorter than it was: the promised length cannot be met
                raise OSError(f"sendfile: the file ended {count} bytes early")
            offset += sent
            count -= sent
    finally:
        os.close(fd)


async def _writable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    ready = loop.create_future()
    loop.add_writer(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        loop.remove_writer(fd)


async def send_local(request: web.BaseRequest, response: web.StreamResponse, path: Path,
                     start: int, end: int) -> bool:
    """``send_open_file`` for a path; False (nothing sent) if the file cannot be opened."""
    opened = open_local(path)
    if opened is None:
        return False
    f, _ = opened
    with contextlib.closing(f):
        await send_open_file(request, response, f, start, end)
    return True
