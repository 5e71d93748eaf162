"""Bounded, resumable tree walks (RepoReader.walk): trees are client data, a few objects can
describe billions of paths."""

from __future__ import annotations

from pathlib import Path

import pygit2
import pytest

from gitd.errors import BadRequest
from gitd.git.refs import InProcessRefChanges
from gitd.hub.gitread import RepoReader


def tree_bomb(repo: pygit2.Repository, width: int, depth: int) -> str:
    """A commit whose tree lists width**depth files with depth+1 objects: every folder's entries
    all point at the same subtree."""
    blob = repo.create_blob(b"x\n")
    node, mode = blob, pygit2.GIT_FILEMODE_BLOB
    for _ in range(depth):
        builder = repo.TreeBuilder()
        for i in range(width):
            builder.insert(f"e{i:03d}", node, mode)
        node, mode = builder.write(), pygit2.GIT_FILEMODE_TREE
    sig = pygit2.Signature("t", "t@example.com", 0, 0)
    return str(repo.create_commit(None, sig, sig, "bomb\n", node, []))


@pytest.fixture
def bare(tmp_path: Path) -> tuple[Path, pygit2.Repository]:
    path = tmp_path / "r.git"
    return path, pygit2.init_repository(str(path), bare=True)


def test_regression_a_tree_bomb_walk_stops_at_its_limit(bare):
    """GET /api/models/{repo} walked a whole tree: 10**10 paths from 10 objects grew RSS without bound."""
    path, repo = bare
    commit = tree_bomb(repo, 10, 10)
    walk = RepoReader(InProcessRefChanges()).walk(path, commit, recursive=True, limit=500, files_only=True)
    assert walk.truncated and walk.more
    assert 0 < len(walk.entries) <= 500 and walk.visited <= 500
    assert all(e.kind == "file" for e in walk.entries)


def test_a_walk_resumes_after_its_last_entry_and_pages_cover_the_tree_once(bare):
    path, repo = bare
    commit = tree_bomb(repo, 3, 4)  # 81 files, 39 folders
    reader = RepoReader(InProcessRefChanges())
    whole = reader.walk(path, commit, recursive=True)
    assert not whole.truncated and len(whole.entries) == 81 + 39
    paged, cursor, pages = [], None, 0
    while True:
        walk = reader.walk(path, commit, recursive=True, limit=7, after=cursor)
        paged += walk.entries
        pages += 1
        if not walk.more:
            break
        cursor = walk.resume
    assert [e.path for e in paged] == [e.path for e in whole.entries]
    assert pages == -(-len(paged) // 7)
    # Under a folder, and not recursive: the same rules.
    top = reader.walk(path, commit, "e001", recursive=False, limit=2)
    rest = reader.walk(path, commit, "e001", recursive=False, limit=2, after=top.resume)
    assert [e.path for e in top.entries + rest.entries] == ["e001/e000", "e001/e001", "e001/e002"]


def test_long_paths_cost_more_of_the_budget(bare):
    path, repo = bare
    blob = repo.create_blob(b"x")
    builder = repo.TreeBuilder()
    for i in range(100):
        builder.insert(f"{i:03d}" + "n" * 1000, blob, pygit2.GIT_FILEMODE_BLOB)
    sig = pygit2.Signature("t", "t@example.com", 0, 0)
    commit = str(repo.create_commit(None, sig, sig, "m\n", builder.write(), []))
    walk = RepoReader(InProcessRefChanges()).walk(path, commit, recursive=True, limit=100)
    assert walk.truncated and len(walk.entries) == 25  # 1003-character paths count 1 + 3 each


@pytest.mark.parametrize("cursor", ["not base64!", "eDpmb28", "Zjo"])
def test_a_bad_cursor_is_a_bad_request(bare, cursor):
    path, repo = bare
    commit = tree_bomb(repo, 2, 2)
    with pytest.raises(BadRequest):
        RepoReader(InProcessRefChanges()).walk(path, commit, recursive=True, after=cursor)
