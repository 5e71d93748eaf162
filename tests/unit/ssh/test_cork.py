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
