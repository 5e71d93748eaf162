"""When mirror syncs run: the per-mirror task chain, the global cap, manual syncs, the
safety net for lost chains; and the mirror's life with its repository."""

from __future__ import annotations

import contextlib
import io
import time

import pytest
from gitd_plugins.mirror import MirrorPlugin

from tests.mirror_support import Upstream
from tests.support import Git


@pytest.fixture
def git(tmp_path) -> Git:
    return Git(tmp_path / "home")


def harness(gitd_harness, **settings):
    return gitd_harness(MirrorPlugin, name="mirror", settings={"jitter": 0, **settings})


def sync_jobs(h, state="queued"):
    return [j for j in h.jobs(state) if j.payload.get("task") == "sync"]


def task(job) -> dict:
    return job.payload["payload"]


def make_due(h, job) -> None:
    h.parts.store.db.execute("UPDATE jobs SET run_after = 0 WHERE id = ?", [job.id])


def test_each_sync_queues_the_next_one_interval_plus_jitter_later(gitd_harness, git, tmp_path):
    up = Upstream(git, tmp_path)
    h = harness(gitd_harness, jitter="10m")
    h.user("alice")
    h.cli("mirror", "add", "alice/up", up.url, "--interval", "2h")
    h.run_jobs(due_only=True)
    queued = sync_jobs(h)
    assert len(queued) == 1
    wait = queued[0].run_after - time.time()
    assert 7200 - 60 < wait < 7200 + 600 + 60
    # A manual sync runs now, and the chain moves on from it: the old scheduled task is stale.
    h.cli("mirror", "sync", "alice/up")
    h.run_jobs(due_only=True)
    stale, = [j for j in sync_jobs(h) if j.id == queued[0].id]
    fresh = [j for j in sync_jobs(h) if j.id != stale.id]
    assert len(fresh) == 1 and task(fresh[0])["gen"] == task(stale)["gen"] + 1
    attempts = h.storage.query("SELECT last_attempt FROM {prefix}pull")[0]["last_attempt"]
    make_due(h, stale)
    assert h.run_jobs(due_only=True) == 1  # the stale task runs, does nothing and queues nothing
    assert [j.id for j in sync_jobs(h)] == [fresh[0].id]
    assert h.storage.query("SELECT last_attempt FROM {prefix}pull")[0]["last_attempt"] == attempts


def test_an_interval_of_zero_syncs_only_when_asked(gitd_harness, git, tmp_path):
    up = Upstream(git, tmp_path)
    h = harness(gitd_harness)
    h.user("alice")
    h.cli("mirror", "add", "alice/up", up.url, "--interval", "0")
    h.run_jobs()
    assert sync_jobs(h) == []
    assert h.storage.query("SELECT last_success FROM {prefix}pull")[0]["last_success"] is not None


def test_syncs_beyond_the_cap_wait_without_holding_a_worker(gitd_harness, git, tmp_path):
    up = Upstream(git, tmp_path)
    h = harness(gitd_harness, max_concurrent=1)
    h.user("alice")
    h.cli("mirror", "add", "alice/up", up.url)
    slots = h.plugin.scheduler._slots
    assert slots.acquire(blocking=False)  # another sync holds the only slot
    try:
        h.run_jobs(due_only=True)
        waiting = sync_jobs(h)
        assert len(waiting) == 1 and task(waiting[0]).get("wait") == 1
        assert 4 < waiting[0].run_after - time.time() < 16
        assert h.storage.query("SELECT last_attempt FROM {prefix}pull")[0]["last_attempt"] is None
    finally:
        slots.release()
    make_due(h, waiting[0])
    h.run_jobs(due_only=True)  # the waiting task runs once the slot is free
    assert h.storage.query("SELECT last_success FROM {prefix}pull")[0]["last_success"] is not None


def test_a_manual_sync_waits_for_the_running_one(gitd_harness, git, tmp_path):
    up = Upstream(git, tmp_path)
    h = harness(gitd_harness)
    h.user("alice")
    h.cli("mirror", "add", "alice/up", up.url, "--interval", "0")
    h.run_jobs()
    repo = h.context.find_repo("alice/up", "model")
    lock = h.plugin.scheduler._lock(repo.id)
    with lock:
        h.cli("mirror", "sync", "alice/up")
        h.run_jobs(due_only=True)
        again = sync_jobs(h)
        assert len(again) == 1 and task(again[0]).get("wait") == 1 and "manual" in task(again[0])


def test_a_lost_chain_is_restarted_when_the_plugin_loads(gitd_harness, git, tmp_path):
    up = Upstream(git, tmp_path)
    h = harness(gitd_harness)
    h.user("alice")
    h.cli("mirror", "add", "alice/up", up.url, "--interval", "1h")
    h.run_jobs(due_only=True)
    for job in sync_jobs(h):
        h.parts.jobs.discard(job.id)  # the chain is lost (its task failed for good, say)
    h.storage.execute("UPDATE {prefix}pull SET next_run = ?", [time.time() - 3 * 3600])
    MirrorPlugin(h.context)  # the plugin loads again (the daemon restarts)
    assert len(sync_jobs(h)) == 1
    MirrorPlugin(h.context)  # and only once
    assert len(sync_jobs(h)) == 1


def test_a_deleted_repository_stops_being_mirrored_and_a_renamed_one_keeps_its_mirror(gitd_harness, git, tmp_path):
    up = Upstream(git, tmp_path)
    h = harness(gitd_harness)
    h.user("alice")
    h.cli("mirror", "add", "alice/up", up.url)
    h.cli("mirror", "add", "alice/second", up.url)
    h.run_jobs(due_only=True)
    repo = h.context.find_repo("alice/up", "model")
    h.rename(repo, "renamed")
    h.delete(h.context.find_repo("alice/second", "model"))
    h.run_jobs(due_only=True)
    assert [r["repo"] for r in h.storage.query("SELECT repo FROM {prefix}pull")] == ["alice/renamed"]
    code, out = h.cli("mirror", "status", "alice/renamed")
    assert code == 0 and "pull mirror of file://" in out


def test_bad_mirror_settings_are_refused_with_a_clear_message(gitd_harness, tmp_path):
    h = harness(gitd_harness)
    h.user("alice")
    h.repo("alice/full", files={"README.md": "mine\n"})
    cases = [
        (["alice/x", "ext::sh -c touch%20/tmp/pwned"], "not a remote URL"),
        (["alice/x", "git://example.com/x"], "http(s), ssh or file URLs"),
        (["alice/x", "ssh://-oProxyCommand=x/y"], "not a usable host"),
        (["alice/full", f"file://{tmp_path}"], "already has 1 branch(es) or tag(s)"),
        (["alice/x", "--from-hub", "https://hub.example", "--repo-id", "../etc"], "is not a hub repository id"),
        (["alice/x", "https://h.example/x", "--refs", "heads"], "mirrored refs are given as prefixes"),
        (["alice/x", "https://h.example/x", "--token-env", "NOT_SET_ANYWHERE"], "is not set"),
    ]
    for argv, message in cases:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code, _ = h.cli("mirror", "add", *argv)
        assert code == 1 and message in err.getvalue(), (argv, err.getvalue())
    assert h.storage.query("SELECT count(*) AS n FROM {prefix}pull")[0]["n"] == 0
