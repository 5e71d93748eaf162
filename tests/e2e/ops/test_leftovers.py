"""Issue #20 §5: what crashes leave behind is swept. A push and LFS uploads are cut by a
crash for real (the daemon and its git children SIGKILLed mid-transfer); the daemon's
periodic sweep removes the quarantine, half-written files and unfinished uploads once
their grace has passed, and ``gitd lfs gc --dry-run`` lists exactly what the real run
deletes."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.hook_helpers import wait_for
from tests.e2e.ops.faults import crash, write_lock_held
from tests.e2e.rawhttp import FLUSH, basic, pkt, request
from tests.lfs_support import LfsClient, sha256, write_settings
from tests.seaweed import start_seaweed
from tests.support import Daemon, Git, new_daemon

MIB = 1024 * 1024
ZERO = "0" * 40


class Stalling:
    """A request body sent in chunks that stops (without ending) after ``first`` bytes, on a
    thread, until the connection dies or ``finish()`` sends the rest."""

    def __init__(self, url: str, target: str, head: bytes, body: bytes, first: int, headers: dict[str, str]):
        self.released = threading.Event()
        self.rest = False
        self.reply: object = None

        def chunks() -> Iterator[bytes]:
            yield head
            for i in range(0, first, 256 * 1024):
                yield body[i:min(first, i + 256 * 1024)]
            self.released.wait(120)
            if self.rest:
                yield body[first:]

        def send() -> None:
            try:
                self.reply = request(url, "POST" if head else "PUT", target, headers=headers, body=chunks(),
                                     timeout=120)
            except OSError as exc:
                self.reply = exc

        self.thread = threading.Thread(target=send, daemon=True)
        self.thread.start()

    def finish(self) -> None:
        self.rest = True
        self.released.set()

    def close(self) -> None:
        self.released.set()
        self.thread.join(30)


def pack_of(git: Git, work: Path) -> tuple[str, bytes]:
    """(head, a pack of every object of ``work``'s HEAD)."""
    head = git.out("rev-parse", "HEAD", cwd=work)
    objects = git("rev-list", "--objects", "HEAD", cwd=work).stdout
    pack = git("pack-objects", "--stdout", cwd=work, input=b"\n".join(line.split(b" ")[0]
                                                                       for line in objects.splitlines()) + b"\n")
    return head, pack.stdout


def slow_push(d: Daemon, repo: str, token: str, head: str, pack: bytes) -> Stalling:
    command = pkt(f"{ZERO} {head} refs/heads/main\0report-status\n") + FLUSH
    return Stalling(d.url, f"/{repo}.git/git-receive-pack", command, pack, len(pack) // 2,
                    {**basic(token), "Content-Type": "application/x-git-receive-pack-request"})


def slow_lfs_put(d: Daemon, repo: str, token: str, data: bytes, first: int | None = None) -> Stalling:
    answer = LfsClient(d, repo, token).batch("upload", [(sha256(data), len(data))])
    action = answer.json()["objects"][0]["actions"]["upload"]
    target = action["href"].split(d.url, 1)[1]
    return Stalling(d.url, target, b"", data, len(data) // 2 if first is None else first, action.get("header", {}))


def quarantines(path: Path) -> list[Path]:
    return sorted((path / "objects").glob("tmp_objdir-*"))


def lfs_temporaries(d: Daemon) -> list[Path]:
    return sorted((d.data / "lfs" / "tmp").iterdir())


def test_regression_the_daemon_sweeps_what_a_crash_left(tmp_path, git: Git):
    d = new_daemon(tmp_path / "d")
    d.start()
    user, token = d.user()
    repo = d.repo(user)
    path = d.repo_path(repo)
    work = git.init_work(tmp_path / "w", {f"shard{i}.bin": os.urandom(MIB) for i in range(24)})
    head, pack = pack_of(git, work)
    push = slow_push(d, repo, token, head, pack)
    put = slow_lfs_put(d, repo, token, os.urandom(8 * MIB))
    try:
        wait_for(lambda: quarantines(path) and lfs_temporaries(d), what="the push and the upload to be under way")
        time.sleep(0.5)
        crash(d)
    finally:
        push.close()
        put.close()
    left = quarantines(path)
    assert left and sum(f.stat().st_size for f in left[0].rglob("*") if f.is_file()) > MIB
    assert lfs_temporaries(d)

    d.extra_env.update({"GITD_MAINTENANCE__INTERVAL": "1", "GITD_MAINTENANCE__GRACE": "3s"})
    d.start()
    try:
        wait_for(lambda: not quarantines(path) and not lfs_temporaries(d), timeout=30, what="the sweep")
        assert "removed push quarantine" in d.log()
        git("push", "-q", d.repo_url(repo, token=token), "main", cwd=work)  # the same push, whole this time
        git("--git-dir", str(path), "fsck", "--full", "--strict")
    finally:
        d.stop()


def test_regression_lfs_gc_dry_run_lists_what_gc_deletes(tmp_path, git: Git):
    d = new_daemon(tmp_path / "d")
    d.start()
    user, token = d.user()
    repo, gone = d.repo(user), d.repo(user)
    unreferenced = os.urandom(100_000)
    assert LfsClient(d, gone, token).upload(unreferenced).status == 200
    d.cli("repo", "delete", gone)  # its objects are held by no repository now
    abandoned = slow_lfs_put(d, repo, token, os.urandom(8 * MIB))
    # Stored, then the daemon dies before it records the object: its bytes are on disk with
    # no row (the database's write lock, held by another process, keeps the record waiting).
    orphan = os.urandom(2 * MIB)
    stored = d.data / "lfs" / "objects" / sha256(orphan)[:2] / sha256(orphan)[2:4] / sha256(orphan)
    recorded = slow_lfs_put(d, repo, token, orphan, first=MIB)
    try:
        wait_for(lambda: len(lfs_temporaries(d)) == 2, what="both uploads to be under way")
        with write_lock_held(d.data / "gitd.db", 30):
            recorded.finish()
            wait_for(lambda: stored.exists(), what="the bytes to be stored")
            time.sleep(0.3)
            crash(d)
    finally:
        abandoned.close()
        recorded.close()

    _, dry, _ = d.cli("lfs", "gc", "--dry-run", "--grace", "0")
    _, real, _ = d.cli("lfs", "gc", "--grace", "0")
    expected = {f"would delete {sha256(unreferenced)}", f"would delete unrecorded {sha256(orphan)}"}
    assert set(dry.splitlines()[:-1]) == expected, dry
    assert dry.replace("would delete", "deleted") == real, (dry, real)
    assert "1 unrecorded object(s); 1 abandoned upload(s)" in real
    assert not lfs_temporaries(d) and not stored.exists()


@pytest.mark.s3
def test_regression_an_s3_multipart_upload_cut_by_a_crash_is_swept(tmp_path):
    weed = start_seaweed(tmp_path / "weed")
    try:
        d = new_daemon(tmp_path / "d")
        write_settings(d.data, weed.gitd_settings("gitd-sweep", presign=False))
        d.start()
        user, token = d.user()
        repo = d.repo(user)
        put = slow_lfs_put(d, repo, token, os.urandom(40 * MIB))  # a multipart upload to S3 (8 MiB parts)
        client = weed.client()

        def uploads() -> list:
            return list(client._list_multipart_uploads("gitd-sweep", prefix="lfs/").uploads)

        try:
            wait_for(uploads, timeout=30, what="the multipart upload to start")
            crash(d)
        finally:
            put.close()
        assert uploads()
        _, dry, _ = d.cli("maintenance", "sweep", "--grace", "0", "--dry-run")
        assert "would remove 0 leftover(s) of interrupted work (0 bytes) and 1 unfinished LFS upload(s)" in dry
        assert uploads()
        _, real, _ = d.cli("maintenance", "sweep", "--grace", "0")
        assert "and 1 unfinished LFS upload(s)" in real
        assert not uploads()
    finally:
        weed.stop()
