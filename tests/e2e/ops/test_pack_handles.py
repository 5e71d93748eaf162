"""Issue #20 §2: after ``git gc --auto`` (which pushes trigger: each push of 100 objects or
more keeps its pack) the daemon's pygit2 handles must let go of the packs gc deleted, or
multi-GB repositories take twice their disk until a restart."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.e2e.hook_helpers import wait_for
from tests.e2e.rawhttp import basic, request
from tests.support import Daemon, Git


def deleted_packs(pid: int, repo: Path) -> dict[str, int]:
    """Deleted pack files of ``repo`` the process still holds (open or mapped): path -> size."""
    prefix = f"{repo}/objects/pack/"
    held: dict[str, int] = {}
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(prefix) and target.endswith(" (deleted)"):
            try:
                held[target] = os.stat(fd).st_size
            except OSError:
                held[target] = 0
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith(prefix) and fields[5].endswith(" (deleted)"):
            held.setdefault(fields[5], 0)
    return held


def push_pack(git: Git, work: Path, url: str, n: int) -> None:
    """A push of over 100 objects, which receive-pack keeps as a pack."""
    git.commit(work, {f"d{n}/f{i}.txt": f"{n}-{i}-{os.urandom(8).hex()}\n" for i in range(120)}
               | {f"d{n}/big.bin": os.urandom(2 * 1024 * 1024)}, message=f"push {n}")
    git("push", "-q", url, "main", cwd=work)


def read_everything(d: Daemon, repo: str, token: str, n: int) -> None:
    """Hub reads that open the repository on the event loop and on worker threads."""
    for _ in range(3):
        assert request(d.url, "GET", f"/api/models/{repo}", headers=basic(token)).status == 200
        assert request(d.url, "GET", f"/api/models/{repo}/tree/main?recursive=1", headers=basic(token)).status == 200
        for i in range(n):
            reply = request(d.url, "GET", f"/{repo}/resolve/main/d{i}/big.bin", headers=basic(token))
            assert reply.status == 200 and len(reply.body) == 2 * 1024 * 1024


def test_regression_packs_deleted_by_gc_are_let_go(make_daemon, git: Git, tmp_path):
    d = make_daemon({"hub.handle_max_age": 3.0})
    user, token = d.user()
    repo = d.repo(user)
    path = d.repo_path(repo)
    git("--git-dir", str(path), "config", "gc.autoPackLimit", "2")  # gc --auto after a few pushes
    git("--git-dir", str(path), "config", "gc.autoDetach", "false")
    url = d.repo_url(repo, token=token)
    work = git.init_work(tmp_path / "w")
    for n in range(2):
        push_pack(git, work, url, n)
    assert len(list((path / "objects" / "pack").glob("*.pack"))) >= 2
    read_everything(d, repo, token, 2)
    assert d.proc is not None
    push_pack(git, work, url, 2)  # receive-pack runs gc --auto: the packs are repacked into one
    wait_for(lambda: len(list((path / "objects" / "pack").glob("*.pack"))) == 1, timeout=60, what="gc --auto")
    time.sleep(1.2)  # a handle looks at its repository's packs at most once a second
    read_everything(d, repo, token, 3)  # reads right after gc reopen the repository where they run
    # Handles on threads that served no request since are let go within hub.handle_max_age.
    held = wait_for(lambda: not deleted_packs(d.proc.pid, path) or None, timeout=20,
                    what="the daemon to let go of the deleted packs")
    assert held
