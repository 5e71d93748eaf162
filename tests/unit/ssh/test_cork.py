"""CorkedTransport: writes of one loop iteration leave in one send, in order, and
nothing written before a close or an abort is lost."""

from __future__ import annotations

import asyncio
import socket

from gitd.ssh.cork import CorkedTransport


class _Counting(asyncio.Protocol):
    pass


async def _pair() -> tuple[asyncio.Transport, socket.socket, list[bytes]]:
    ours, theirs = socket.socketpair()
    transport, _ = await asyncio.get_running_loop().create_connection(_Counting, sock=ours)
    sent: list[bytes] = []
    write = transport.write

    def spy(data: bytes) -> None:
        sent.append(bytes(data))
        write(data)

    transport.write = spy  # type: ignore[method-assign]
    return transport, theirs, sent


def _read_all(sock: socket.socket) -> bytes:
    sock.settimeout(5)
    out = bytearray()
    while chunk := sock.recv(65536):
        out += chunk
    return bytes(out)


def test_writes_of_one_iteration_go_out_together_and_in_order():
    async def scenario() -> tuple[list[bytes], bytes]:
        transport, theirs, sent = await _pair()
        corked = CorkedTransport(transport, asyncio.get_running_loop())
        for i in range(5):
            corked.write(b"packet%d;" % i)
        assert sent == []  # nothing yet: the flush runs at the next iteration
        await asyncio.sleep(0)
        corked.write(b"later;")
        await asyncio.sleep(0)
        corked.close()
        await asyncio.sleep(0.01)
        return sent, await asyncio.to_thread(_read_all, theirs)

    sent, received = asyncio.run(scenario())
    assert sent == [b"packet0;packet1;packet2;packet3;packet4;", b"later;"]
    assert received == b"packet0;packet1;packet2;packet3;packet4;later;"


def test_an_abort_right_after_a_write_still_sends_it_first():
    async def scenario() -> bytes:
        transport, theirs, _ = await _pair()
        corked = CorkedTransport(transport, asyncio.get_running_loop())
        corked.write(b"disconnect message")
        corked.abort()
        await asyncio.sleep(0.01)
        return await asyncio.to_thread(_read_all, theirs)

    assert asyncio.run(scenario()) == b"disconnect message"


class _Conn:
    """The two members of an asyncssh connection that skip_ignore_packets uses."""

    def __init__(self, cipher: str | None):
        self.cipher = cipher
        self.sent: list[tuple[int, tuple[bytes, ...]]] = []

    def send_packet(self, pkttype: int, *args: bytes, **kwargs) -> None:
        self.sent.append((pkttype, args))

    def get_extra_info(self, name: str, default=None):
        return self.cipher if name == "send_cipher" and self.cipher is not None else default


def test_empty_ignore_packets_are_dropped_for_ctr_and_gcm_but_kept_for_cbc_and_before_kex():
    from asyncssh.constants import MSG_CHANNEL_DATA, MSG_IGNORE
    from asyncssh.packet import String

    from gitd.ssh.cork import skip_ignore_packets

    for cipher, kept in (("aes128-ctr", False), ("aes128-gcm@openssh.com", False), ("aes128-cbc", True),
                         (None, True)):
        conn = _Conn(cipher)
        skip_ignore_packets(conn)
        conn.send_packet(MSG_IGNORE, String(b""))
        conn.send_packet(MSG_IGNORE, String(b"not empty"))  # someone else's: always sent
        conn.send_packet(MSG_CHANNEL_DATA, b"\0\0\0\1", String(b"data"))
        expected = [(MSG_IGNORE, (String(b"not empty"),)), (MSG_CHANNEL_DATA, (b"\0\0\0\1", String(b"data")))]
        if kept:
            expected.insert(0, (MSG_IGNORE, (String(b""),)))
        assert conn.sent == expected, cipher
