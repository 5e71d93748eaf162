"""The daemon on the standard library's event loop (``server.event_loop = "asyncio"``);
the rest of the suite runs on the default, uvloop."""

from __future__ import annotations

from tests.lfs_support import MIB, lfs_git, lfs_work, random_bytes, sha256, sha256_file


def test_stdlib_event_loop_serves_git_lfs_and_ranges(make_daemon, git, tmp_path):
    d = make_daemon(settings={"server.event_loop": "asyncio"})
    assert "(event loop: asyncio)" in d.log()
    git = lfs_git(git)
    user, token = d.user()
    repo = d.repo(user)
    files = {"model.bin": random_bytes(3 * MIB + 5), "README.md": b"# m\n"}
    work = lfs_work(git, tmp_path / "work", files)
    git("push", d.repo_url(repo, token=token), "main", cwd=work)
    clone = tmp_path / "clone"
    git("clone", "-q", d.repo_url(repo, token=token), str(clone))  # LFS objects sent with sendfile(2)
    for name, data in files.items():
        assert sha256_file(clone / name) == sha256(data), name
