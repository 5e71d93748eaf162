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
from typing import BinaryIO

from aiohttp import web

# Bytes per read where sendfile(2) is not available (TLS) and the file is copied instead.
COPY_BLOCK = 256 * 1024


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
        await loop.sendfile(transport, f, start, end - start)
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
