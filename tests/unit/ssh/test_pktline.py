"""pkt-line framing: round trips, markers, and everything malformed."""

from __future__ import annotations

import asyncio
import os
import subprocess

import pytest

from gitd.ssh.pktline import (
    DELIM,
    DELIM_PKT,
    FLUSH,
    FLUSH_PKT,
    MAX_PAYLOAD,
    PktLineError,
    PktReader,
    PktWriter,
    encode_data,
    encode_text,
    pkt_line,
)


def read_all(data: bytes, *, text: bool = False) -> list:
    """Every packet in ``data`` until a clean end of input."""

    async def go() -> list:
        stream = asyncio.StreamReader()
        stream.feed_data(data)
        stream.feed_eof()
        reader = PktReader(stream)
        out = []
        while True:
            try:
                out.append(await (reader.read_text() if text else reader.read()))
            except EOFError:
                return out

    return asyncio.run(go())


def test_text_round_trip_and_markers():
    wire = encode_text("version 1") + b"0001" + encode_text("size=12") + b"0000"
    assert wire.startswith(b"000eversion 1\n")
    assert read_all(wire, text=True) == ["version 1", DELIM, "size=12", FLUSH]


def test_capability_advertisement_bytes_match_what_clients_expect():
    async def go() -> bytes:
        sent = bytearray()

        async def write(data: bytes) -> None:
            sent.extend(data)

        await PktWriter(write).text("version=1").text("locking").flush_pkt().send()
        return bytes(sent)

    assert asyncio.run(go()) == b"000eversion=1\n000clocking\n0000"


@pytest.mark.parametrize("size", [0, 1, MAX_PAYLOAD - 1, MAX_PAYLOAD, MAX_PAYLOAD + 1, 3 * MAX_PAYLOAD + 7])
def test_binary_data_round_trip_splits_at_the_packet_limit(size):
    payload = bytes(i % 251 for i in range(size))
    packets = read_all(encode_data(payload))
    assert b"".join(packets) == payload
    assert all(0 < len(p) <= MAX_PAYLOAD for p in packets)
    assert len(packets) == -(-size // MAX_PAYLOAD)


def test_binary_payload_is_not_altered():
    payload = b"\x00\n0000\x01\xff"
    assert read_all(encode_data(payload)) == [payload]


def test_uppercase_hex_lengths_are_accepted_like_git_does():
    assert read_all(b"000A" + b"abcdef") == [b"abcdef"]


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"zz12abcd", "malformed packet header"),
        (b"-004abcd", "malformed packet header"),
        (b"0x05a", "malformed packet header"),
        (b"0002", "unexpected special packet"),
        (b"0003", "unexpected special packet"),
        (b"fff1" + b"x" * 10, "packet too long"),
        (b"ffff", "packet too long"),
        (b"00", "inside a packet header"),
        (b"000aabc", "inside a packet"),
    ],
)
def test_malformed_input_is_an_error(wire, message):
    with pytest.raises(PktLineError, match=message):
        read_all(wire)


def test_largest_allowed_packet_is_read():
    wire = b"fff0" + b"y" * MAX_PAYLOAD
    assert read_all(wire) == [b"y" * MAX_PAYLOAD]


def test_text_packets_must_be_utf8():
    with pytest.raises(PktLineError, match="not UTF-8"):
        read_all(b"0006\xff\xfe", text=True)


def test_text_too_long_for_one_packet_is_refused():
    with pytest.raises(ValueError):
        encode_text("x" * MAX_PAYLOAD)


def test_encoding_matches_the_protocol_documents_examples():
    # gitprotocol-common's examples: the length counts the four header bytes, in lower-case hex.
    assert pkt_line(b"a\n") == b"0006a\n"
    assert pkt_line(b"a") == b"0005a"
    assert pkt_line(b"foobar\n") == b"000bfoobar\n"
    assert pkt_line(b"") == b"0004"
    assert pkt_line(b"z" * MAX_PAYLOAD)[:4] == b"fff0"
    with pytest.raises(ValueError):
        pkt_line(b"z" * (MAX_PAYLOAD + 1))
    assert encode_text("version 1") == b"000eversion 1\n"


def test_git_reads_what_we_encode_and_we_read_what_git_sends(tmp_path):
    # An ls-refs request (gitprotocol-v2) framed here, answered by the real git upload-pack.
    work = tmp_path / "w"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@example.com",
           "GIT_COMMITTER_NAME": "a", "GIT_COMMITTER_EMAIL": "a@example.com"}
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], env=env, check=True)
    subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "x"], cwd=work, env=env, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, env=env, check=True,
                          capture_output=True, text=True).stdout.strip()
    request = encode_text("command=ls-refs") + DELIM_PKT + encode_text("ref-prefix refs/heads/") + FLUSH_PKT
    answer = subprocess.run(["git", "upload-pack", "--stateless-rpc", str(work / ".git")], input=request,
                            env={**env, "GIT_PROTOCOL": "version=2"}, capture_output=True, check=True).stdout
    assert read_all(answer, text=True) == [f"{head} refs/heads/main", FLUSH]
