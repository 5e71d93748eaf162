"""LooseRefs: ref files answered without a system call while the daemon moved no ref, and never
staler than the recheck period for changes made behind its back."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from gitd.git.refs import InProcessRefChanges
from gitd.hub.gitread import RACY_NS, LooseRefs

A, B = "a" * 40, "b" * 40


def git(repo: Path, *args: str) -> None:
    env = {"PATH": os.environ["PATH"], "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    subprocess.run(["git", "--git-dir", str(repo), *args], check=True, env=env, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "r.git"
    git(path.parent, "init", "-q", "--bare", str(path))
    env = {"PATH": os.environ["PATH"], "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    tree = subprocess.run(["git", "--git-dir", str(path), "mktree"], input=b"", capture_output=True, check=True,
                          env=env).stdout.decode().strip()
    commits = []
    for message in ("one", "two", "three"):
        commits.append(subprocess.run(["git", "--git-dir", str(path), "commit-tree", tree, "-m", message],
                                      capture_output=True, check=True, env=env).stdout.decode().strip())
    path.joinpath("commits").write_text("\n".join(commits))
    return path


def commits(repo: Path) -> list[str]:
    return repo.joinpath("commits").read_text().split()


def settle() -> None:
    """Let a just-written ref file age past the racy window, so the cache may keep it."""
    time.sleep(RACY_NS / 1e9 * 2)


def test_a_ref_moved_behind_the_daemons_back_is_seen_after_the_recheck_period(repo):
    one, two, _ = commits(repo)
    refs = LooseRefs(InProcessRefChanges(), recheck=2.0)  # wide enough that a busy machine still reads twice inside it
    git(repo, "update-ref", "refs/heads/main", one)
    settle()
    assert refs.get(repo, "refs/heads/main") == one
    git(repo, "update-ref", "refs/heads/main", two)  # nobody tells the cache
    assert refs.get(repo, "refs/heads/main") == one  # answered without looking at the file
    time.sleep(2.1)
    assert refs.get(repo, "refs/heads/main") == two


def test_a_bump_makes_the_very_next_read_look_at_the_file(repo):
    one, two, _ = commits(repo)
    changes = InProcessRefChanges()
    refs = LooseRefs(changes, recheck=60)
    git(repo, "update-ref", "refs/heads/main", one)
    settle()
    assert refs.get(repo, "refs/heads/main") == one
    git(repo, "update-ref", "refs/heads/main", two)
    changes.bump()
    assert refs.get(repo, "refs/heads/main") == two
    settle()
    assert refs.get(repo, "refs/heads/main") == two
    git(repo, "update-ref", "-d", "refs/heads/main")
    changes.bump()
    assert refs.get(repo, "refs/heads/main") is None


def test_a_file_younger_than_the_racy_window_is_never_kept(repo):
    """A file rewritten within the same clock tick can keep its size, inode and times: only a file
    older than the racy window may be trusted on its stat alone."""
    refs = LooseRefs(InProcessRefChanges(), recheck=60)
    file = repo / "refs/heads/main"
    file.write_text(A + "\n")
    st = os.stat(file)
    assert refs.get(repo, "refs/heads/main") == A
    with open(file, "r+") as f:  # in place: same inode, same size
        f.write(B)
    os.utime(file, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the same mtime, as within one tick
    assert refs.get(repo, "refs/heads/main") == B


@pytest.mark.parametrize("name", ["refs/heads/../../planted", "refs/heads/main.lock", "HEAD", "refs/heads/x y",
                                  "refs//heads/main"])
def test_odd_names_are_left_to_pygit2(repo, name):
    """Each name leads to a file holding a sha: only the name check keeps the fast path off it."""
    one, _, _ = commits(repo)
    git(repo, "update-ref", "refs/heads/main", one)
    file = Path(f"{repo}/{name}")
    if not file.exists():
        file.write_text(one + "\n")
    if name == "HEAD":
        file.write_text(one + "\n")  # a detached HEAD
    settle()
    assert LooseRefs(InProcessRefChanges()).get(repo, name) is None


def test_symbolic_and_symlinked_refs_are_left_to_pygit2(repo, tmp_path):
    one, _, _ = commits(repo)
    git(repo, "update-ref", "refs/heads/main", one)
    git(repo, "symbolic-ref", "refs/heads/alias", "refs/heads/main")
    outside = tmp_path / "outside"
    outside.write_text(one + "\n")
    (repo / "refs/heads/link").symlink_to(outside)
    settle()
    refs = LooseRefs(InProcessRefChanges())
    assert refs.get(repo, "refs/heads/alias") is None
    assert refs.get(repo, "refs/heads/link") is None
    assert refs.get(repo, "refs/heads/missing") is None
