"""cork and skip_ignore_packets, on both event loops gitd runs on (uvloop's transports are
not asyncio's classes).

CorkedTransport on a socket pair: writes of one loop iteration leave in one send, in
order, and nothing written before a close or an abort is lost. Then a real asyncssh
server and client on loopback: the server's writes to its real transport are counted
with and without cork (cork sees the transport uvloop made, and a 1 MiB answer leaves in
a handful of writes instead of one per SSH packet), the bytes arrive intact, and the
empty SSH_MSG_IGNORE packets are dropped for CTR, GCM and ChaCha20 but kept for CBC.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import asyncssh
import pytest
from asyncssh.constants import MSG_IGNORE

from gitd.eventloop import loop_factory
from gitd.eventloop import run as run_on
from gitd.ssh import cork as cork_module
from gitd.ssh.cork import CorkedTransport, cork, skip_ignore_packets

LOOPS = ("asyncio", "uvloop")


def run(kind: str, main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return run_on(main(), loop_factory(kind))


class Counting:
    """A transport's stand-in that records each write and hands it on to the real one."""

    def __init__(self, transport: Any):
        self.transport = transport
        self.writes: list[int] = []

    def write(self, data: bytes) -> None:
        self.writes.append(len(data))
        self.transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


async def _pair() -> tuple[Counting, socket.socket]:
    ours, theirs = socket.socketpair()
    transport, _ = await asyncio.get_running_loop().create_connection(asyncio.Protocol, sock=ours)
    return Counting(transport), theirs


def _read_all(sock: socket.socket) -> bytes:
    sock.settimeout(5)
    out = bytearray()
    while chunk := sock.recv(65536):
        out += chunk
    return bytes(out)


@pytest.mark.parametrize("loop", LOOPS)
def test_writes_of_one_iteration_go_out_together_and_in_order(loop):
    async def scenario() -> tuple[list[int], bytes]:
        transport, theirs = await _pair()
        corked = CorkedTransport(transport, asyncio.get_running_loop())
        for i in range(5):
            corked.write(b"packet%d;" % i)
        assert transport.writes == []  # nothing yet: the flush runs at the next iteration
        await asyncio.sleep(0)
        corked.write(b"later;")
        await asyncio.sleep(0)
        corked.close()
        await asyncio.sleep(0.01)
        return transport.writes, await asyncio.to_thread(_read_all, theirs)

    writes, received = run(loop, scenario)
    assert writes == [len(b"packet0;packet1;packet2;packet3;packet4;"), len(b"later;")]
    assert received == b"packet0;packet1;packet2;packet3;packet4;later;"


@pytest.mark.parametrize("loop", LOOPS)
def test_an_abort_right_after_a_write_still_sends_it_first(loop):
    async def scenario() -> bytes:
        transport, theirs = await _pair()
        corked = CorkedTransport(transport, asyncio.get_running_loop())
        corked.write(b"disconnect message")
        corked.abort()
        await asyncio.sleep(0.01)
        return await asyncio.to_thread(_read_all, theirs)

    assert run(loop, scenario) == b"disconnect message"


# -- a real asyncssh connection -------------------------------------------------------------------
ANSWER = os.urandom(1 << 20)


class _Server(asyncssh.SSHServer):
    """No authentication; counts what the connection writes and which packets it sends."""

    def __init__(self, seen: dict[str, Any], corked: bool, skip: bool):
        self.seen, self.corked, self.skip = seen, corked, skip

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:  # type: ignore[override]
        counting = Counting(conn._transport)
        conn._transport = counting
        self.seen["writes"] = counting.writes
        self.seen["uses"] = counting.transport
        sent = self.seen["packets"] = []
        send_packet = conn.send_packet

        def record(pkttype: int, *args: bytes, **kwargs: Any) -> None:
            sent.append(pkttype)
            send_packet(pkttype, *args, **kwargs)

        conn.send_packet = record  # type: ignore[method-assign]
        self.seen["corked"] = cork(conn) if self.corked else False
        if self.skip:
            assert skip_ignore_packets(conn)

    def begin_auth(self, username: str) -> bool:
        return False


