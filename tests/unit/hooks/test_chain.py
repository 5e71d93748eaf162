"""HookChain.apply_updates, the entry point for API commits and mirror fetches, on a real
bare repository whose objects are written with pygit2 (no work tree), with real jobs."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pygit2
import pytest

import gitd
from gitd.compose import Parts
from gitd.config import Config
from gitd.datainit import init_data_dir
from gitd.git.refs import RefConflict, update_refs
from gitd.hooks.chain import POST_RECEIVE, HookChain
from gitd.hooks.sessions import InProcessPushSessions
from gitd.jobs.queue import ALL_PLUGINS, PermanentJobError
from gitd.paths import DataDir
from gitd.plugins.events import ZERO_OID, PushEvent, RefUpdate, RepoInfo
from gitd.plugins.host import PluginHost

AUTHOR = pygit2.Signature("API", "api@example.com", 1700000000, 0)


class ApiPlugins:
    """Vetoes commits whose message says VETO; records what it saw."""

    def __init__(self, settings):
        self.pre: list[PushEvent] = []
        self.post: list[PushEvent] = []
        self.messages: list[str] = []

    @gitd.hookimpl
    def gitd_pre_receive(self, event: PushEvent) -> None:
        self.pre.append(event)
        for update in event.updates:
            if not update.is_delete:
                message = event.repository[update.new].message
                self.messages.append(message)
                if "VETO" in message:
                    raise gitd.PushRejected("no vetoed commits here")

    @gitd.hookimpl
    def gitd_post_receive(self, event: PushEvent) -> None:
        self.post.append(event)


@pytest.fixture
def world(tmp_path: Path):
    init_data_dir(tmp_path / "data")
    data = DataDir(tmp_path / "data")
    config = Config.load(data.config_file, environ={"GITD_PLUGINS__POLICY__MAX_BLOB_SIZE": "1KiB"})
    plugins = PluginHost(config).load_entry_points()
    plugins.register("api", ApiPlugins)
    services = Parts(data, config, plugins=plugins)
    owner = services.accounts.create_user("alice")
    row = services.repos.create(owner, "model")
    yield services, services.repos.info(row), plugins.pm.get_plugin("api")
    services.close()


def commit(info: RepoInfo, message: str, parent: str | None, files: dict[str, bytes] | None = None) -> str:
    """Write a blob, tree and commit straight into the object store; returns the commit id."""
    repo = pygit2.Repository(str(info.path))
    builder = repo.TreeBuilder(repo[parent].tree) if parent else repo.TreeBuilder()
    for name, content in (files or {"file.txt": message.encode()}).items():
        builder.insert(name, repo.create_blob(content), pygit2.GIT_FILEMODE_BLOB)
    parents = [pygit2.Oid(hex=parent)] if parent else []
    return str(repo.create_commit(None, AUTHOR, AUTHOR, message, builder.write(), parents))


def head(info: RepoInfo, ref: str = "refs/heads/main") -> str:
    repo = pygit2.Repository(str(info.path))
    return str(repo.references[ref].target) if ref in repo.references else ZERO_OID


def post_jobs(services: Parts, plugin: str = "api") -> list:
    return [j for j in services.jobs.list(limit=1000) if j.hook == POST_RECEIVE and j.plugin == plugin]


def test_an_api_commit_runs_pre_receive_moves_the_ref_and_records_post_receive_jobs(world):
    services, info, plugin = world
    first = commit(info, "first", None)
    event = asyncio.run(services.chain.apply_updates(info, [RefUpdate("refs/heads/main", ZERO_OID, first)],
                                                     via="api", pusher="alice"))
    assert head(info) == first
    [seen] = plugin.pre
    assert seen.via == "api" and seen.pusher == "alice" and plugin.messages == ["first"]
    assert event.updates == [("refs/heads/main", ZERO_OID, first)]
    [job] = post_jobs(services)
    assert job.state == "queued" and job.payload["via"] == "api"
    assert job.payload["updates"] == [["refs/heads/main", ZERO_OID, first]]
    assert not [j for j in services.jobs.list() if j.plugin == ALL_PLUGINS and j.hook == POST_RECEIVE]
    # The job runs the plugin with the event it was recorded with.
    services.chain.run_job(job)
    [posted] = plugin.post
    assert (posted.via, posted.pusher, posted.updates) == ("api", "alice", event.updates)


def test_a_pre_receive_veto_stops_an_api_commit_like_a_push(world):
    services, info, _ = world
    first = commit(info, "first", None)
    asyncio.run(services.chain.apply_updates(info, [RefUpdate("refs/heads/main", ZERO_OID, first)],
                                             via="api", pusher="alice"))
    vetoed = commit(info, "VETO this", first)
    with pytest.raises(gitd.PushRejected, match="no vetoed commits here"):
        asyncio.run(services.chain.apply_updates(info, [RefUpdate("refs/heads/main", first, vetoed)],
                                                 via="mirror", pusher=None))
    assert head(info) == first
    assert len(post_jobs(services)) == 1  # only the first commit's


def test_the_policy_plugin_checks_api_commits_too(world):
    services, info, _ = world
    big = commit(info, "weights", None, {"model.bin": b"\0" * 4096})
    with pytest.raises(gitd.PushRejected, match=r"model\.bin.*\n(.*\n)*.*git lfs track"):
        asyncio.run(services.chain.apply_updates(info, [RefUpdate("refs/heads/main", ZERO_OID, big)],
                                                 via="api", pusher="alice"))
    assert head(info) == ZERO_OID and post_jobs(services) == []


def test_concurrent_api_commits_never_lose_an_update(world):
    services, info, _ = world
    base = commit(info, "base", None)
    asyncio.run(services.chain.apply_updates(info, [RefUpdate("refs/heads/main", ZERO_OID, base)],
                                             via="api", pusher="alice"))

    async def race(n: int) -> list[object]:
        # n writers build on the same head at once: compare-and-swap lets exactly one win.
        updates = [RefUpdate("refs/heads/main", base, commit(info, f"racer {i}", base)) for i in range(n)]
        return await asyncio.gather(*(services.chain.apply_updates(info, [u], via="api", pusher="alice")
                                      for u in updates), return_exceptions=True)

    results = asyncio.run(race(6))
    winners = [r for r in results if isinstance(r, PushEvent)]
    assert len(winners) == 1
    assert all(isinstance(r, RefConflict) for r in results if r not in winners)
    assert head(info) == winners[0].updates[0].new

    async def writer(i: int) -> None:
        # A well-behaved client retries on conflict, rebuilding on the new head.
        while True:
            parent = head(info)
            new = commit(info, f"writer {i}", parent, {f"w{i}.txt": b"x"})
            try:
                await services.chain.apply_updates(info, [RefUpdate("refs/heads/main", parent, new)],
                                                   via="api", pusher="alice")
                return
            except RefConflict:
                await asyncio.sleep(0)

    async def writers(n: int) -> None:
        await asyncio.gather(*(writer(i) for i in range(n)))

    asyncio.run(writers(6))
    repo = pygit2.Repository(str(info.path))
    messages = [c.message for c in repo.walk(repo.references["refs/heads/main"].target)]
    assert sorted(m for m in messages if m.startswith("writer")) == [f"writer {i}" for i in range(6)]
    tree = repo.references["refs/heads/main"].peel().tree
    assert all(f"w{i}.txt" in tree for i in range(6))  # every writer's file is in the final tree
    # One post-receive job per update that landed: 1 base + 1 race winner + 6 writers.
    assert len(post_jobs(services)) == 8


def test_an_intent_records_the_jobs_of_updates_that_landed_before_a_crash(world):
    services, info, _ = world
    chain: HookChain = services.chain
    first = commit(info, "first", None)
    event = PushEvent(repo=info, pusher="alice", updates=[RefUpdate("refs/heads/main", ZERO_OID, first)], via="http")
    intent = chain.record_intent(event)
    # The refs move (git receive-pack did it), then the daemon dies before post-receive.
    update_refs(info.path, event.updates)
    never = PushEvent(repo=info, pusher="alice", via="http",
                      updates=[RefUpdate("refs/heads/other", ZERO_OID, commit(info, "lost", None))])
    refused = chain.record_intent(never)  # approved, but the refs never moved
    assert post_jobs(services) == []
    jobs = {j.id: j for j in services.jobs.list()}
    assert jobs[intent].run_after > time.time() + 30  # waits, in case post-receive still comes

    chain.run_job(jobs[intent])
    chain.run_job(jobs[refused])
    [job] = post_jobs(services)
    assert job.payload["updates"] == [["refs/heads/main", ZERO_OID, first]]
    chain.run_job(jobs[intent])  # running an intent twice records nothing twice
    assert len(post_jobs(services)) == 1


def test_a_job_for_a_plugin_that_is_gone_fails_for_good(world):
    services, info, _ = world
    job_id = services.jobs.enqueue(POST_RECEIVE, "uninstalled", {"repo": info.to_dict()}, dedup_key="x")
    with pytest.raises(PermanentJobError, match="plugin uninstalled is not loaded"):
        services.chain.run_job(services.jobs.get(job_id))


def test_a_push_token_lives_only_as_long_as_its_push(world):
    services, _, _ = world
    row = services.repo_rows.list()[0]
    sessions = InProcessPushSessions(ttl=0.2)
    with sessions.open(row, principal=None, via="http") as session:  # type: ignore[arg-type]
        assert sessions.get(session.token) is session
        assert sessions.get("x" + session.token) is None and sessions.get("") is None
        time.sleep(0.3)
        assert sessions.get(session.token) is None  # expired
    with sessions.open(row, principal=None, via="http") as again:  # type: ignore[arg-type]
        token = again.token
    assert sessions.get(token) is None  # the push is over


def test_regression_post_receive_records_only_updates_pre_receive_approved(world):
    services, info, _ = world
    row = services.repo_rows.list()[0]
    first = commit(info, "first", None)
    other = commit(info, "other", None)
    sessions = InProcessPushSessions()
    approved = RefUpdate("refs/heads/main", ZERO_OID, first)
    with sessions.open(row, principal=None, via="http") as session:  # type: ignore[arg-type]
        session.approved = PushEvent(repo=info, pusher="alice", updates=[approved], via="http")
        session.intent = services.chain.record_intent(session.approved)
        update_refs(info.path, [approved])
        # What git's post-receive hook reports: plus an update nobody approved.
        services.chain.finish_push(session, [approved, RefUpdate("refs/heads/evil", ZERO_OID, other)])
    [job] = post_jobs(services)
    assert job.payload["updates"] == [list(approved)]
    assert session.intent not in {j.id for j in services.jobs.list()}  # replaced by the real jobs

    with sessions.open(row, principal=None, via="http") as unapproved:  # type: ignore[arg-type]
        services.chain.finish_push(unapproved, [RefUpdate("refs/heads/evil", ZERO_OID, other)])
    assert len(post_jobs(services)) == 1


def test_a_pre_receive_check_that_hangs_refuses_the_push_in_time(world):
    services, info, _ = world
    release = threading.Event()

    class Hangs:
        @gitd.hookimpl
        def gitd_pre_receive(self, event):
            release.wait(30)

    services.plugins.register("hangs", Hangs())
    chain = HookChain(services.plugins, services.jobs, services.repo_rows, ref_changes=services.ref_changes,
                      pre_receive_timeout=0.3)
    first = commit(info, "first", None)
    started = time.monotonic()
    with pytest.raises(gitd.PushRejected, match="took too long"):
        asyncio.run(chain.apply_updates(info, [RefUpdate("refs/heads/main", ZERO_OID, first)], via="api",
                                        pusher="alice"))
    assert time.monotonic() - started < 5
    assert head(info) == ZERO_OID
    release.set()


def test_bookkeeping_after_refs_moved_touches_the_repo_and_gives_an_unborn_head_the_pushed_branch(world):
    services, info, _ = world
    chain: HookChain = services.chain
    services.store.db.execute("UPDATE repos SET updated_at = '2000-01-01T00:00:00.000Z' WHERE id = ?", [info.id])
    dev = commit(info, "dev", None)
    update_refs(info.path, [RefUpdate("refs/heads/dev", ZERO_OID, dev)])
    moved = chain.refs_moved(info, [RefUpdate("refs/heads/dev", ZERO_OID, dev)])
    row = services.repo_rows.by_id(info.id)
    assert moved.default_branch == "dev" and row.default_branch == "dev"
    assert row.updated_at > "2000-01-01T00:00:00.000Z"
    assert pygit2.Repository(str(info.path)).head.name == "refs/heads/dev"
    # HEAD names a branch that exists now: nothing more to do.
    assert chain.refs_moved(moved, [RefUpdate("refs/heads/dev", dev, commit(info, "more", dev))]) is moved
    # A repository deleted meanwhile: nothing to keep, and no error.
    services.store.db.execute("DELETE FROM repos WHERE id = ?", [info.id])
    assert chain.refs_moved(moved, [RefUpdate("refs/heads/x", ZERO_OID, dev)]) is moved
