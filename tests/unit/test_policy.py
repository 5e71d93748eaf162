"""The policy plugin on a real bare repository (objects written with pygit2), including
its side of the LFS hook point, ``event.lfs_missing``."""

from __future__ import annotations

from pathlib import Path

import pygit2
import pytest
from gitd_plugins.policy import PolicyPlugin

import gitd
from gitd.config import ConfigError
from gitd.lfs.pointer import format_pointer
from gitd.plugins.events import ZERO_OID, PushEvent, RefUpdate, RepoInfo

SIG = pygit2.Signature("T", "t@example.com", 1700000000, 0)
LFS_OID = "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393"


@pytest.fixture
def repo(tmp_path: Path) -> RepoInfo:
    path = tmp_path / "1.git"
    pygit2.init_repository(str(path), bare=True, initial_head="main")
    return RepoInfo(id=1, namespace="ns", name="m", type="model", private=False, path=path)


def push(info: RepoInfo, files: dict[str, bytes], lfs_missing=None) -> PushEvent:
    repo = pygit2.Repository(str(info.path))
    builder = repo.TreeBuilder()
    for name, content in files.items():
        builder.insert(name, repo.create_blob(content), pygit2.GIT_FILEMODE_BLOB)
    new = str(repo.create_commit(None, SIG, SIG, "c", builder.write(), []))
    return PushEvent(repo=info, pusher="u", updates=[RefUpdate("refs/heads/main", ZERO_OID, new)], via="api",
                     lfs_missing=lfs_missing)


def test_pointers_to_objects_the_server_lacks_are_refused(repo):
    asked: list[set[str]] = []

    def lfs_missing(oids):
        asked.append(set(oids))
        return set(oids)

    event = push(repo, {"weights.bin": format_pointer(LFS_OID, 12345), "README.md": b"hi\n"}, lfs_missing)
    with pytest.raises(gitd.PushRejected) as info:
        PolicyPlugin({}).gitd_pre_receive(event)
    assert "weights.bin" in info.value.message and "git lfs push --all origin" in info.value.message
    assert asked == [{LFS_OID}]


def test_pointers_to_objects_the_server_has_pass(repo):
    event = push(repo, {"weights.bin": format_pointer(LFS_OID, 12345)}, lambda oids: set())
    PolicyPlugin({}).gitd_pre_receive(event)


def test_without_an_lfs_store_the_hook_point_is_skipped(repo):
    PolicyPlugin({}).gitd_pre_receive(push(repo, {"weights.bin": format_pointer(LFS_OID, 12345)}))
    event = push(repo, {"weights.bin": format_pointer(LFS_OID, 1)}, lambda oids: set(oids))
    PolicyPlugin({"require_lfs_objects": False}).gitd_pre_receive(event)


def test_a_pointer_is_not_a_big_file_but_its_content_would_be(repo):
    PolicyPlugin({"max_blob_size": 200}).gitd_pre_receive(push(repo, {"w.bin": format_pointer(LFS_OID, 10**9)}))
    with pytest.raises(gitd.PushRejected, match=r'git lfs track "w\.bin"'):
        PolicyPlugin({"max_blob_size": 200}).gitd_pre_receive(push(repo, {"w.bin": b"\1" * 201}))


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError):
        PolicyPlugin({"max_blob_size": "huge"})
    with pytest.raises(ConfigError):
        PolicyPlugin({"protect_default_branch": "perhaps"})
    assert PolicyPlugin({"protect_default_branch": "false"}).protect_default_branch is False
