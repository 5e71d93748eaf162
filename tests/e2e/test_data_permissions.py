"""The data directory is private to the daemon's user, whatever the umask: repositories, LFS
objects, gitd.db (token hashes) and gitd.toml (the S3 secret) are nobody else's to read."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lfs_support import Backend, lfs_git, lfs_work, random_bytes, sha256
from tests.support import Daemon, run_cli, settings_env


@contextlib.contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def open_to_others(root: Path) -> list[str]:
    """Every file and directory under ``root`` (itself included) with a group or other
    permission bit, as 'mode path'."""
    found = []
    for path in [root, *root.rglob("*")]:
        st = path.lstat()
        if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o077:
            found.append(f"{stat.S_IMODE(st.st_mode):04o} {path.relative_to(root)}")
    return found


def serve(data: Path, settings: dict[str, object] | None = None) -> subprocess.CompletedProcess:
    """``gitd serve`` expected to refuse at once (a daemon that starts is stopped after 60 s)."""
    return subprocess.run([sys.executable, "-m", "gitd.cli", "--data", str(data), "serve", "--http", "127.0.0.1:0",
                           "--ssh", ""], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **settings_env(settings)})


def test_regression_everything_in_the_data_dir_is_private_under_umask_022(make_daemon, git, tmp_path, have_tool):
    have_tool("git-lfs")
    with umask(0o022):  # the usual umask: the daemon and the in-process commands inherit it
        d: Daemon = make_daemon()
        user, token = d.user()
        repo = d.repo(user)
        git = lfs_git(git)
        big = random_bytes(300_000)
        work = lfs_work(git, tmp_path / "work", {"weights.bin": big, "README.md": b"# card\n"})
        git("push", "-q", d.repo_url(repo, token=token), "main", cwd=work)
        git.commit(work, {"more.txt": "x\n" * 1000}, message="second")
        git("push", "-q", d.repo_url(repo, token=token), "main", cwd=work)
        assert Backend("local", d).stored(sha256(big))
        d.cli("repo", "create", f"{user}/second", "--type", "dataset")
        running = open_to_others(d.data)
        d.stop()
    assert running == []
    assert open_to_others(d.data) == []
    assert stat.S_IMODE(d.data.stat().st_mode) == 0o700
    assert stat.S_IMODE((d.data / "gitd.db").stat().st_mode) == 0o600


def test_regression_serve_refuses_a_data_dir_other_users_can_enter(tmp_path):
    data = tmp_path / "data"
    run_cli(data, "init", str(data))
    data.chmod(0o755)
    (data / "gitd.db").chmod(0o644)  # as an older gitd left it
    refused = serve(data)
    assert refused.returncode == 1
    [line] = refused.stderr.splitlines()
    assert "open to other users (mode 0755)" in line and f"chmod -R go-rwx {data}" in line
    assert "shared_data_dir" in line
    assert stat.S_IMODE(data.stat().st_mode) == 0o755  # refused before it touched anything

    # `gitd init` makes what is there private; then the daemon starts.
    _, out, _ = run_cli(data, "init", str(data))
    assert "private to their owner" in out
    assert open_to_others(data) == []
    d = Daemon(data=data, log_path=tmp_path / "gitd.log").start()
    d.stop()


def test_a_shared_data_dir_is_served_when_the_setting_allows_it(tmp_path):
    data = tmp_path / "data"
    run_cli(data, "init", str(data))
    data.chmod(0o750)
    d = Daemon(data=data, log_path=tmp_path / "gitd.log", extra_env=settings_env({"server.shared_data_dir": True}))
    d.start()
    d.stop()
    assert stat.S_IMODE(data.stat().st_mode) == 0o750


@pytest.mark.parametrize("mode", [0o700, 0o755])
def test_serve_on_an_empty_directory_makes_it_a_private_data_dir(tmp_path, mode):
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(mode)  # what `mkdir` gave it: nothing in it to protect yet
    d = Daemon(data=data, log_path=tmp_path / "gitd.log").start()
    d.stop()
    assert open_to_others(data) == []
