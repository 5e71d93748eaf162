"""git pkt-line framing over an asyncio byte stream (gitprotocol-common, gitprotocol-v2).

A packet is four hex digits giving its length (header included) followed by the
payload; ``0000`` is a flush packet and ``0001`` a delimiter. A packet is at most
65520 bytes long, so a payload is at most 65516 bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from enum import Enum

MAX_PKT_LEN = 65520
MAX_PAYLOAD = MAX_PKT_LEN - 4
_HEX = frozenset(b"0123456789abcdef")

FLUSH_PKT = b"0000"
DELIM_PKT = b"0001"


def pkt_line(payload: bytes) -> bytes:
    """One data packet: the length in four lower-case hex digits (header included), then ``payload``."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"packet payload too long ({len(payload)} bytes; at most {MAX_PAYLOAD})")
    return b"%04x" % (len(payload) + 4) + payload


class Marker(Enum):
    FLUSH = 0
    DELIM = 1


FLUSH = Marker.FLUSH
DELIM = Marker.DELIM
Packet = bytes | Marker


class PktLineError(Exception):
    """The peer sent something that is not pkt-line framing; the stream cannot continue."""


class PktReader:
    def __init__(self, stream: asyncio.StreamReader):
        self.stream = stream

    async def read(self) -> Packet:
        """The next packet: its payload, FLUSH or DELIM. Raises EOFError at a clean end of
        input (between packets) and PktLineError for anything malformed."""
        try:
            head = await self.stream.readexactly(4)
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise EOFError("end of input") from None
            raise PktLineError("input ended inside a packet header") from None
        if not set(head.lower()) <= _HEX:
            raise PktLineError(f"malformed packet header {head[:4]!r}")
        length = int(head, 16)
        if length == 0:
            return FLUSH
        if length == 1:
            return DELIM
        if length < 4:
            raise PktLineError(f"unexpected special packet {head.decode()}")
        if length > MAX_PKT_LEN:
            raise PktLineError(f"packet too long ({length} bytes; at most {MAX_PKT_LEN})")
        try:
            return await self.stream.readexactly(length - 4)
        except asyncio.IncompleteReadError:
            raise PktLineError("input ended inside a packet") from None

    async def read_text(self) -> str | Marker:
        """A text packet without its trailing newline, or a marker."""
        packet = await self.read()
        if isinstance(packet, Marker):
            return packet
        return decode_text(packet)


def decode_text(payload: bytes) -> str:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise PktLineError("a text packet is not UTF-8") from None
    return text[:-1] if text.endswith("\n") else text


def encode_text(line: str) -> bytes:
    data = line.encode("utf-8") + b"\n"
    if len(data) > MAX_PAYLOAD:
        raise ValueError("text packet too long")
    return pkt_line(data)


def encode_data(data: bytes | memoryview) -> bytes:
    """Binary data as as many packets as it needs."""
    view = memoryview(data)
    return b"".join(pkt_line(bytes(view[i:i + MAX_PAYLOAD])) for i in range(0, len(view), MAX_PAYLOAD))


class PktWriter:
    """Collects packets and sends them in one write, so a response costs one channel write."""

    def __init__(self, write: Callable[[bytes], Awaitable[None]]):
        self._write = write
        self._buf: list[bytes] = []

    def text(self, line: str) -> PktWriter:
        self._buf.append(encode_text(line))
        return self

    def delim(self) -> PktWriter:
        self._buf.append(DELIM_PKT)
        return self

    def flush_pkt(self) -> PktWriter:
        self._buf.append(FLUSH_PKT)
        return self

    def data(self, data: bytes) -> PktWriter:
        if data:
            self._buf.append(encode_data(data))
        return self

    async def send(self) -> None:
        if self._buf:
            out = b"".join(self._buf)
            self._buf.clear()
            await self._write(out)
