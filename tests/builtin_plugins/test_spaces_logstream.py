"""The logs stream's reading side: a bounded log followed across its rotations, without
losing or repeating a byte that was kept, and cut into lines for server-sent events."""

from __future__ import annotations

import json

from gitd_plugins.spaces.logstream import CHUNK, Lines, LogFollower, event

from gitd.plugin_api import BoundedLog


def read_all(follower: LogFollower) -> bytes:
    return b"".join(chunk for chunk, _ in follower.read(budget=1 << 30))


def test_a_follower_reads_the_kept_log_then_what_is_appended_across_rotations(tmp_path):
    log = BoundedLog(tmp_path / "1.run.log", 4096)
    lines = [f"line {i:04d} ".encode() + b"x" * 90 + b"\n" for i in range(200)]  # 100 bytes each
    for line in lines[:60]:  # 6000 bytes: rotated once
        log.write(line)
    follower = LogFollower(log)
    seen = read_all(follower)
    assert seen == b"".join(lines[:60])  # both generations, oldest first
    assert read_all(follower) == b""  # caught up
    for line in lines[60:110]:  # rotates once more while followed
        log.write(line)
        seen += read_all(follower)
    assert seen == b"".join(lines[:110]) and log.path.with_name("1.run.log.1").read_bytes().startswith(b"line 0040")
    log.clear()  # a new build: the follower starts again on the new file
    log.write(b"fresh\n")
    assert read_all(follower) == b"fresh\n"


def test_budget_splits_a_big_replay_over_calls_without_loss(tmp_path):
    log = BoundedLog(tmp_path / "2.build.log", 3 * CHUNK)
    data = bytes(range(256)) * (5 * CHUNK // 256)  # 5 chunks: one rotation
    log.write(data[:3 * CHUNK])
    log.write(data[3 * CHUNK:])
    follower = LogFollower(log)
    parts = [b"".join(c for c, _ in follower.read(budget=CHUNK)) for _ in range(8)]
    assert all(len(p) <= CHUNK for p in parts) and b"".join(parts) == data


def test_lines_become_hub_log_events():
    lines = Lines()
    assert lines.feed(b"one\ntw") == [b"one\n"]
    assert lines.feed(b"o\n") == [b"two\n"]
    assert lines.feed(b"x" * (CHUNK + 5)) == [b"x" * CHUNK] and lines.flush() == [b"xxxxx"]
    raw = event("caf\u00e9\n".encode(), 0.0)
    assert raw.startswith(b"data: {") and raw.endswith(b"\n\n")
    assert json.loads(raw[6:]) == {"data": "caf\u00e9\n", "timestamp": "1970-01-01T00:00:00.000Z"}
