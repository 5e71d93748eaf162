"""Byte streams over one SSH session channel, with flow control both ways.

Incoming data lands in an ``asyncio.StreamReader``; when more than ``limit`` bytes wait
unread, the channel stops reading, so asyncssh stops opening the SSH window and the
client has to wait: a slow git process never makes the daemon buffer a whole pack.
Outgoing data is written to the channel; ``write`` waits while asyncssh's send buffer
is above its high-water mark. It goes out in whole SSH packets: asyncssh sends every
write as its own packets, so a 42 KiB read from git would otherwise cost a full and a
small packet (each with its own encryption, MAC and system call). A partial packet
waits up to ``HOLD`` seconds for more data, and ``drain`` sends it at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncssh

READ_LIMIT = 1024 * 1024
WRITE_HIGH_WATER = 1024 * 1024
WRITE_LOW_WATER = 256 * 1024
# OpenSSH clients take at most 32 KiB per packet; writes go out in multiples of it.
PACKET = 32 * 1024
HOLD = 0.002


class ChannelClosed(Exception):
    """The client closed the connection before the command finished."""


class _ReadControl:
    """The 'transport' an asyncio.StreamReader pauses and resumes: the SSH channel."""

    def __init__(self, chan: asyncssh.SSHServerChannel):
        self._chan = chan

    def pause_reading(self) -> None:
        self._chan.pause_reading()

    def resume_reading(self) -> None:
        self._chan.resume_reading()


class ChannelIO:
    """stdin, stdout and stderr of one SSH session, as a command sees them."""

    def __init__(self, chan: asyncssh.SSHServerChannel, *, read_limit: int = READ_LIMIT):
        self._chan = chan
        self.reader = asyncio.StreamReader(limit=read_limit)
        self.reader.set_transport(_ReadControl(chan))  # type: ignore[arg-type]
        self._writable = asyncio.Event()
        self._writable.set()
        self._closed = False
        self._pending = bytearray()  # the tail of a packet, waiting for more data
        self._hold: asyncio.TimerHandle | None = None
        chan.set_write_buffer_limits(high=WRITE_HIGH_WATER, low=WRITE_LOW_WATER)

    # -- called by the session ---------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        self.reader.feed_data(data)

    def feed_eof(self) -> None:
        self.reader.feed_eof()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def lost(self) -> None:
        """The connection is gone: wake every waiter with ChannelClosed."""
        self._closed = True
        if self._hold is not None:
            self._hold.cancel()
            self._hold = None
        self.reader.set_exception(ChannelClosed("the client closed the connection"))
        self._writable.set()

    # -- used by commands ---------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    async def chunks(self, size: int = 256 * 1024) -> AsyncIterator[bytes]:
        """Everything the client sends, until it sends EOF."""
        while True:
            chunk = await self.reader.read(size)
            if not chunk:
                return
            yield chunk

    async def write(self, data: bytes, *, flush: bool = False) -> None:
        """Send ``data``; with ``flush``, a trailing partial packet goes out at once too (the
        end of a request's answer, when the client waits for it)."""
        self._check_open()
        if self._pending:
            self._pending += data
            view = memoryview(self._pending)
        else:
            view = memoryview(data)
        whole = len(view) - len(view) % PACKET
        if whole:
            self._chan.write(view[:whole])  # type: ignore[arg-type]  # asyncssh copies it
        rest = bytes(view[whole:])
        view.release()
        self._pending[:] = rest
        if flush:
            if self._hold is not None:
                self._hold.cancel()
            self._send_pending()
        elif self._pending and self._hold is None:
            self._hold = asyncio.get_running_loop().call_later(HOLD, self._send_pending)
        if not self._writable.is_set():
            await self._writable.wait()
            self._check_open()

    def _send_pending(self) -> None:
        self._hold = None
        if self._pending and not self._closed and not self._chan.is_closing():
            self._chan.write(bytes(self._pending))
        self._pending.clear()

    async def write_stderr(self, data: bytes) -> None:
        self._check_open()
        self._chan.write_stderr(data)
        if not self._writable.is_set():
            await self._writable.wait()
            self._check_open()

    def write_stderr_nowait(self, data: bytes) -> None:
        """Queue a little diagnostic output without waiting for the client to take it."""
        if not self._closed and not self._chan.is_closing():
            self._chan.write_stderr(data)

    async def drain(self) -> None:
        """Wait until everything written so far has left the send buffer."""
        if self._hold is not None:
            self._hold.cancel()
        self._send_pending()
        if self._closed or self._chan.get_write_buffer_size() == 0:
            return
        self._chan.set_write_buffer_limits(high=0, low=0)
        await self._writable.wait()

    def exit(self, status: int) -> None:
        if not self._closed:
            self._chan.exit(status)

    def _check_open(self) -> None:
        if self._closed or self._chan.is_closing():
            raise ChannelClosed("the client closed the connection")
