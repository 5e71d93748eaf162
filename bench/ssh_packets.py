#!/usr/bin/env python3
"""What one 32 KiB SSH data packet costs gitd's SSH transport to send, with and without
gitd.ssh.ignore_packets (asyncssh's empty SSH_MSG_IGNORE before every packet).

    .venv/bin/python bench/ssh_packets.py [--packets 20000] [--rounds 5]

A real asyncssh server and client on loopback (the event loop gitd runs on by default)
negotiate each cipher gitd offers and OpenSSH's default; then the server connection's
``send_packet`` is called for ``--packets`` channel-data packets of 32 KiB (OpenSSH's
packet size for sessions) while its transport discards the bytes, so only the packet
layer is measured: padding, encryption, MAC, the Python around them (no rekeying: a key
exchange cannot complete while the bytes are discarded). Rounds alternate
the two ways; reported: CPU microseconds per packet (median over rounds) and the ratio
skip/asyncssh (below 1.0: skipping is cheaper).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

import asyncssh
from asyncssh.constants import MSG_CHANNEL_DATA
from asyncssh.packet import String, UInt32

from gitd.eventloop import loop_factory, run
from gitd.ssh.ignore_packets import skip_ignore_packets

CIPHERS = ("aes128-gcm@openssh.com", "aes128-ctr", "chacha20-poly1305@openssh.com")


class _Discard:
    def __init__(self, transport: Any):
        self.transport = transport

    def write(self, data: bytes) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class _Server(asyncssh.SSHServer):
    def __init__(self, made: list[asyncssh.SSHServerConnection]):
        self.made = made

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:  # type: ignore[override]
        self.made.append(conn)

    def begin_auth(self, username: str) -> bool:
        return False


def per_packet_us(conn: Any, packets: int) -> float:
    payload = UInt32(0) + String(os.urandom(32768))
    started = time.process_time()
    for _ in range(packets):
        conn.send_packet(MSG_CHANNEL_DATA, payload)
    return (time.process_time() - started) / packets * 1e6


async def measure(cipher: str, packets: int, rounds: int) -> tuple[list[float], list[float]]:
    made: list[asyncssh.SSHServerConnection] = []
    key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.create_server(lambda: _Server(made), "127.0.0.1", 0, server_host_keys=[key],
                                          encryption_algs=[cipher], rekey_bytes=1 << 60, rekey_seconds=1 << 30)
    port = server.sockets[0].getsockname()[1]
    plain: list[float] = []
    skipping: list[float] = []
    try:
        async with asyncssh.connect("127.0.0.1", port, known_hosts=None, username="u", client_keys=[],
                                    agent_path=None, config=None, encryption_algs=[cipher]):
            await asyncio.sleep(0.1)
            conn: Any = made[0]
            conn._transport = _Discard(conn._transport)
            original = conn.send_packet
            assert conn._auth_complete and conn._kex_complete  # else send_packet only queues
            for r in range(rounds):
                for way in (("plain", "skip") if r % 2 == 0 else ("skip", "plain")):
                    conn.send_packet = original
                    if way == "skip":
                        skip_ignore_packets(conn)
                    (skipping if way == "skip" else plain).append(per_packet_us(conn, packets))
            assert not conn._deferred_packets
            conn.send_packet = original
            conn._transport = conn._transport.transport
    finally:
        server.close()
        await server.wait_closed()
    return plain, skipping


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    print(f"{'cipher':<32}{'asyncssh (us)':>14}{'skip (us)':>11}{'ratio':>8}")
    for cipher in CIPHERS:
        plain, skipping = await measure(cipher, args.packets, args.rounds)
        ratios = sorted(s / p for s, p in zip(skipping, plain, strict=True))
        mid = sorted(plain)[len(plain) // 2], sorted(skipping)[len(skipping) // 2], ratios[len(ratios) // 2]
        print(f"{cipher:<32}{mid[0]:>14.1f}{mid[1]:>11.1f}{mid[2]:>8.2f}")


if __name__ == "__main__":
    run(main(), loop_factory("auto"))
