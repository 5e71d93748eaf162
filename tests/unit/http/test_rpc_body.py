"""Smart HTTP request bodies: bounded gzip inflating, and where a receive-pack command list ends."""

import asyncio
import gzip
import os
import zlib

import pytest

from gitd.errors import BadRequest, PayloadTooLarge
from gitd.http.rpc_body import RATIO_FLOOR, BodyLimits, _CommandsEnd, inflated


async def _chunks(data: bytes, size: int = 65536):
    for i in range(0, len(data), size):
        yield data[i:i + size]


def _inflate(data: bytes, limits: BodyLimits | None = None, size: int = 65536) -> bytes:
    limits = limits or BodyLimits()

    async def go() -> bytes:
        return b"".join([piece async for piece in inflated(_chunks(data, size), limits)])

    return asyncio.run(go())


def test_inflates_one_member_or_several_in_a_row():
    plain = os.urandom(3000).hex().encode()
    assert _inflate(gzip.compress(plain)) == plain
    assert _inflate(gzip.compress(plain[:100]) + gzip.compress(plain[100:]), size=7) == plain
    assert _inflate(b"") == b""


@pytest.mark.parametrize("body", [b"\x1f\x8b\x08\x00garbage" * 10, gzip.compress(b"x" * 1000)[:-5], b"plain text"])
def test_broken_gzip_is_a_bad_request(body):
    with pytest.raises(BadRequest, match="gzip"):
        _inflate(body)


def test_a_bomb_is_refused_after_a_bounded_amount_of_work():
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = b"".join(comp.compress(b"0000" * 262144) for _ in range(64)) + comp.flush()  # 64 MiB of flush-pkts
    assert len(bomb) < 128 * 1024
    produced = 0

    async def go() -> None:
        nonlocal produced
        async for piece in inflated(_chunks(bomb, 4096), BodyLimits(inflate_ratio=100)):
            produced += len(piece)

    with pytest.raises(PayloadTooLarge, match="100 times"):
        asyncio.run(go())
    assert produced <= RATIO_FLOOR + 256 * 1024  # stopped at the first piece past the ratio


def test_the_inflated_size_is_capped():
    with pytest.raises(PayloadTooLarge, match="more than 1000 bytes"):
        _inflate(gzip.compress(os.urandom(5000)), BodyLimits(inflate_max=1000))


def test_commands_end_at_the_first_flush_across_chunks():
    zero = b"0" * 40
    text = b"%s %s refs/heads/main\0report-status\n" % (zero, zero)
    line = b"%04x%s" % (len(text) + 4, text)
    body = line + line + b"0000PACK...."
    finder = _CommandsEnd()
    buf = bytearray()
    ends = []
    for i in range(0, len(body), 5):
        buf += body[i:i + 5]
        ends.append(finder.found(buf))
    assert ends.index(True) == (len(line) * 2 + 4 - 1) // 5  # the chunk that completes the flush-pkt
    assert _CommandsEnd().found(bytearray(b"zzzz"))  # not pkt-lines: nothing to wait for
    assert not _CommandsEnd().found(bytearray(line[:10]))
