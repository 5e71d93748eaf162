"""gitcopy.copy: a repository copied as files, refs first, while pushes land and git gc
repacks it for real on another thread; every copy is whole."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

from gitd.ops import gitcopy

ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
       "GIT_COMMITTER_EMAIL": "t@e", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=ENV, check=True, capture_output=True).stdout.decode().strip()


def commit(work: Path, n: int) -> str:
    (work / f"f{n}.bin").write_bytes(os.urandom(20_000))
    git("add", "-A", cwd=work)
    git("commit", "-qm", f"c{n}", cwd=work)
    return git("rev-parse", "HEAD", cwd=work)


def test_copies_taken_while_pushes_land_and_gc_repacks_are_whole(tmp_path: Path):
    src = tmp_path / "src.git"
    git("init", "-q", "--bare", "-b", "main", str(src))
    git("config", "receive.unpackLimit", "1", cwd=src)
    work = tmp_path / "w"
    git("init", "-q", "-b", "main", str(work))
    pushed = set()
    for n in range(10):
        pushed.add(commit(work, n))
        git("push", "-q", str(src), "main", cwd=work)
    stop = threading.Event()

    def churn() -> None:  # pushes land and gc folds the packs into one, over and over
        n = 10
        while not stop.is_set():
            pushed.add(commit(work, n))
            git("push", "-q", str(src), "main", cwd=work)
            git("repack", "-a", "-d", "-q", cwd=src)
            n += 1

    thread = threading.Thread(target=churn)
    thread.start()
    how = []
    dst = tmp_path / "dst.git"
    gitcopy.init_bare(dst)
    try:
        for _ in range(12):
            count, method = gitcopy.copy(src, dst)  # the same copy, again and again: incremental
            how.append(method)
            assert count == 1
            assert gitcopy.connectivity_problems(dst) == []
            assert gitcopy.refs(dst)["refs/heads/main"] in pushed
            fresh = tmp_path / f"fresh{len(how)}.git"
            gitcopy.init_bare(fresh)
            gitcopy.copy(src, fresh)
            assert gitcopy.connectivity_problems(fresh) == []
    finally:
        stop.set()
        thread.join()
    assert "files" in how
    # Once quiet, a copy is exact, and it holds no pack src no longer has.
    gitcopy.copy(src, dst)
    assert gitcopy.refs(dst) == gitcopy.refs(src)
    assert {p.name for p in (dst / "objects" / "pack").glob("*.pack")} == \
        {p.name for p in (src / "objects" / "pack").glob("*.pack")}
    git("fsck", "--full", "--strict", cwd=dst)


def test_regression_a_pack_gone_mid_copy_is_fetched_whole(tmp_path: Path, monkeypatch):
    """A gc deleted a pack between the listing and its copy: the refs set afterwards name
    commits whose history is partly missing. The fetch that fills in used to offer those
    commits as "have"s, was sent nothing below them, and the copy stayed broken (seen
    under load in the test above: 'broken link from commit ...')."""
    src = tmp_path / "src.git"
    git("init", "-q", "--bare", "-b", "main", str(src))
    git("config", "receive.unpackLimit", "1", cwd=src)  # one pack per push
    work = tmp_path / "w"
    git("init", "-q", "-b", "main", str(work))
    for n in range(3):
        commit(work, n)
        git("push", "-q", str(src), "main", cwd=work)
    oldest = min((src / "objects" / "pack").glob("*.pack"), key=lambda p: p.stat().st_mtime).stem
    copy_objects = gitcopy._copy_objects

    def a_pack_goes_missing(s: Path, d: Path) -> set[str]:
        kept = copy_objects(s, d)
        for f in (d / "objects" / "pack").glob(f"{oldest}.*"):
            f.unlink()  # as if gc had deleted it in src before it was copied
        return kept

    monkeypatch.setattr(gitcopy, "_copy_objects", a_pack_goes_missing)
    dst = tmp_path / "dst.git"
    gitcopy.init_bare(dst)
    assert gitcopy.copy(src, dst) == (1, "fetch")
    assert gitcopy.connectivity_problems(dst) == []
    assert gitcopy.refs(dst) == gitcopy.refs(src)
    git("fsck", "--full", "--strict", cwd=dst)
