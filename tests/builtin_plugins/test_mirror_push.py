"""Push mirrors through the harness: after every push, the refs and the LFS objects they
point to go to the remote, as a durable job retried on failure."""

from __future__ import annotations

import hashlib
import json

import pytest
from gitd_plugins.mirror import MirrorPlugin

from gitd.testing import LfsBytes
from tests.support import Git

WEIGHTS = b"\x02push mirror weights\x03" * 2048


@pytest.fixture
def git(tmp_path) -> Git:
    return Git(tmp_path / "home")


def remote_refs(git: Git, bare) -> dict[str, str]:
    out = git.out("--git-dir", str(bare), "for-each-ref", "--format=%(refname) %(objectname)")
    return dict(line.split() for line in out.splitlines())


def test_pushes_are_mirrored_with_their_lfs_objects_and_deletions(gitd_harness, git, tmp_path):
    target = tmp_path / "target.git"
    git("init", "-q", "--bare", str(target))
    h = gitd_harness(MirrorPlugin, name="mirror")
    repo = h.repo("alice/model", files={"README.md": "# model\n"})
    code, out = h.cli("mirror", "add", "alice/model", f"file://{target}", "--push")
    assert code == 0 and out.startswith("push mirror ")
    h.commit(repo, {"model.bin": LfsBytes(WEIGHTS)}, message="weights")
    h.commit(repo, {"x.txt": "x"}, branch="dev")
    h.run_jobs()
    ours = h.view(repo).refs()
    assert remote_refs(git, target) == ours
    oid = hashlib.sha256(WEIGHTS).hexdigest()
    assert (target / "lfs" / "objects" / oid[:2] / oid[2:4] / oid).read_bytes() == WEIGHTS
    push = json.loads(h.cli("mirror", "status", "alice/model", "--json")[1])["push"][0]
    assert push["last_error"] is None and push["last_result"]["lfs_objects"] == 1
    # A deleted branch is deleted there too.
    h.update_refs(repo, [__import__("gitd").RefUpdate("refs/heads/dev", ours["refs/heads/dev"], "0" * 40)])
    h.run_jobs()
    assert "refs/heads/dev" not in remote_refs(git, target)


def test_pushes_while_one_is_queued_share_its_job(gitd_harness, git, tmp_path):
    target = tmp_path / "target.git"
    git("init", "-q", "--bare", str(target))
    h = gitd_harness(MirrorPlugin, name="mirror")
    repo = h.repo("alice/model", files={"README.md": "# model\n"})
    h.cli("mirror", "add", "alice/model", f"file://{target}", "--push")
    for i in range(3):
        h.commit(repo, {f"f{i}.txt": str(i)})
    h.run_jobs()
    pushes = [j for j in h.jobs() if j.payload.get("task") == "push"]
    assert len(pushes) == 1  # the first push queued it; the next two found it queued
    assert remote_refs(git, target)["refs/heads/main"] == h.view(repo).head()


def test_a_failing_push_mirror_is_retried_and_reports_its_error(gitd_harness, tmp_path):
    h = gitd_harness(MirrorPlugin, name="mirror", config={"jobs.max_attempts": 3})
    repo = h.repo("alice/model", files={"README.md": "# model\n"})
    h.cli("mirror", "add", "alice/model", f"file://{tmp_path}/missing.git", "--push")
    h.commit(repo, {"x.txt": "x"})
    with pytest.raises(Exception, match="listing the remote failed"):
        h.run_jobs()
    push = json.loads(h.cli("mirror", "status", "alice/model", "--json")[1])["push"][0]
    assert "does not appear to be a git repository" in push["last_error"]
