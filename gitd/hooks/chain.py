"""The one hook chain every ref update goes through, whatever path it came by.

* git pushes (HTTP, SSH): git's pre-receive hook calls the daemon's hook API, which
  calls ``run_pre_receive`` and ``record_intent`` here; git's post-receive hook calls it
  again once the refs moved, and ``finish_push`` records the post-receive jobs (before
  receive-pack exits, so before the pusher gets the answer);
* everything else that moves refs (API commits, mirror fetches) calls
  ``apply_updates``, which runs the same steps around an atomic ref update.

``pre_receive`` runs the plugins in-line and may veto; ``post_receive`` only records
one durable job per plugin, so plugins never sit on the push's critical path.

Durability: before any ref moves, ``record_intent`` stores a deferred "intent" job
with the approved updates. ``post_receive`` replaces it with the real jobs in one
transaction. If the daemon dies in between, the intent runs later, finds which
updates actually landed, and records their jobs then: post-receive work is never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import secrets
from collections.abc import Iterable
from typing import Any

from gitd.errors import PushRejected
from gitd.git.quarantine import ObjectQuarantine
from gitd.git.refs import RefChanges, head_left_unborn, landed_updates, point_unborn_head, update_refs
from gitd.hooks.sessions import PushSession
from gitd.jobs.queue import ALL_PLUGINS, Job, JobQueue, PermanentJobError
from gitd.jobs.threads import ThreadPool
from gitd.plugins.events import (
    VIA,
    PushEvent,
    RefUpdate,
    RepoCreated,
    RepoDeleted,
    RepoInfo,
    RepoRenamed,
    TaskEvent,
    VisibilityChanged,
)
from gitd.plugins.host import PluginHost
from gitd.plugins.view import RepoViews
from gitd.store import Repos

log = logging.getLogger("gitd.hooks")

POST_RECEIVE = "gitd_post_receive"
PRE_RECEIVE = "gitd_pre_receive"
REPO_CREATED = "gitd_repo_created"
REPO_DELETED = "gitd_repo_deleted"
REPO_RENAMED = "gitd_repo_renamed"
VISIBILITY_CHANGED = "gitd_repo_visibility_changed"
TASK = "gitd_task"
# Lifecycle hooks: recorded as one job for all plugins (the process recording it, such as
# the CLI, may not know the daemon's plugins), with the event class each one carries.
LIFECYCLE: dict[str, type[RepoCreated | RepoDeleted | RepoRenamed | VisibilityChanged]] = {
    REPO_CREATED: RepoCreated, REPO_DELETED: RepoDeleted, REPO_RENAMED: RepoRenamed,
    VISIBILITY_CHANGED: VisibilityChanged,
}

# How long an intent waits before it is acted on: longer than git takes between a
# successful pre-receive and its post-receive hook (moving the quarantined objects in
# and updating the refs), so it only ever does anything after a crash ([hooks] intent_grace).
INTENT_GRACE = 60.0

PLUGIN_FAILED = (
    "push refused: a server-side check failed with an internal error. Nothing was changed.\n"
    "Try again; if it keeps failing, ask the server administrator to look at the server log."
)
PLUGINS_BROKEN = (
    "push refused: the server's push checks are not all available. Nothing was changed.\n"
    "Ask the server administrator to look at the server log."
)
PRE_RECEIVE_TIMEOUT = "push refused: server-side checks took too long. Nothing was changed."


def updates_key(updates: Iterable[RefUpdate]) -> str:
    """What makes a push's post-receive job unique: its ref updates, each with old and new commit."""
    return hashlib.sha1(json.dumps(sorted(list(u) for u in updates)).encode()).hexdigest()


