"""A hand-driven ``git-lfs-transfer`` client over a real SSH channel (asyncssh), for what
git-lfs never sends: forged uploads, requests for other repositories' objects. It
speaks the pkt-line framing itself, independently of gitd.ssh.pktline."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field

import asyncssh

from tests.e2e.sshclient import SSHClient

FLUSH, DELIM = b"0000", b"0001"
MAX_DATA = 65516
_DELIMITER = object()  # what _packet returns for a delimiter packet


def pkt(payload: bytes) -> bytes:
    return f"{len(payload) + 4:04x}".encode() + payload


def text(line: str) -> bytes:
    return pkt(line.encode() + b"\n")


def data_packets(data: bytes) -> bytes:
    return b"".join(pkt(data[i:i + MAX_DATA]) for i in range(0, len(data), MAX_DATA))


@dataclass
class Response:
    """One response: ``status NNN``, its arguments, and what followed a delimiter."""

    status: int
    args: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    data: bytes = b""

    def arg(self, key: str) -> str | None:
        return next((a.split("=", 1)[1] for a in self.args if a.startswith(f"{key}=")), None)


class TransferSession:
    """``git-lfs-transfer PATH OPERATION`` on an open asyncssh connection."""

    def __init__(self, process: asyncssh.SSHClientProcess):
        self.process = process
        self.capabilities: list[str] = []

    @classmethod
    async def open(cls, conn: asyncssh.SSHClientConnection, path: str, operation: str) -> TransferSession:
        process = await conn.create_process(f"git-lfs-transfer {path} {operation}", encoding=None)
        session = cls(process)
        while isinstance(packet := await session._packet(), bytes):
            session.capabilities.append(packet.decode().rstrip("\n"))
        answer = await session.request("version 1")
        assert answer.status == 200, answer
        return session

    async def _packet(self) -> bytes | object | None:
        """A payload; None for a flush, _DELIMITER for a delimiter."""
        head = await self.process.stdout.readexactly(4)
        length = int(head, 16)
        if length == 0:
            return None
        if length == 1:
            return _DELIMITER
        return await self.process.stdout.readexactly(length - 4)

    @staticmethod
    def wire(command: str, *args: str, lines: list[str] | None = None, data: bytes | None = None) -> bytes:
        out = text(command) + b"".join(text(a) for a in args)
        if lines is not None or data is not None:
            out += DELIM + b"".join(text(line) for line in lines or []) + data_packets(data or b"")
        return out + FLUSH

    def put_request(self, data: bytes, *, oid: str | None = None, size: int | None = None) -> bytes:
        oid = oid or hashlib.sha256(data).hexdigest()
        return self.wire(f"put-object {oid}", f"size={len(data) if size is None else size}", data=data)

    async def request(self, command: str, *args: str, lines: list[str] | None = None,
                      data: bytes | None = None, binary_answer: bool = False) -> Response:
        self.process.stdin.write(self.wire(command, *args, lines=lines, data=data))
        first = await self._packet()
        assert isinstance(first, bytes) and first.startswith(b"status "), first
        response = Response(int(first.split()[1]))
        after_delim = False
        body = bytearray()
        while (packet := await self._packet()) is not None:
            if packet is _DELIMITER:
                after_delim = True
                continue
            assert isinstance(packet, bytes)
            if not after_delim:
                response.args.append(packet.decode().rstrip("\n"))
            elif binary_answer and response.status == 200:
                body += packet
            else:
                response.lines.append(packet.decode(errors="replace").rstrip("\n"))
        response.data = bytes(body)
        return response

    async def put(self, data: bytes, *, oid: str | None = None, size: int | None = None) -> Response:
        oid = oid or hashlib.sha256(data).hexdigest()
        return await self.request(f"put-object {oid}", f"size={len(data) if size is None else size}", data=data)

    async def get(self, oid: str, size: int) -> Response:
        return await self.request(f"get-object {oid}", f"size={size}", binary_answer=True)

    async def quit(self) -> int | None:
        answer = await self.request("quit")
        assert answer.status == 200
        self.process.stdin.write_eof()
        result = await asyncio.wait_for(self.process.wait(), 30)
        return result.exit_status


def connect(client: SSHClient) -> asyncssh.connect:
    """An asyncssh connection with ``client``'s key (``async with connect(c) as conn``)."""
    return asyncssh.connect(client.host, client.port, username="git", client_keys=[str(client.key)],
                            known_hosts=None, agent_path=None, config=None)
