"""Per-packet costs of asyncssh on bulk output: coalesced writes, no padding packets.

asyncssh writes every SSH packet to the socket on its own, and puts an SSH_MSG_IGNORE
packet before each data packet: a clone answered in 32 KiB packets costs two ``send``
system calls per packet, and on loopback each one also runs the receiver's TCP work.
``CorkedTransport`` stands in for the connection's transport, collects what is written
while a callback runs and sends it in one call at the next loop iteration (``call_soon``
keeps order with asyncssh's own deferred ``abort``). Nothing waits longer than that.

``skip_ignore_packets`` drops those empty SSH_MSG_IGNORE packets. They are a defence
for CBC-mode ciphers (RFC 4251 9.3.1: an attacker must not predict the next packet's
first block); with CTR and GCM, the ciphers gitd offers, they only double the packets
to encrypt, MAC and send. A connection that negotiated a CBC cipher keeps them.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from asyncssh.constants import MSG_IGNORE
from asyncssh.packet import String

_EMPTY_IGNORE = (String(b""),)


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


def skip_ignore_packets(conn: Any) -> None:
    """Drop the empty SSH_MSG_IGNORE asyncssh sends before every packet, unless the
    connection's outgoing cipher is a CBC mode (checked per packet: ciphers change on rekey)."""
    send_packet = conn.send_packet

    def send(pkttype: int, *args: bytes, **kwargs: Any) -> None:
        if pkttype == MSG_IGNORE and args == _EMPTY_IGNORE and not kwargs \
                and "-cbc" not in str(conn.get_extra_info("send_cipher", "-cbc")):
            return
        send_packet(pkttype, *args, **kwargs)

    conn.send_packet = send
