"""The one hook chain every ref update goes through, whatever path it came by.

* git pushes (HTTP, SSH): git's receive hooks call the daemon's hook API, which
  calls ``pre_receive`` and ``post_receive`` here;
* everything else that moves refs (API commits, mirror fetches) calls
  ``apply_updates``, which runs the same two steps around an atomic ref update.

``pre_receive`` runs the plugins in-line and may veto; ``post_receive`` only records
one durable job per plugin, so plugins never sit on the push's critical path.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from gitd.access import Principal
from gitd.errors import PushRejected
from gitd.events import PushEvent, RefUpdate, RepoInfo
from gitd.jobs import Job, JobQueue
from gitd.plugins import PluginHost
from gitd.refs import update_refs
from gitd.store import Repo

log = logging.getLogger("gitd.hooks")

POST_RECEIVE = "gitd_post_receive"
PRE_RECEIVE = "gitd_pre_receive"
REPO_CREATED = "gitd_repo_created"
REPO_DELETED = "gitd_repo_deleted"


class HookChain:
    def __init__(self, plugins: PluginHost, jobs: JobQueue, *, enabled: bool = True,
                 pre_receive_timeout: float = 120.0):
        self.plugins = plugins
        self.jobs = jobs
        self.enabled = enabled
        self.pre_receive_timeout = pre_receive_timeout

    # -- the chain ---------------------------------------------------------------------------
    def pre_receive(self, event: PushEvent) -> None:
        """Run every pre-receive plugin; raises PushRejected to refuse the push (blocking)."""
        if not self.enabled:
            return
        for name, function in self.plugins.implementations(PRE_RECEIVE):
            try:
                function(event=event)
            except PushRejected:
                log.info("push to %s refused by plugin %s", event.repo.full_name, name)
                raise
            except Exception:
                log.exception("plugin %s failed in pre-receive for %s", name, event.repo.full_name)
                raise PushRejected(
                    f"push refused: the server-side check {name!r} failed with an internal error. "
                    "Nothing was changed; try again, or ask the administrator to look at the server log."
                )

    async def run_pre_receive(self, event: PushEvent) -> None:
        """``pre_receive`` off the event loop, with the configured time limit."""
        try:
            await asyncio.wait_for(asyncio.to_thread(self.pre_receive, event), self.pre_receive_timeout)
        except TimeoutError:
            raise PushRejected("push refused: server-side checks took too long. Nothing was changed.")

    def post_receive(self, event: PushEvent) -> list[int]:
        """Record one durable job per post-receive plugin; returns the new job ids."""
        if not self.enabled or not event.updates:
            return []
        digest = hashlib.sha1(
            json.dumps(sorted(list(u) for u in event.updates)).encode()
        ).hexdigest()
        return self._enqueue(POST_RECEIVE, event.repo, event.to_dict(), key=digest)

    async def apply_updates(self, repo: RepoInfo, updates: list[RefUpdate], *, via: str,
                            pusher: str | None, push_options: Iterable[str] = ()) -> PushEvent:
        """Move refs outside git receive-pack (API commits, mirrors): pre-receive, an atomic
        compare-and-swap update of every ref, then post-receive. Objects must already be
        in the repository. Raises PushRejected, or RefConflict if a ref moved meanwhile."""
        event = PushEvent(repo=repo, pusher=pusher, updates=updates, via=via, push_options=list(push_options))
        await self.run_pre_receive(event)
        await asyncio.to_thread(update_refs, repo.path, updates)
        self.post_receive(event)
        return event

    # -- repository lifecycle ------------------------------------------------------------------
    def repo_created(self, repo: RepoInfo) -> list[int]:
        return self._enqueue(REPO_CREATED, repo, {"repo": repo.to_dict()}, key="")

    def repo_deleted(self, repo: RepoInfo) -> list[int]:
        return self._enqueue(REPO_DELETED, repo, {"repo": repo.to_dict()}, key="")

    def _enqueue(self, hook: str, repo: RepoInfo, payload: dict, *, key: str) -> list[int]:
        if not self.enabled:
            return []
        ids = []
        for plugin, _ in self.plugins.implementations(hook):
            job_id = self.jobs.enqueue(hook, plugin, payload, repo_id=repo.id,
                                       dedup_key=f"{hook}:{repo.id}:{plugin}:{key}")
            if job_id is not None:
                ids.append(job_id)
        return ids

    # -- running jobs ----------------------------------------------------------------------------
    def run_job(self, job: Job) -> None:
        """Execute one job (in a worker thread). Exceptions make the queue retry it."""
        function = self.plugins.implementation(job.hook, job.plugin)
        if function is None:
            log.warning("job %d: plugin %s is not loaded any more; dropping it", job.id, job.plugin)
            return
        if job.hook == POST_RECEIVE:
            function(event=PushEvent.from_dict(job.payload))
        elif job.hook in (REPO_CREATED, REPO_DELETED):
            function(repo=RepoInfo.from_dict(job.payload["repo"]))
        else:
            raise ValueError(f"unknown job hook {job.hook!r}")


@dataclass(frozen=True)
class PushSession:
    """One git receive-pack run that the daemon started and its hooks may call back for."""

    token: str
    repo: Repo
    principal: Principal
    via: str
    started: float


class PushSessions:
    """Short-lived tokens, one per push, that authenticate hook callbacks."""

    def __init__(self, ttl: float = 7200.0):
        self.ttl = ttl
        self._by_token: dict[str, PushSession] = {}

    @contextmanager
    def open(self, repo: Repo, principal: Principal, via: str) -> Iterator[PushSession]:
        session = PushSession(secrets.token_urlsafe(32), repo, principal, via, time.monotonic())
        self._by_token[session.token] = session
        try:
            yield session
        finally:
            self._by_token.pop(session.token, None)

    def get(self, token: str | None) -> PushSession | None:
        if not token:
            return None
        session = self._by_token.get(token)
        if session is None or time.monotonic() - session.started > self.ttl:
            return None
        return session
