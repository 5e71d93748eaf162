"""Per-packet costs of asyncssh on bulk output: coalesced writes, no padding packets.

asyncssh writes every SSH packet to the socket on its own, and puts an SSH_MSG_IGNORE
packet before each data packet: a clone answered in 32 KiB packets costs two ``send``
system calls per packet, and on loopback each one also runs the receiver's TCP work.
``CorkedTransport`` stands in for the connection's transport, collects what is written
while a callback runs and sends it in one call at the next loop iteration (``call_soon``
keeps order with asyncssh's own deferred ``abort``). Nothing waits longer than that.
The transport is duck-typed: uvloop's is not an ``asyncio.Transport``.

``skip_ignore_packets`` drops those empty SSH_MSG_IGNORE packets. They are a defence
for CBC-mode ciphers (RFC 4251 9.3.1: an attacker must not predict the next packet's
first block); with CTR and GCM, the ciphers gitd offers, they only double the packets
to encrypt, MAC and send. A connection that negotiated a CBC cipher keeps them.

Both reach into asyncssh's connection: its ``_transport`` (written through by
``_send``) and its ``send_packet`` method (which sends the ignore packet as
``send_packet(MSG_IGNORE, String(b''))``). pyproject.toml pins asyncssh to the releases
read for this (2.17 to 2.24: the same code in each). Where a member is missing, each
function logs once and leaves the connection as asyncssh made it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from asyncssh.constants import MSG_IGNORE
from asyncssh.packet import String

log = logging.getLogger("gitd.ssh")

_EMPTY_IGNORE = (String(b""),)
_TRANSPORT_METHODS = ("write", "close", "abort", "is_closing")
_warned: set[str] = set()


def _warn_once(what: str) -> None:
    if what not in _warned:
        _warned.add(what)
        log.warning("ssh: asyncssh's connection has no %s; sending its packets unchanged (gitd was written "
                    "against asyncssh 2.17 to 2.24)", what)


class CorkedTransport:
    def __init__(self, transport: Any, loop: asyncio.AbstractEventLoop):
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


def cork(conn: Any) -> bool:
    """Put a CorkedTransport in front of an asyncssh connection's transport; False (and
    the connection unchanged) where it has none that looks like a stream transport."""
    transport = getattr(conn, "_transport", None)
    if isinstance(transport, CorkedTransport):
        return True
    if transport is None or not all(callable(getattr(transport, m, None)) for m in _TRANSPORT_METHODS):
        _warn_once("stream transport in _transport")
        return False
    conn._transport = CorkedTransport(transport, asyncio.get_running_loop())
    return True


def skip_ignore_packets(conn: Any) -> bool:
    """Drop the empty SSH_MSG_IGNORE asyncssh sends before every packet, unless the
    connection's outgoing cipher is a CBC mode (checked per packet: ciphers change on rekey).
    False (and the connection unchanged) where it has no ``send_packet``."""
    send_packet = getattr(conn, "send_packet", None)
    if not callable(send_packet) or not callable(getattr(conn, "get_extra_info", None)):
        _warn_once("send_packet")
        return False

    def send(pkttype: int, *args: bytes, **kwargs: Any) -> None:
        if pkttype == MSG_IGNORE and args == _EMPTY_IGNORE and not kwargs \
                and "-cbc" not in str(conn.get_extra_info("send_cipher", "-cbc")):
            return
        send_packet(pkttype, *args, **kwargs)

    conn.send_packet = send
    return True