class HookChain:
    def __init__(self, plugins: PluginHost, jobs: JobQueue, repo_rows: Repos, *, ref_changes: RefChanges,
                 enabled: bool = True, pre_receive_timeout: float = 120.0, views: RepoViews | None = None,
                 intent_grace: float = INTENT_GRACE):
        self.plugins = plugins
        self.views = views
        self.ref_changes = ref_changes
        self.jobs = jobs
        self.repo_rows = repo_rows
        self.enabled = enabled
        self.pre_receive_timeout = pre_receive_timeout
        self.intent_grace = intent_grace
        self.threads = ThreadPool("gitd-pre-receive")

    def bind(self, event: PushEvent) -> PushEvent:
        """The event with what plugins read through it: repository views and the LFS check."""
        if self.views is None or event.views is not None:
            return event
        views, repo_id = self.views, event.repo.id

        def lfs_missing(oids: Iterable[str]) -> set[str]:
            return views.lfs_missing(repo_id, oids)

        return dataclasses.replace(event, views=views, lfs_missing=event.lfs_missing or lfs_missing)

    # -- pre-receive ---------------------------------------------------------------------------
    def pre_receive(self, event: PushEvent) -> None:
        """Run every pre-receive plugin; raises PushRejected to refuse the push (blocking)."""
        if not self.enabled:
            return
        if self.plugins.load_errors:
            log.error("push to %s refused: plugin(s) failed to load: %s", event.repo.full_name,
                      "; ".join(f"{name}: {err}" for name, err in sorted(self.plugins.load_errors.items())))
            raise PushRejected(PLUGINS_BROKEN)
        for name, call in self.plugins.implementations(PRE_RECEIVE):
            try:
                call(event=event)
            except PushRejected as exc:
                log.info("push to %s (via %s, by %s) refused by plugin %s: %s", event.repo.full_name, event.via,
                         event.pusher or "-", name, str(exc.message).splitlines()[0] if exc.message else "")
                raise
            except BaseException:  # whatever a plugin raises, even SystemExit, only fails this push
                log.exception("plugin %s failed in pre-receive for %s", name, event.repo.full_name)
                raise PushRejected(PLUGIN_FAILED) from None

    async def run_pre_receive(self, event: PushEvent) -> None:
        """``pre_receive`` on a pool thread, with the configured time limit."""
        if not self.enabled or (not self.plugins.load_errors and not self.plugins.implementations(PRE_RECEIVE)):
            return  # nothing to run: spare the push a trip through a thread
        try:
            async with asyncio.timeout(self.pre_receive_timeout):
                await self.threads.run(self.pre_receive, self.bind(event))
        except TimeoutError:
            log.error("pre-receive for %s took more than %.0fs; push refused", event.repo.full_name,
                      self.pre_receive_timeout)
            raise PushRejected(PRE_RECEIVE_TIMEOUT) from None

    # -- post-receive --------------------------------------------------------------------------
    def record_intent(self, event: PushEvent) -> int | None:
        """Before refs move: remember the approved updates, in case the daemon dies before
        ``post_receive``. Returns the intent's job id (pass it to ``post_receive``).

        Recorded when post-receive plugins would hear of the push, and when the push
        creates the first branch of a repository whose HEAD is unborn: its bookkeeping
        points HEAD at it, without which the repository cannot be cloned right (a push
        killed in post-receive lands, and its retry is "Everything up-to-date")."""
        if not self.enabled or not event.updates:
            return None
        if not self.plugins.implementations(POST_RECEIVE):
            created = [u.ref for u in event.updates if u.ref.startswith("refs/heads/") and not u.is_delete]
            if not head_left_unborn(event.repo.path, created):
                return None  # nothing a crash could lose
        key = f"{POST_RECEIVE}:{event.repo.id}:{ALL_PLUGINS}:intent-{secrets.token_hex(12)}"
        return self.jobs.enqueue(POST_RECEIVE, ALL_PLUGINS, event.to_dict(), dedup_key=key,
                                 repo_id=event.repo.id, delay=self.intent_grace)

    def post_receive(self, event: PushEvent, *, intent: int | None = None) -> list[int]:
        """Refs moved: update the repository's bookkeeping, then record one durable job per
        post-receive plugin before returning. Returns the new job ids."""
        if not event.updates:
            if intent is not None:
                self.jobs.discard(intent)
            return []
        if intent is None and not (self.enabled and self.plugins.implementations(POST_RECEIVE)):
            self._after_refs_moved(event)  # no job to record: just the bookkeeping
            return []
        # Bookkeeping, jobs and the intent's removal in one commit.
        with self.jobs.store.transaction():
            event = self._after_refs_moved(event)
            ids = self._record_post_receive(event) if self.enabled else []
            if intent is not None:
                self.jobs.discard(intent)
        return ids

    def finish_push(self, session: PushSession, reported: list[RefUpdate]) -> list[int]:
        """git's post-receive hook reported the updates that landed: record the post-receive
        work for those of them pre-receive approved."""
        event = session.approved
        if event is None:
            log.warning("post-receive for %s without an approved pre-receive; ignored", session.repo.full_name)
            return []
        approved = set(event.updates)
        landed = []
        for update in reported:
            if update in approved:
                landed.append(update)
            else:
                log.warning("post-receive for %s reported an update pre-receive never approved: %r",
                            session.repo.full_name, update)
        return self.post_receive(dataclasses.replace(event, updates=landed), intent=session.intent)

    def _record_post_receive(self, event: PushEvent) -> list[int]:
        return self._enqueue_each(POST_RECEIVE, event.repo, event.to_dict(), key=updates_key(event.updates))

    def _after_refs_moved(self, event: PushEvent) -> PushEvent:
        repo = self.refs_moved(event.repo, event.updates)
        return event if repo is event.repo else dataclasses.replace(event, repo=repo)

    def refs_moved(self, repo: RepoInfo, updates: list[RefUpdate]) -> RepoInfo:
        """Bookkeeping once refs moved: touch the repository, and give an unborn HEAD the
        first pushed branch (which becomes the default branch). Returns the repository as
        it is now. Never raises: bookkeeping must never cost a push its jobs."""
        self.ref_changes.bump()
        try:
            if not self.repo_rows.touch_id(repo.id):
                return repo  # deleted meanwhile
            created = [u.ref for u in updates if u.ref.startswith("refs/heads/") and not u.is_delete]
            branch = point_unborn_head(repo.path, created, repo.default_branch)
            if branch is None:
                return repo  # the common case: HEAD names an existing branch
            row = self.repo_rows.by_id(repo.id)
            if row is not None and branch != row.default_branch:
                self.repo_rows.update(row, default_branch=branch)
            if branch != repo.default_branch:
                return dataclasses.replace(repo, default_branch=branch)
        except Exception:
            log.exception("bookkeeping after a push to %s failed", repo.full_name)
        return repo

    # -- every other path ----------------------------------------------------------------------
    async def apply_updates(self, repo: RepoInfo, updates: list[RefUpdate], *, via: str,
                            pusher: str | None, push_options: Iterable[str] = (),
                            quarantine: ObjectQuarantine | None = None) -> PushEvent:
        """Move refs outside git receive-pack (API commits, mirrors): pre-receive, an atomic
        compare-and-swap update of every ref, then post-receive, exactly as for a push.

        Objects must already be in the repository, or in ``quarantine``: then pre-receive
        sees them there (as in a push) and they move in once it approved. Raises
        PushRejected (nothing moved), or RefConflict if a ref was not at its ``old`` value
        (nothing moved either).
        """
        if via not in VIA:
            raise ValueError(f"via must be one of {VIA}, not {via!r}")
        event = PushEvent(repo=repo, pusher=pusher, updates=list(updates), via=via,
                          push_options=list(push_options), git_env=quarantine.env if quarantine else {})
        await self.run_pre_receive(event)
        if quarantine is not None:
            await asyncio.to_thread(quarantine.migrate)
        db = self.jobs.store.run  # database writes off the event loop
        intent = await db(self.record_intent, event)
        try:
            await asyncio.to_thread(update_refs, repo.path, event.updates)
        except BaseException:
            if intent is not None:
                await asyncio.shield(db(self.jobs.discard, intent))
            raise
        await db(functools.partial(self.post_receive, event, intent=intent))
        return event

    # -- repository lifecycle ------------------------------------------------------------------
    def repo_created(self, repo: RepoInfo) -> int | None:
        """Record that ``repo`` was created; the daemon runs every plugin's hook for it."""
        return self._enqueue_for_all(REPO_CREATED, RepoCreated(repo).to_dict(), repo.id, key="")

    def repo_deleted(self, repo: RepoInfo) -> int | None:
        return self._enqueue_for_all(REPO_DELETED, RepoDeleted(repo).to_dict(), repo.id, key="")

    def repo_renamed(self, repo: RepoInfo, old_namespace: str, old_name: str) -> int | None:
        event = RepoRenamed(repo, old_namespace, old_name)
        return self._enqueue_for_all(REPO_RENAMED, event.to_dict(), repo.id,
                                     key=f"{old_namespace}/{old_name}->{repo.full_name}:{secrets.token_hex(4)}")

    def visibility_changed(self, repo: RepoInfo) -> int | None:
        return self._enqueue_for_all(VISIBILITY_CHANGED, VisibilityChanged(repo).to_dict(), repo.id,
                                     key=f"{repo.private}:{secrets.token_hex(4)}")

    def _enqueue_for_all(self, hook: str, payload: dict[str, Any], repo_id: int, *, key: str) -> int | None:
        # One job for all plugins, expanded by the daemon: the process recording it (the
        # CLI) may not know which plugins the daemon runs.
        if not self.enabled:
            return None
        return self.jobs.enqueue(hook, ALL_PLUGINS, payload, repo_id=repo_id,
                                 dedup_key=f"{hook}:{repo_id}:{ALL_PLUGINS}" + (f":{key}" if key else ""))

    def submit_task(self, plugin: str, repo: RepoInfo | None, task: str, payload: dict[str, Any],
                    key: str | None = None, delay: float = 0.0) -> int | None:
        """A plugin's own durable work (``PluginContext.submit``): its ``gitd_task`` hook runs it."""
        event = TaskEvent(repo, task, payload)
        unique = key if key is not None else secrets.token_hex(12)
        return self.jobs.enqueue_unless_queued(TASK, plugin, event.to_dict(), repo_id=repo.id if repo else None,
                                               delay=delay, dedup_key=f"{TASK}:{plugin}:{task}:{unique}")

    def _enqueue_each(self, hook: str, repo: RepoInfo, payload: dict[str, Any], *, key: str) -> list[int]:
        jobs = [(plugin, f"{hook}:{repo.id}:{plugin}:{key}") for plugin, _ in self.plugins.implementations(hook)]
        return self.jobs.enqueue_many(hook, jobs, payload, repo_id=repo.id)

    # -- running jobs --------------------------------------------------------------------------
    def run_job(self, job: Job) -> None:
        """Execute one job (on a worker thread). Exceptions make the queue retry it."""
        releasing = self.views.releasing() if self.views is not None else contextlib.nullcontext()
        with self.jobs.running(job), releasing:
            self._run_job(job)

    def _run_job(self, job: Job) -> None:
        if job.plugin == ALL_PLUGINS:
            self._expand(job)
            return
        call = self.plugins.implementation(job.hook, job.plugin)
        if call is None:
            raise PermanentJobError(f"plugin {job.plugin} is not loaded (disabled or not installed) or does not "
                                    f"implement {job.hook}; enable it, then run 'gitd jobs retry {job.id}'")
        if job.hook == POST_RECEIVE:
            event = self.bind(PushEvent.from_dict(job.payload))
            try:
                call(event=event)
            finally:
                event.release()
        elif job.hook in LIFECYCLE:
            event = LIFECYCLE[job.hook].from_dict(job.payload)
            call(repo=event.repo, event=event)
        elif job.hook == TASK:
            call(event=TaskEvent.from_dict(job.payload))
        else:
            raise PermanentJobError(f"unknown job hook {job.hook!r}")

    def _expand(self, job: Job) -> None:
        """A job for all plugins: record one job per plugin that implements its hook."""
        if job.hook == POST_RECEIVE:  # an intent whose push never reported back
            event = PushEvent.from_dict(job.payload)
            landed = landed_updates(event.repo.path, event.updates)
            log.info("job %d: recovering post-receive work for %s: %d of %d update(s) landed", job.id,
                     event.repo.full_name, len(landed), len(event.updates))
            if landed:
                self.post_receive(dataclasses.replace(event, updates=landed))
        elif job.hook in LIFECYCLE:
            self._enqueue_each(job.hook, RepoInfo.from_dict(job.payload["repo"]), job.payload, key=f"job{job.id}")
        else:
            raise PermanentJobError(f"unknown job hook {job.hook!r}")