def _answer(process: asyncssh.SSHServerProcess) -> None:
    process.stdout.write(ANSWER)  # one write: every packet of it is sent in this callback
    process.exit(0)


async def _fetch(corked: bool, skip: bool, cipher: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.create_server(lambda: _Server(seen, corked, skip), "127.0.0.1", 0,
                                          server_host_keys=[key], process_factory=_answer, encoding=None,
                                          encryption_algs=[cipher])
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncssh.connect("127.0.0.1", port, known_hosts=None, username="u", client_keys=[],
                                    agent_path=None, config=None, encryption_algs=[cipher]) as conn:
            result = await conn.run("answer", encoding=None)
    finally:
        server.close()
        await server.wait_closed()
    seen["stdout"] = result.stdout
    return seen


@pytest.mark.parametrize("loop", LOOPS)
def test_cork_coalesces_a_real_connections_writes(loop):
    cipher = "aes128-ctr"
    plain = run(loop, lambda: _fetch(corked=False, skip=True, cipher=cipher))
    corked = run(loop, lambda: _fetch(corked=True, skip=True, cipher=cipher))
    assert corked["corked"] and plain["stdout"] == corked["stdout"] == ANSWER
    if loop == "uvloop":
        assert type(corked["uses"]).__module__ == "uvloop.loop"
    # 1 MiB in 32 KiB packets: one write per packet without cork; with cork, the 32 packets
    # sent in one callback leave in one write (the handshake's writes are the same both ways).
    data_packets = len(ANSWER) // 32768
    assert len(plain["writes"]) >= data_packets
    assert len(corked["writes"]) <= len(plain["writes"]) - data_packets + 4, (plain["writes"], corked["writes"])
    assert sum(plain["writes"]) == sum(corked["writes"])


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize(("cipher", "kept"), [("aes128-ctr", False), ("aes256-gcm@openssh.com", False),
                                              ("chacha20-poly1305@openssh.com", False), ("aes128-cbc", True)])
def test_empty_ignore_packets_are_dropped_unless_the_cipher_is_cbc(loop, cipher, kept):
    unskipped = run(loop, lambda: _fetch(corked=True, skip=False, cipher=cipher))
    skipped = run(loop, lambda: _fetch(corked=True, skip=True, cipher=cipher))
    assert unskipped["stdout"] == skipped["stdout"] == ANSWER
    ignores = unskipped["packets"].count(MSG_IGNORE)
    assert ignores >= len(ANSWER) // 32768  # asyncssh sends one before every packet after the key exchange
    assert skipped["packets"].count(MSG_IGNORE) == (ignores if kept else 0)
    others = [p for p in unskipped["packets"] if p != MSG_IGNORE]
    assert [p for p in skipped["packets"] if p != MSG_IGNORE] == others


def test_without_the_asyncssh_internals_both_leave_the_connection_alone_and_log_once(caplog, monkeypatch):
    monkeypatch.setattr(cork_module, "_warned", set())

    class Bare:  # what a future asyncssh's connection might look like: neither member
        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return default

    async def scenario() -> tuple[bool, bool, bool, bool]:
        first = Bare()
        again = Bare()
        again._transport = object()  # something, but not a stream transport
        return cork(first), skip_ignore_packets(first), cork(again), skip_ignore_packets(again)

    with caplog.at_level(logging.WARNING, logger="gitd.ssh"):
        assert run("asyncio", scenario) == (False, False, False, False)
    warnings = [r.getMessage() for r in caplog.records if r.name == "gitd.ssh"]
    assert len(warnings) == 2, warnings
    assert any("_transport" in w for w in warnings) and any("send_packet" in w for w in warnings)
