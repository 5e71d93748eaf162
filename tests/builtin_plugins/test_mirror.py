"""The built-in mirror plugin through the ``gitd_harness`` fixture (real store, hook chain,
job queue, LFS store), with local bare repositories made by the real git client as
upstreams (file URLs)."""

from __future__ import annotations

import json

import pytest
from gitd_plugins.mirror import MirrorPlugin

import gitd
from tests.mirror_support import Upstream
from tests.support import Git

WEIGHTS = b"\x00weights\x01" * 4096


@pytest.fixture
def git(tmp_path) -> Git:
    return Git(tmp_path / "home")


def harness(gitd_harness, **settings):
    return gitd_harness(MirrorPlugin, name="mirror", settings={"jitter": 0, **settings})


def status(h, name="alice/up"):
    code, out = h.cli("mirror", "status", name, "--json")
    assert code == 0, out
    return json.loads(out)["pull"]


def published(h, repo) -> dict[str, str]:
    return {ref: sha for ref, sha in gitd.RepoView.refs(h.view(h.refresh(repo))).items()}


def test_a_local_bare_repository_is_mirrored_with_its_branches_and_tags(gitd_harness, git, tmp_path):
    up = Upstream(git, tmp_path)
    up.commit({"b.txt": "on a branch\n"}, branch="dev")
    git("tag", "v1", "main", cwd=up.work)
    git("push", "-q", str(up.bare), "v1", cwd=up.work)
    h = harness(gitd_harness)
    h.user("alice")
    code, out = h.cli("mirror", "add", "alice/up", up.url)
    assert code == 0, out
    assert "created alice/up: mirror of file://" in out
    h.run_jobs(due_only=True)
    repo = h.context.find_repo("alice/up", "model")
    assert published(h, repo) == {ref: sha for ref, sha in up.refs().items()}
    st = status(h)
    assert st["last_error"] is None and st["last_success"] is not None
    assert st["last_result"]["refs_changed"] == 3 and st["last_result"]["objects"] > 0
    # The refs moved through the hook chain with via=mirror: post-receive work was queued as for a push.
    moved = [j for j in h.jobs() if j.hook == "gitd_post_receive"]
    assert moved and moved[0].payload["via"] == "mirror"
    # The next sync is scheduled (an hour later by default), not run at once.
    queued = [j for j in h.jobs("queued") if j.payload.get("task") == "sync"]
    assert len(queued) == 1 and queued[0].run_after > __import__("time").time() + 3000


def test_an_incremental_sync_fetches_only_what_is_new(gitd_harness, git, tmp_path):
    up = Upstream(git, tmp_path, {f"f{i}.txt": f"{i}\n" * 200 for i in range(50)})
    h = harness(gitd_harness)
    h.user("alice")
    h.cli("mirror", "add", "alice/up", up.url)
    h.run_jobs(due_only=True)
    first = status(h)["last_result"]
    new = up.commit({"new.txt": "one more\n"})
    h.cli("mirror", "sync", "alice/up")
    h.run_jobs(due_only=True)
    result = status(h)["last_result"]
    repo = h.context.find_repo("alice/up", "model")
    assert published(h, repo)["refs/heads/main"] == new
    assert result["refs_changed"] == 1
    assert 0 < result["objects"] <= 3 < first["objects"]  # a commit, a tree, a blob
    # Nothing new: no fetch of objects, no publish.
    h.cli("mirror", "sync", "alice/up")
    h.run_jobs(due_only=True)
    assert status(h)["last_result"].get("up_to_date") is True


def test_a_mirror_refuses_pushes_unless_writable(gitd_harness, git, tmp_path):
    up = Upstream(git, tmp_path)
    h = harness(gitd_harness)
    h.user("alice")
    h.cli("mirror", "add", "alice/up", up.url)
    h.run_jobs(due_only=True)
    repo = h.context.find_repo("alice/up", "model")
    for via in ("http", "ssh", "api"):
        with pytest.raises(gitd.PushRejected, match=r"(?s)alice/up is a mirror of file://.*Push to the upstream") as e:
            h.commit(repo, {"x.txt": "x"}, via=via)
        assert "gitd mirror set alice/up --writable" in e.value.message
    h.commit(repo, {"parquet.txt": "made by a plugin"}, branch="by-a-plugin", via="plugin")
    assert h.cli("mirror", "set", "alice/up", "--writable")[0] == 0
    h.commit(repo, {"x.txt": "x"}, branch="local", via="http")


