"""The body of a Smart HTTP RPC request (git-upload-pack, git-receive-pack), as git gets it.

* Decoding: git gzips fetch negotiations over 1 KiB (``Content-Encoding: gzip``). The
  daemon inflates them itself, streamed, never more than ``inflate_ratio`` times what
  arrived nor past ``inflate_max`` bytes (aiohttp's own inflating is off: it would
  inflate any body on any route without a bound). Other encodings get 415.
* Read-ahead: the negotiation is read before a git process slot is taken, so a client
  that sends headers and then stalls holds a connection, not a git process. For
  upload-pack that is the whole body (wants, haves, ``done`` or a flush: a few KiB); for
  receive-pack the command list up to its flush-pkt (the pack that follows streams to
  git). At most ``negotiation`` bytes are read ahead; the rest of a bigger body streams.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from gitd.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

CHUNK = 256 * 1024
_HEX = frozenset(b"0123456789abcdefABCDEF")
_GZIP_WBITS = 16 + zlib.MAX_WBITS
# Bodies inflated up to this size are never refused for their compression ratio. (git's
# negotiations are hex object names: they shrink two to three times, never fifty.)
RATIO_FLOOR = 256 * 1024


class ClientGone(Exception):
    """The client closed the connection before it sent its whole request."""


@dataclass(frozen=True)
class BodyLimits:
    negotiation: int = 1024 * 1024
    inflate_ratio: int = 50
    inflate_max: int = 1024**3  # 0: no limit


DEFAULT_LIMITS = BodyLimits()


def malformed() -> BadRequest:
    return BadRequest("malformed request: the body is not a git pkt-line stream")


async def raw_chunks(request: web.Request) -> AsyncIterator[bytes]:
    """The body as it came over the wire; a broken or lost one becomes BadRequest / ClientGone."""
    try:
        async for chunk in request.content.iter_chunked(CHUNK):
            yield chunk
    except web.RequestPayloadError as exc:
        raise BadRequest("the request body could not be read (bad chunked encoding)", detail=str(exc)) from None
    except ConnectionError:
        raise ClientGone() from None


async def inflated(chunks: AsyncIterator[bytes], limits: BodyLimits) -> AsyncIterator[bytes]:
    """gzip-decoded ``chunks`` (one member or several in a row), in pieces of at most CHUNK bytes."""
    decoder = zlib.decompressobj(_GZIP_WBITS)
    started = False  # a member has begun and not ended
    received = produced = 0
    async for raw in chunks:
        received += len(raw)
        data = raw
        while data:
            started = True
            try:
                out = decoder.decompress(data, CHUNK)
            except zlib.error as exc:
                raise BadRequest("the request body could not be read (bad gzip)", detail=str(exc)) from None
            produced += len(out)
            if limits.inflate_max and produced > limits.inflate_max:
                raise PayloadTooLarge(f"the compressed request body inflates to more than {limits.inflate_max} bytes")
            if produced > RATIO_FLOOR and produced > limits.inflate_ratio * received:
                raise PayloadTooLarge(f"the compressed request body inflates more than {limits.inflate_ratio} "
                                      "times; send it uncompressed")
            if out:
                yield out
            data = decoder.unconsumed_tail
            if decoder.eof:
                data, started = decoder.unused_data, False
                decoder = zlib.decompressobj(_GZIP_WBITS)
    if started:
        raise BadRequest("the request body could not be read (bad gzip: cut short)")


def decoded(request: web.Request, limits: BodyLimits) -> AsyncIterator[bytes]:
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return raw_chunks(request)
    if encoding in ("gzip", "x-gzip"):
        return inflated(raw_chunks(request), limits)
    raise UnsupportedMediaType(f"Content-Encoding {encoding[:40]!r} is not supported; use gzip or none")


class _CommandsEnd:
    """Finds the flush-pkt that ends a receive-pack command list, across chunks."""

    def __init__(self) -> None:
        self.pos = 0

    def found(self, buf: bytearray) -> bool:
        while self.pos + 4 <= len(buf):
            head = buf[self.pos:self.pos + 4]
            if not set(head) <= _HEX:
                return True  # not pkt-lines: git refuses it; no reason to read on
            size = int(head, 16)
            if size < 4:
                return True  # flush (or delim): the commands are in
            self.pos += size
        return False


async def negotiated(request: web.Request, service: str, limits: BodyLimits) -> AsyncIterator[bytes]:
    """Read the negotiation (see the module doc), then hand git an iterator over the whole body.

    Raises BadRequest if the body does not start as a pkt-line stream."""
    chunks = decoded(request, limits)
    pieces: list[bytes] = []  # kept as they came: no copy of what is read ahead
    size = 0
    commands = bytearray() if service == "receive-pack" else None
    commands_end = _CommandsEnd()
    async for chunk in chunks:
        pieces.append(chunk)
        size += len(chunk)
        if size >= limits.negotiation:
            break
        if commands is not None:
            commands += chunk
            if commands_end.found(commands):
                break
    start = b"".join(pieces)[:4] if pieces and len(pieces[0]) < 4 else (pieces[0][:4] if pieces else b"")
    if len(start) < 4 or not set(start) <= _HEX:
        await _close(chunks)
        raise malformed()

    async def stream() -> AsyncIterator[bytes]:
        while pieces:
            yield pieces.pop(0)
        async for chunk in chunks:
            yield chunk

    return stream()


async def _close(chunks: AsyncIterator[bytes]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()
