"""Streaming helpers: hash-and-count verification, chunk grouping, and blocking readers
driven from asyncio with one chunk read ahead.

Nothing here holds more than a bounded number of chunks in memory.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Callable
from concurrent.futures import Executor

from gitd.lfs.errors import ObjectMismatch
from gitd.lfs.pointer import OID_RE
from gitd.lfs.storage.base import ObjectReader

CHUNK = 1024 * 1024


def is_oid(value: object) -> bool:
    """True for a lowercase 64-hex SHA-256 object id."""
    return isinstance(value, str) and OID_RE.match(value) is not None


class Verifier:
    """SHA-256 and byte count of an object's bytes as they stream past.

    ``update`` raises ObjectMismatch as soon as more than ``size`` bytes arrive, so a
    client cannot make the server read an unbounded body; ``check`` raises it when the
    total or the digest is wrong.
    """

    def __init__(self, oid: str, size: int):
        self.oid = oid
        self.size = size
        self.count = 0
        self._hash = hashlib.sha256()

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self.count += len(data)
        if self.count > self.size:
            raise ObjectMismatch(f"object {self.oid} is {self.size} bytes, but more bytes were sent")
        self._hash.update(data)

    def update_all(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self.update(chunk)

    @property
    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def check(self) -> None:
        if self.count != self.size:
            raise ObjectMismatch(
                f"object {self.oid} is {self.size} bytes, but {self.count} bytes were sent"
            )
        digest = self.hexdigest
        if digest != self.oid:
            raise ObjectMismatch(f"the bytes sent do not match object {self.oid} (their sha256 is {digest})")


async def grouped(chunks: AsyncIterable[bytes], at_least: int) -> AsyncIterator[list[bytes]]:
    """Group incoming chunks into lists of at least ``at_least`` bytes (the last may be
    shorter), without copying them."""
    group: list[bytes] = []
    total = 0
    async for chunk in chunks:
        if not chunk:
            continue
        group.append(chunk)
        total += len(chunk)
        if total >= at_least:
            yield group
            group, total = [], 0
    if group:
        yield group


class ThreadReader(ObjectReader):
    """An async iterator over a blocking ``read(n)``, run in ``executor``.

    One read is always in flight ahead of the consumer, so the disk or the network
    keeps working while the previous chunk is sent on. ``remaining`` bounds the bytes
    read (None: until ``read`` returns b""). ``aclose`` (always call it) waits for the
    read in flight and runs ``close`` in the executor.
    """

    def __init__(self, read: Callable[[int], bytes], close: Callable[[], None], *, executor: Executor,
                 remaining: int | None = None, chunk_size: int = CHUNK):
        self._read = read
        self._close = close
        self._executor = executor
        self._remaining = remaining
        self._chunk = chunk_size
        self._next: asyncio.Future[bytes] | None = None
        self._closed = False

    def _start(self) -> asyncio.Future[bytes] | None:
        want = self._chunk if self._remaining is None else min(self._chunk, self._remaining)
        if want <= 0:
            return None
        return asyncio.get_running_loop().run_in_executor(self._executor, self._read, want)

    def __aiter__(self) -> ThreadReader:
        return self

    async def __anext__(self) -> bytes:
        if self._closed:
            raise StopAsyncIteration
        if self._next is None:
            self._next = self._start()
            if self._next is None:
                await self.aclose()
                raise StopAsyncIteration
        try:
            data = await self._next
        except BaseException:
            self._next = None
            await self.aclose()
            raise
        if self._remaining is not None:
            data = data[: self._remaining]
            self._remaining -= len(data)
        if not data:
            self._next = None
            await self.aclose()
            raise StopAsyncIteration
        self._next = self._start()
        return data

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        pending, self._next = self._next, None
        if pending is not None:
            try:
                await asyncio.shield(pending)
            except Exception:
                pass
        await asyncio.shield(asyncio.get_running_loop().run_in_executor(self._executor, self._close))
