"""The built-in policy plugin, tested the way a plugin author tests theirs: through the
``gitd_harness`` fixture (real store, hook chain, LFS store and repositories)."""

from __future__ import annotations

import pytest
from gitd_plugins.policy import PolicyPlugin

import gitd
from gitd.testing import LfsBytes

WEIGHTS = b"\x00\x01weights" * 100


def test_big_files_outside_lfs_are_refused_with_advice(gitd_harness):
    h = gitd_harness(PolicyPlugin, name="policy", settings={"max_blob_size": "1KiB"})
    repo = h.repo("alice/model", files={"README.md": "# model\n"})
    with pytest.raises(gitd.PushRejected, match=r'git lfs track "big\.bin"') as refused:
        h.commit(repo, {"big.bin": b"\1" * 1025})
    assert "big.bin (1.0 KiB)" in refused.value.message
    assert h.view(repo).entry(h.view(repo).head(), "big.bin") is None  # nothing moved
    h.commit(repo, {"small.bin": b"\1" * 1024})


def test_a_pointer_is_not_a_big_file_and_its_object_must_be_held(gitd_harness):
    h = gitd_harness(PolicyPlugin, name="policy", settings={"max_blob_size": 200})
    repo = h.repo("alice/model", files={"README.md": "hi\n"})
    h.commit(repo, {"weights.bin": LfsBytes(WEIGHTS)})  # stored, then committed as a pointer
    with pytest.raises(gitd.PushRejected, match="git lfs push --all origin") as refused:
        h.commit(repo, {"other.bin": LfsBytes(b"never uploaded", upload=False)})
    assert "other.bin" in refused.value.message


def test_missing_lfs_objects_pass_when_the_check_is_off(gitd_harness):
    h = gitd_harness(PolicyPlugin, name="policy", settings={"require_lfs_objects": False})
    repo = h.repo("alice/model", files={"README.md": "hi\n"})
    h.commit(repo, {"other.bin": LfsBytes(b"never uploaded", upload=False)})


def test_the_default_branch_is_protected_but_other_branches_are_not(gitd_harness):
    h = gitd_harness(PolicyPlugin, name="policy")
    repo = h.repo("alice/model", files={"a.txt": "1\n"})
    first = h.view(repo).head()
    h.commit(repo, {"a.txt": "2\n"})
    with pytest.raises(gitd.PushRejected, match="force-pushing to the default branch main"):
        h.update_refs(repo, [gitd.RefUpdate("refs/heads/main", h.view(repo).head(), first)])
    with pytest.raises(gitd.PushRejected, match="cannot be deleted"):
        h.update_refs(repo, [gitd.RefUpdate("refs/heads/main", h.view(repo).head(), gitd.ZERO_OID)])
    h.commit(repo, {"b.txt": "b\n"}, branch="topic")
    topic = h.view(repo).resolve("topic")
    h.update_refs(repo, [gitd.RefUpdate("refs/heads/topic", topic, first)])  # a force-push elsewhere is fine
    h.update_refs(repo, [gitd.RefUpdate("refs/heads/topic", first, gitd.ZERO_OID)])


def test_bad_settings_name_the_key(gitd_harness):
    with pytest.raises(gitd.SettingsError, match=r"plugins\.policy\.max_blob_size: expected a size"):
        gitd_harness(PolicyPlugin, name="policy", settings={"max_blob_size": "huge"})
    with pytest.raises(gitd.SettingsError, match=r"plugins\.policy\.protect_default_branch: expected true or false"):
        gitd_harness(PolicyPlugin, name="policy", settings={"protect_default_branch": "perhaps"})
    with pytest.raises(gitd.SettingsError, match=r"plugins\.policy\.max_blob_siz: unknown setting"):
        gitd_harness(PolicyPlugin, name="policy", settings={"max_blob_siz": "1MiB"})
    h = gitd_harness(PolicyPlugin, name="policy", settings={"protect_default_branch": "false"})
    assert h.plugin.protect_default_branch is False
