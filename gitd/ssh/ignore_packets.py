"""No empty SSH_MSG_IGNORE before every packet asyncssh sends.

asyncssh puts an empty SSH_MSG_IGNORE packet before each packet it sends once keys are
exchanged. That is a defence for CBC-mode ciphers (RFC 4251 9.3.1: an attacker must not
predict the next packet's first block); with CTR, GCM and ChaCha20 it only doubles the
packets to pad, encrypt, MAC and write: without them a 32 KiB data packet costs 0.84
(AES-GCM), 0.78 (AES-CTR) or 0.70 (ChaCha20) of what it costs with its ignore packet
(bench/ssh_packets.py), 20 to 100 ms of a 226 MB clone's ~6,900 packets. A connection
that negotiated a CBC cipher keeps them.

This reaches into asyncssh: its connection's ``send_packet`` method sends the ignore
packet as ``send_packet(MSG_IGNORE, String(b''))``, and ``get_extra_info("send_cipher")``
names the outgoing cipher. pyproject.toml pins asyncssh to the releases read for this
(2.17 to 2.24: the same code in each). Where ``send_packet`` is missing, it logs once
and leaves the connection as asyncssh made it.
"""

from __future__ import annotations

import logging
from typing import Any

from asyncssh.constants import MSG_IGNORE
from asyncssh.packet import String

log = logging.getLogger("gitd.ssh")

_EMPTY_IGNORE = (String(b""),)
_warned = False


def skip_ignore_packets(conn: Any) -> bool:
    """Drop the empty SSH_MSG_IGNORE asyncssh sends before every packet, unless the
    connection's outgoing cipher is a CBC mode (checked per packet: ciphers change on rekey).
    False, and the connection unchanged, where it has no ``send_packet``."""
    global _warned
    send_packet = getattr(conn, "send_packet", None)
    if not callable(send_packet) or not callable(getattr(conn, "get_extra_info", None)):
        if not _warned:
            _warned = True
            log.warning("ssh: asyncssh's connection has no send_packet; its empty ignore packets are sent "
                        "(gitd was written against asyncssh 2.17 to 2.24)")
        return False

    def send(pkttype: int, *args: bytes, **kwargs: Any) -> None:
        if pkttype == MSG_IGNORE and args == _EMPTY_IGNORE and not kwargs \
                and "-cbc" not in str(conn.get_extra_info("send_cipher", "-cbc")):
            return
        send_packet(pkttype, *args, **kwargs)

    conn.send_packet = send
    return True