def test_forced_updates_are_followed_or_refused_by_the_mirrors_flag(gitd_harness, git, tmp_path):
    up = Upstream(git, tmp_path)
    up.commit({"a.txt": "a\n"})
    h = harness(gitd_harness)
    h.user("alice")
    h.cli("mirror", "add", "alice/up", up.url, "--refuse-force")
    h.run_jobs(due_only=True)
    repo = h.context.find_repo("alice/up", "model")
    before = published(h, repo)["refs/heads/main"]
    rewritten = up.rewrite()
    h.cli("mirror", "sync", "alice/up")
    h.run_jobs(due_only=True)
    st = status(h)
    assert "rewrote history of refs/heads/main" in st["last_error"] and "nothing was published" in st["last_error"]
    assert published(h, repo)["refs/heads/main"] == before
    assert h.cli("mirror", "set", "alice/up", "--follow-force")[0] == 0
    h.cli("mirror", "sync", "alice/up")
    h.run_jobs(due_only=True)
    assert status(h)["last_error"] is None
    assert published(h, repo)["refs/heads/main"] == rewritten


def test_refs_deleted_upstream_are_pruned_unless_asked_not_to(gitd_harness, git, tmp_path):
    up = Upstream(git, tmp_path)
    up.commit({"b.txt": "b\n"}, branch="dev")
    h = harness(gitd_harness)
    h.user("alice")
    h.cli("mirror", "add", "alice/up", up.url)
    h.run_jobs(due_only=True)
    repo = h.context.find_repo("alice/up", "model")
    assert "refs/heads/dev" in published(h, repo)
    git("--git-dir", str(up.bare), "branch", "-D", "dev")
    h.cli("mirror", "sync", "alice/up")
    h.run_jobs(due_only=True)
    assert "refs/heads/dev" not in published(h, repo)
    assert status(h)["last_result"]["deleted"] == 1


def test_lfs_objects_are_fetched_before_the_refs_move_and_read_as_files(gitd_harness, git, tmp_path):
    up = Upstream(git, tmp_path)
    sha = up.commit({}, lfs={"model.bin": WEIGHTS})
    h = harness(gitd_harness)
    h.user("alice")
    h.cli("mirror", "add", "alice/up", up.url)
    h.run_jobs(due_only=True)
    repo = h.context.find_repo("alice/up", "model")
    view = h.view(repo)
    assert view.read(sha, "model.bin") == WEIGHTS
    assert status(h)["last_result"]["lfs_objects"] == 1


def test_a_sync_that_fails_half_way_publishes_nothing_and_resumes_without_fetching_again(
        gitd_harness, git, tmp_path):
    up = Upstream(git, tmp_path)
    h = harness(gitd_harness)
    h.user("alice")
    h.cli("mirror", "add", "alice/up", up.url)
    h.run_jobs(due_only=True)
    repo = h.context.find_repo("alice/up", "model")
    before = published(h, repo)
    other = b"other weights" * 1000
    up.commit({f"f{i}.txt": str(i) for i in range(30)}, lfs={"a.bin": WEIGHTS, "b.bin": other}, store_lfs=False)
    up.store_lfs(WEIGHTS)  # b.bin's object is missing upstream
    h.cli("mirror", "sync", "alice/up")
    h.run_jobs(due_only=True)
    st = status(h)
    assert "1 of 2 LFS object(s) could not be fetched, so nothing was published" in st["last_error"]
    assert published(h, repo) == before
    assert h.context.writer(repo).lfs_missing([__import__("hashlib").sha256(WEIGHTS).hexdigest()]) == set()
    up.store_lfs(other)
    h.cli("mirror", "sync", "alice/up")
    h.run_jobs(due_only=True)
    st = status(h)
    assert st["last_error"] is None
    assert published(h, repo) == up.refs()
    assert st["last_result"]["objects"] == 0  # the git objects were fetched the first time
    assert st["last_result"]["lfs_objects"] == 1 and st["last_result"]["lfs_held"] == 1


def test_an_unreachable_remote_is_reported_and_retried_sooner(gitd_harness, tmp_path):
    h = harness(gitd_harness, retry_min="30s")
    h.user("alice")
    h.cli("mirror", "add", "alice/gone", f"file://{tmp_path}/nothing-here.git")
    h.run_jobs(due_only=True)
    st = status(h, "alice/gone")
    assert "failed: fatal:" in st["last_error"] and "nothing-here.git" in st["last_error"]
    assert "does not appear to be a git repository" in st["last_error"]
    assert st["failures"] == 1 and st["last_success"] is None
    queued = [j for j in h.jobs("queued") if j.payload.get("task") == "sync"]
    assert len(queued) == 1
    assert queued[0].run_after - __import__("time").time() < 60  # retry_min (30s) plus a little


