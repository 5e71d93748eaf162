"""Coalesce an SSH connection's socket writes within one event-loop iteration.

asyncssh writes every SSH packet to the socket on its own, and puts an SSH_MSG_IGNORE
packet before each data packet: a clone answered in 32 KiB packets costs two ``send``
system calls per packet, and on loopback each one also runs the receiver's TCP work.
``CorkedTransport`` stands in for the connection's transport, collects what is written
while a callback runs and sends it in one call at the next loop iteration (``call_soon``
keeps order with asyncssh's own deferred ``abort``). Nothing waits longer than that.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


class CorkedTransport:
    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._scheduled = False

    def write(self, data: bytes) -> None:
        self._pending.append(data)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        if not self._transport.is_closing():
            with contextlib.suppress(ConnectionError):
                self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self.flush()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def cork(conn: Any) -> None:
    """Put a CorkedTransport in front of an asyncssh connection's transport, if it has one."""
    transport = getattr(conn, "_transport", None)
    if isinstance(transport, asyncio.Transport):
        conn._transport = CorkedTransport(transport, asyncio.get_running_loop())
