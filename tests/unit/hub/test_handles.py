"""RepoHandles: per-thread pygit2 handles that let go of packs git gc deleted."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pygit2
import pytest

from gitd.clock import ManualClock
from gitd.hub.handles import RepoHandles


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@e", *args], cwd=cwd, check=True,
                   capture_output=True)


def deleted_packs_held() -> int:
    held = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        held += ".pack (deleted)" in target
    with open("/proc/self/maps") as maps:
        held += sum(".pack (deleted)" in line for line in maps)
    return held


@pytest.fixture
def packed(tmp_path: Path) -> Path:
    """A bare repository with two packs."""
    work = tmp_path / "w"
    work.mkdir()
    _git("init", "-q", "-b", "main", cwd=work)
    bare = tmp_path / "r.git"
    _git("init", "-q", "--bare", str(bare), cwd=tmp_path)
    _git("config", "receive.unpackLimit", "1", cwd=bare)  # every push keeps its pack, as gitd's do
    for n in range(2):
        (work / f"f{n}").write_bytes(os.urandom(100_000))
        _git("add", "-A", cwd=work)
        _git("commit", "-qm", f"c{n}", cwd=work)
        _git("push", "-q", str(bare), "main", cwd=work)
    assert len(list((bare / "objects" / "pack").glob("*.pack"))) == 2
    return bare


def read_all(repo: pygit2.Repository) -> None:
    head = repo.references.get("refs/heads/main")
    assert head is not None
    for commit in repo.walk(head.target):
        for entry in commit.tree:
            assert len(repo[entry.id].data) == 100_000


def test_a_handle_is_opened_again_once_gc_replaced_its_packs(packed: Path):
    clock = ManualClock()
    handles = RepoHandles(clock=clock)
    first = handles.open(packed)
    read_all(first)
    assert handles.open(packed) is first
    _git("gc", "-q", cwd=packed)
    assert handles.open(packed) is first  # looked at no more than once a second
    clock.advance(1.5)
    second = handles.open(packed)
    assert second is not first
    del first
    read_all(second)
    assert deleted_packs_held() == 0  # the old handle's packs were closed as soon as it went


def test_a_sweep_lets_go_of_handles_idle_threads_hold(packed: Path):
    clock = ManualClock()
    handles = RepoHandles(clock=clock, max_age=60)
    opened = threading.Event()
    done = threading.Event()

    def idle_thread() -> None:
        read_all(handles.open(packed))
        opened.set()
        done.wait(30)  # serves nothing more, as an idle worker thread

    thread = threading.Thread(target=idle_thread)
    thread.start()
    try:
        assert opened.wait(30)
        _git("gc", "-q", cwd=packed)
        assert deleted_packs_held() > 0
        assert handles.sweep() == 1  # the packs changed
        assert deleted_packs_held() == 0
        assert handles.count() == 0
    finally:
        done.set()
        thread.join()


def test_handles_older_than_max_age_are_swept_whatever_happened(packed: Path):
    clock = ManualClock()
    handles = RepoHandles(clock=clock, max_age=10)
    handles.open(packed)
    assert handles.sweep() == 0
    clock.advance(11)
    assert handles.sweep() == 1 and handles.count() == 0
