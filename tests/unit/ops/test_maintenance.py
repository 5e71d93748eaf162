"""find_leftovers: what interrupted work leaves, judged by when anything in it was last written."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pygit2

from gitd.ops.maintenance import find_leftovers
from gitd.paths import DataDir


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    for top, dirs, files in os.walk(path) if path.is_dir() else [(str(path.parent), [], [path.name])]:
        for name in (*dirs, *files):
            os.utime(os.path.join(top, name), (then, then))
    os.utime(path, (then, then))


def test_old_leftovers_are_found_and_work_still_writing_is_not(tmp_path: Path):
    data = DataDir(tmp_path)
    repo = data.repo_path(7)
    pygit2.init_repository(str(repo), bare=True)
    old_quarantine = repo / "objects" / "tmp_objdir-incoming-AAAA"
    (old_quarantine / "pack").mkdir(parents=True)
    (old_quarantine / "pack" / "tmp_pack_x").write_bytes(b"p" * 1000)
    _age(old_quarantine, 7200)
    busy = repo / "objects" / "tmp_objdir-incoming-BBBB"
    (busy / "pack").mkdir(parents=True)
    (busy / "pack" / "tmp_pack_y").write_bytes(b"p")
    _age(busy, 7200)
    (busy / "pack" / "tmp_pack_y").write_bytes(b"pp")  # a push still writing its pack
    lock = repo / "refs" / "heads" / "main.lock"
    lock.write_text("x")
    _age(lock, 7200)
    unfinished = repo.parent / ".9.git.ab12cd34.tmp"
    unfinished.mkdir()
    _age(unfinished, 7200)
    (data.tmp / "deleted-3-ffff").mkdir(parents=True)
    _age(data.tmp / "deleted-3-ffff", 7200)
    found = {(item.path, item.kind) for item in find_leftovers(data, 3600)}
    assert found == {(old_quarantine, "push quarantine"), (lock, "stale lock"),
                     (unfinished, "unfinished repository creation"),
                     (data.tmp / "deleted-3-ffff", "unfinished repository deletion")}
    sizes = {item.path: item.size for item in find_leftovers(data, 3600)}
    assert sizes[old_quarantine] >= 1000
    assert find_leftovers(data, 10 * 3600) == []
    # A stale lock refuses every push of its ref: it has a (short) grace of its own.
    assert [item.path for item in find_leftovers(data, 10 * 3600, lock_grace=3600)] == [lock]
