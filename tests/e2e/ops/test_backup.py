"""Issue #20 §7: ``gitd backup`` of a live daemon under push load, ``gitd restore`` into a
new data directory, ``gitd doctor`` and ``git fsck`` clean there, every ref at a value it
really had and every LFS object it needs present; once the pushes stop, an incremental
backup restores to exactly the live state (refs and LFS objects, zero differences)."""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from pathlib import Path

import pytest

from tests.e2e.hook_helpers import wait_for
from tests.lfs_support import LfsClient, lfs_git, lfs_work, sha256, write_settings
from tests.support import Daemon, Git, new_daemon, run_cli

PUSHERS = 3


class PushLoad:
    """A pusher per repository (real git and git-lfs), each pushing commits with a new LFS
    file until stopped; remembers every commit that landed."""

    def __init__(self, d: Daemon, git: Git, root: Path, repos: list[str], token: str):
        self.stop = threading.Event()
        self.landed: dict[str, list[str]] = {repo: [] for repo in repos}
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._push, args=(d, git, root / f"w{i}", repo, token), daemon=True)
                        for i, repo in enumerate(repos)]

    def _push(self, d: Daemon, git: Git, work: Path, repo: str, token: str) -> None:
        lfs_work(git, work, {"weights-0.bin": os.urandom(30_000), "README.md": "0\n"})
        url = d.repo_url(repo, token=token)
        n = 0
        while not self.stop.is_set() or n < 2:
            if n:
                git.commit(work, {f"weights-{n}.bin": os.urandom(30_000), "README.md": f"{n}\n"}, message=f"p{n}")
            proc = git("push", "-q", url, "main", cwd=work, check=False, timeout=120)
            if proc.returncode != 0:
                self.errors.append(proc.stderr.decode(errors="replace"))
                return
            self.landed[repo].append(git.out("rev-parse", "HEAD", cwd=work))
            n += 1

    def __enter__(self) -> PushLoad:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(120)


def lfs_objects(data: Path) -> dict[str, str]:
    """oid -> sha256 of the file, for every LFS object under a data directory (local backend)."""
    out = {}
    for path in sorted((data / "lfs" / "objects").glob("*/*/*")):
        out[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def refs(git: Git, path: Path) -> dict[str, str]:
    text = git.out("--git-dir", str(path), "for-each-ref", "--format=%(refname) %(objectname)")
    return dict(line.split(" ") for line in text.splitlines())


def restored(root: Path, backup: Path, name: str) -> Daemon:
    data = root / name / "data"
    code, out, err = run_cli(data, "restore", str(backup), check=False)
    assert code == 0, out + err
    code, out, err = run_cli(data, "doctor", check=False)
    assert code == 0 and out.strip().endswith("0 problem(s) found, 0 repaired"), out + err
    return Daemon(data=data, log_path=root / name / "gitd.log").start()


def test_backup_under_push_load_restores_whole_and_incremental_backup_restores_exactly(make_daemon, git: Git,
                                                                                       tmp_path):
    lfs_git(git)
    d = make_daemon()
    user, token = d.user()
    repos = [d.repo(user) for _ in range(PUSHERS)]
    backup = tmp_path / "backup"
    with PushLoad(d, git, tmp_path, repos, token) as load:
        wait_for(lambda: all(len(c) >= 2 for c in load.landed.values()), timeout=120, what="pushes to land")
        created_during = d.repo(user)
        _, out, _ = d.cli("backup", str(backup))
    assert not load.errors, load.errors
    assert "backed up" in out

    first = restored(tmp_path, backup, "r1")
    try:
        for repo in repos:
            path = first.repo_path(repo)
            git("--git-dir", str(path), "fsck", "--full", "--strict")
            head = refs(git, path)["refs/heads/main"]
            assert head in load.landed[repo], "a ref the live repository never had"
            # Every LFS object the restored head needs is there: a clone from the restored daemon checks out.
            clone = tmp_path / f"clone-{repo.replace('/', '-')}"
            git("clone", "-q", first.repo_url(repo, token=token), str(clone))
            assert git.out("rev-parse", "HEAD", cwd=clone) == head
            n = load.landed[repo].index(head)
            assert all((clone / f"weights-{i}.bin").stat().st_size == 30_000 for i in range(n + 1))
        assert created_during in first.cli("repo", "list")[1]
    finally:
        first.stop()

    # No more pushes: an incremental backup restores exactly what the daemon has.
    _, out, _ = d.cli("backup", str(backup))
    second = restored(tmp_path, backup, "r2")
    try:
        for repo in [*repos, created_during]:
            assert refs(git, second.repo_path(repo)) == refs(git, d.repo_path(repo))
        assert lfs_objects(second.data) == lfs_objects(d.data)
        assert len(lfs_objects(d.data)) >= PUSHERS * 2
        # The restored daemon serves and takes pushes.
        work = tmp_path / "w0"
        git.commit(work, {"after.txt": "restored\n"}, message="after the restore")
        git("push", "-q", second.repo_url(repos[0], token=token), "main", cwd=work)
        git("clone", "-q", second.repo_url(repos[0], token=token), str(tmp_path / "after"))
        assert (tmp_path / "after" / "after.txt").read_text() == "restored\n"
    finally:
        second.stop()


@pytest.mark.s3
def test_backup_of_s3_lfs_is_incremental_by_listing_and_restores_into_a_new_bucket(tmp_path, seaweed, git: Git):
    d = new_daemon(tmp_path / "d")
    write_settings(d.data, seaweed.gitd_settings("gitd-backup-src", presign=False))
    d.start()
    try:
        user, token = d.user()
        repo = d.repo(user)
        client = LfsClient(d, repo, token)
        first = [os.urandom(20_000) for _ in range(3)]
        for data in first:
            assert client.upload(data).status == 200
        backup = tmp_path / "backup"
        _, out, _ = d.cli("backup", str(backup))
        assert "3 copied now" in out
        later = os.urandom(30_000)
        assert client.upload(later).status == 200
        _, out, _ = d.cli("backup", str(backup))
        assert "4 LFS objects (1 copied now, 30000 bytes)" in out  # only what the listing shows is new
    finally:
        d.stop()
    # A new data directory whose configuration names another bucket: the objects go there.
    data = tmp_path / "r" / "data"
    data.mkdir(parents=True)
    shutil.copy(backup / "gitd.toml", tmp_path / "src.toml")
    (backup / "gitd.toml").write_text((tmp_path / "src.toml").read_text().replace("gitd-backup-src", "gitd-backup-new"))
    seaweed.make_bucket("gitd-backup-new")
    code, out, err = run_cli(data, "restore", str(backup), check=False)
    assert code == 0 and "4 LFS objects (4 stored, 0 already there)" in out, out + err
    r = Daemon(data=data, log_path=tmp_path / "r" / "gitd.log").start()
    try:
        for blob in [*first, later]:
            assert LfsClient(r, repo, token).download(sha256(blob), len(blob)) == blob
    finally:
        r.stop()
