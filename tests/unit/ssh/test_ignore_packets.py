"""skip_ignore_packets on a real asyncssh server and client on loopback, on both event loops
gitd runs on: the empty SSH_MSG_IGNORE packets are dropped for CTR, GCM and ChaCha20 but
kept for CBC, every other packet is still sent, and the bytes arrive intact. Without the
asyncssh member it uses, it logs once and leaves the connection alone."""

from __future__ import annotations

import logging
import os
from typing import Any

import asyncssh
import pytest
from asyncssh.constants import MSG_IGNORE

from gitd.eventloop import loop_factory
from gitd.eventloop import run as run_on
from gitd.ssh import ignore_packets
from gitd.ssh.ignore_packets import skip_ignore_packets

LOOPS = ("asyncio", "uvloop")
ANSWER = os.urandom(1 << 20)


class _Server(asyncssh.SSHServer):
    """No authentication; records the packets the connection hands to asyncssh's send_packet."""

    def __init__(self, sent: list[int], skip: bool):
        self.sent, self.skip = sent, skip

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:  # type: ignore[override]
        send_packet = conn.send_packet

        def record(pkttype: int, *args: bytes, **kwargs: Any) -> None:
            self.sent.append(pkttype)
            send_packet(pkttype, *args, **kwargs)

        conn.send_packet = record  # type: ignore[method-assign]
        if self.skip:
            assert skip_ignore_packets(conn)

    def begin_auth(self, username: str) -> bool:
        return False


def _answer(process: asyncssh.SSHServerProcess) -> None:
    process.stdout.write(ANSWER)
    process.exit(0)


async def _fetch(skip: bool, cipher: str) -> tuple[bytes, list[int]]:
    sent: list[int] = []
    key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.create_server(lambda: _Server(sent, skip), "127.0.0.1", 0, server_host_keys=[key],
                                          process_factory=_answer, encoding=None, encryption_algs=[cipher])
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncssh.connect("127.0.0.1", port, known_hosts=None, username="u", client_keys=[],
                                    agent_path=None, config=None, encryption_algs=[cipher]) as conn:
            result = await conn.run("answer", encoding=None)
    finally:
        server.close()
        await server.wait_closed()
    return result.stdout, sent


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize(("cipher", "kept"), [("aes128-ctr", False), ("aes256-gcm@openssh.com", False),
                                              ("chacha20-poly1305@openssh.com", False), ("aes128-cbc", True)])
def test_empty_ignore_packets_are_dropped_unless_the_cipher_is_cbc(loop, cipher, kept):
    plain_out, plain = run_on(_fetch(skip=False, cipher=cipher), loop_factory(loop))
    skipped_out, skipped = run_on(_fetch(skip=True, cipher=cipher), loop_factory(loop))
    assert plain_out == skipped_out == ANSWER
    ignores = plain.count(MSG_IGNORE)
    assert ignores >= len(ANSWER) // 32768  # asyncssh sends one before every packet after the key exchange
    assert skipped.count(MSG_IGNORE) == (ignores if kept else 0)
    assert [p for p in skipped if p != MSG_IGNORE] == [p for p in plain if p != MSG_IGNORE]


def test_without_send_packet_the_connection_is_left_alone_and_it_is_logged_once(caplog, monkeypatch):
    monkeypatch.setattr(ignore_packets, "_warned", False)

    class Bare:  # what a future asyncssh's connection might look like: no send_packet
        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return default

    first, again = Bare(), Bare()
    with caplog.at_level(logging.WARNING, logger="gitd.ssh"):
        assert (skip_ignore_packets(first), skip_ignore_packets(again)) == (False, False)
    assert not hasattr(first, "send_packet") and not hasattr(again, "send_packet")
    warnings = [r.getMessage() for r in caplog.records if r.name == "gitd.ssh"]
    assert len(warnings) == 1 and "send_packet" in warnings[0], warnings