def test_credentials_are_stored_encrypted_and_never_shown(gitd_harness, monkeypatch):
    h = harness(gitd_harness, allow_local_networks=True)
    h.user("alice")
    monkeypatch.setenv("MIRROR_TOKEN", "s3cr3t-token-value")
    code, out = h.cli("mirror", "add", "alice/up", "http://127.0.0.1:9/x.git", "--token-env", "MIRROR_TOKEN",
                      "--interval", "0")
    assert code == 0, out
    code, listing = h.cli("mirror", "list")
    code, shown = h.cli("mirror", "status", "alice/up", "--json")
    assert "s3cr3t" not in out + listing + shown
    assert json.loads(shown)["pull"]["credentials"] is True
    answer = h.http("GET", "/api/models/alice/up/mirror", user="alice")
    assert answer.status == 200 and b"s3cr3t" not in answer.body
    stored = h.storage.query("SELECT credentials FROM {prefix}pull")[0]["credentials"]
    assert "s3cr3t" not in stored and h.context.secrets.decrypt(stored).find(b"s3cr3t-token-value") > 0
    assert (h.root / "secrets" / "plugins.key").stat().st_mode & 0o777 == 0o600
    # A password in the URL is taken out of it.
    h.cli("mirror", "add", "alice/other", "http://bob:hunter2@127.0.0.1:9/y.git", "--interval", "0")
    row = h.storage.query("SELECT url, credentials FROM {prefix}pull WHERE repo = 'alice/other'")[0]
    assert row["url"] == "http://127.0.0.1:9/y.git" and "hunter2" not in row["credentials"]


def test_mirror_remove_stops_a_pull_or_a_push_mirror_and_keeps_the_repository(gitd_harness, git, tmp_path):
    up = Upstream(git, tmp_path)
    target = tmp_path / "target.git"
    git("init", "-q", "--bare", str(target))
    h = harness(gitd_harness)
    h.user("alice")
    h.cli("mirror", "add", "alice/up", up.url)
    h.run_jobs(due_only=True)
    repo = h.context.find_repo("alice/up", "model")
    mirrored = published(h, repo)
    code, out = h.cli("mirror", "add", "alice/up", f"file://{target}", "--push")
    assert code == 0, out
    push_id = json.loads(h.cli("mirror", "status", "alice/up", "--json")[1])["push"][0]["id"]

    # a push mirror: by its id, only on its own repository
    other = h.repo("alice/other", files={"a.txt": "a"})
    assert h.cli("mirror", "remove", "alice/other", "--push", str(push_id)) == (1, "")
    assert h.cli("mirror", "remove", "alice/up", "--push", "nope")[0] == 1
    code, out = h.cli("mirror", "remove", "alice/up", "--push", str(push_id))
    assert code == 0 and out == f"push mirror {push_id} of alice/up to file://{target} removed\n"
    shown = json.loads(h.cli("mirror", "status", "alice/up", "--json")[1])
    assert shown["push"] == [] and shown["pull"] is not None

    # the pull mirror: the repository keeps its refs, takes pushes again, and is no longer synced
    code, out = h.cli("mirror", "remove", "alice/up")
    assert code == 0 and out == (f"alice/up no longer mirrors {up.url}; it keeps what it has and takes pushes\n")
    assert published(h, repo) == mirrored
    assert json.loads(h.cli("mirror", "status", "alice/up", "--json")[1]) == {
        "repo": "alice/up", "type": "model", "pull": None, "push": []}
    assert h.cli("mirror", "list") == (0, "no mirrors\n")
    up.commit({"late.txt": "after the removal\n"})
    h.commit(repo, {"x.txt": "ours now"}, via="http")  # no longer refused as a mirror
    h.run_jobs()  # the sync that was scheduled finds no mirror and does nothing
    view = h.view(h.refresh(repo))
    assert {e.path for e in view.files(view.head())} >= {"x.txt"} and view.entry(view.head(), "late.txt") is None
    assert not [j for j in h.jobs() if j.payload.get("task") in ("sync", "push") and j.state in ("queued", "failed")]
    assert h.cli("mirror", "remove", "alice/up")[0] == 1  # nothing left to remove
    assert h.cli("mirror", "sync", "alice/up")[0] == 1
    assert h.view(other).head() is not None
