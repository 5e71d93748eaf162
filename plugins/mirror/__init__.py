"""Built-in mirror plugin: pull mirrors (any git URL, Hugging Face-compatible hubs, another
gitd) with their Git LFS objects, on a schedule, and push mirrors after every push.

Registered through the ``gitd.plugins`` entry point like any third-party plugin, using
only the public plugin API (docs/mirrors.md is the guide). Settings, with defaults:

    [plugins.mirror]
    interval = "1h"              # how often a new pull mirror syncs (per mirror: --interval)
    jitter = "5m"                # at most this much is added to each interval, at random
    max_concurrent = 1           # syncs running at once in the daemon (each holds a job worker)
    timeout = "50m"              # one sync's time limit (keep it under [jobs] timeout)
    stall_timeout = "2m"         # a remote silent for this long mid-transfer has stalled
    retry_min = "1m"             # a failed sync is retried after this, doubling, up to the interval
    lfs_concurrency = 4          # LFS objects downloaded at once per sync
    read_only = true             # new pull mirrors refuse pushes (per mirror: --writable)
    follow_force = true          # new pull mirrors follow forced updates (per mirror: --refuse-force)
    proxy = ""                   # an http(s) proxy for git and LFS transfers
    api_manage = true            # repository admins may configure mirrors through the HTTP API
    allow_local_networks = false # ...of URLs on loopback or private networks
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gitd import (
    Duration,
    PluginContext,
    PluginError,
    PushEvent,
    PushRejected,
    RepoDeleted,
    RepoInfo,
    RepoRenamed,
    TaskEvent,
    hookimpl,
)

from .hubapi import HubApiError
from .hubsource import HubError
from .lfs import LfsError
from .manage import Manager, iso
from .pull import PullSync, SyncError, SyncOptions, pack_repository_refs
from .push import PushError, PushSync
from .records import PullMirror, Records
from .remote import redact
from .schedule import Scheduler

HOUR, FIVE_MINUTES, FIFTY_MINUTES = Duration(3600), Duration(300), Duration(3000)
TWO_MINUTES, ONE_MINUTE = Duration(120), Duration(60)
KNOWN_FAILURES = (SyncError, HubError, HubApiError, LfsError, PushError)
REFUSED_VIA = ("http", "ssh", "api")


@dataclass(frozen=True)
class MirrorSettings:
    interval: Duration = HOUR
    jitter: Duration = FIVE_MINUTES
    max_concurrent: int = 1
    timeout: Duration = FIFTY_MINUTES
    stall_timeout: Duration = TWO_MINUTES
    retry_min: Duration = ONE_MINUTE
    lfs_concurrency: int = 4
    read_only: bool = True
    follow_force: bool = True
    proxy: str = ""
    api_manage: bool = True
    allow_local_networks: bool = False


class LazyRecords:
    """The plugin's tables, opened (and migrated) on first use: the plugin loads in any
    process, and only touches the database when it has work."""

    def __init__(self, context: PluginContext):
        self._context = context
        self._records: Records | None = None

    @property
    def available(self) -> bool:
        """False in a process without the daemon's storage (a bare plugin host): there are
        no mirrors there."""
        try:
            self._open()
        except PluginError:
            return False
        return True

    def _open(self) -> Records:
        if self._records is None:
            self._records = Records(self._context.storage)
        return self._records

    def __getattr__(self, name: str) -> Any:
        return getattr(self._open(), name)


class MirrorPlugin:
    def __init__(self, context: PluginContext):
        self.context = context
        self.settings = context.settings(MirrorSettings)
        self.records = LazyRecords(context)
        self.options = SyncOptions(timeout=float(self.settings.timeout), stall=float(self.settings.stall_timeout),
                                   lfs_concurrency=max(1, self.settings.lfs_concurrency),
                                   proxy=self.settings.proxy or None)
        self.scheduler = Scheduler(context, self.records, max_concurrent=self.settings.max_concurrent,
                                   jitter=float(self.settings.jitter), retry_min=float(self.settings.retry_min))
        self.manager = Manager(context, self.records, self.scheduler, self.settings)
        try:
            self.scheduler.kick(self._repo_of)
        except PluginError:
            pass  # a process without the daemon's storage (a bare plugin host): nothing to schedule
        except Exception:  # the safety net must never keep the plugin from loading
            context.log.exception("mirror: could not check the schedule")

    def _repo_of(self, mirror: PullMirror) -> RepoInfo | None:
        return self.context.find_repo(mirror.repo, mirror.type)

    # -- hooks ---------------------------------------------------------------------------------
    @hookimpl
    def gitd_pre_receive(self, event: PushEvent) -> None:
        if event.via not in REFUSED_VIA or not self.records.available:
            return  # the mirror's own updates, and other plugins' (a dataset's Parquet branch)
        upstream = self.records.is_read_only(event.repo.id)
        if upstream is not None:
            raise PushRejected(
                f"{event.repo.full_name} is a mirror of {upstream}: it takes its changes from there, and refuses "
                "pushes.\nPush to the upstream repository instead (the mirror follows it), or ask the server's "
                f"administrator to make the mirror writable (gitd mirror set {event.repo.full_name} --writable).")

    @hookimpl
    def gitd_post_receive(self, event: PushEvent) -> None:
        if not self.records.available:
            return
        for mirror in self.records.pushes(event.repo.id):
            generation = self.records.want_push(mirror.id)
            if generation is not None:
                self.context.submit(event.repo, "push", {"id": mirror.id, "gen": generation},
                                    key=f"push:{mirror.id}:{generation}")

    @hookimpl
    def gitd_task(self, event: TaskEvent) -> None:
        if event.task == "sync":
            self.scheduler.run(event, self._sync)
        elif event.task == "push":
            self._push(event)
        elif event.task == "pack-refs" and event.repo is not None:
            pack_repository_refs(self.context, event.repo)

    @hookimpl
    def gitd_repo_deleted(self, repo: RepoInfo, event: RepoDeleted) -> None:
        self.records.forget_repo(repo.id)

    @hookimpl
    def gitd_repo_renamed(self, repo: RepoInfo, event: RepoRenamed) -> None:
        self.records.renamed(repo.id, repo.full_name)

    @hookimpl
    def gitd_repo_info(self, repo: RepoInfo) -> dict[str, Any] | None:
        mirror = self.records.pull(repo.id)
        if mirror is None:
            return None
        return {"mirror": {"upstream": mirror.url, "last_success": iso(mirror.last_success),
                           "last_attempt": iso(mirror.last_attempt), "state": mirror.state,
                           "error": mirror.last_error}}

    @hookimpl
    def gitd_http_routes(self) -> list:
        from .api import routes

        return routes(self)

    @hookimpl
    def gitd_web_tabs(self, repo: RepoInfo) -> list | None:
        from .web import MirrorTab

        return MirrorTab(self).tabs(repo)

    @hookimpl
    def gitd_cli_commands(self) -> list:
        from .commands import commands

        return commands(self)

    # -- the work ------------------------------------------------------------------------------
    def _sync(self, repo: RepoInfo, mirror: PullMirror) -> tuple[str | None, dict[str, Any]]:
        sync = PullSync(self.context, self.records, mirror, repo, self.options)
        try:
            result = sync.run()
        except KNOWN_FAILURES as exc:
            self.context.log.warning("mirror %s: sync failed: %s", repo.full_name, exc)
            return redact(str(exc)), sync.result
        except Exception as exc:
            self.context.log.exception("mirror %s: sync failed", repo.full_name)
            return f"internal error ({type(exc).__name__}); see the server log", sync.result
        self.context.log.info("mirror %s: synced (%s)", repo.full_name,
                              ", ".join(f"{k}={v}" for k, v in sorted(result.items())))
        return None, result

    def _push(self, event: TaskEvent) -> None:
        repo, mirror_id = event.repo, str(event.payload.get("id"))
        mirror = self.records.push(mirror_id)
        if repo is None or mirror is None:
            return
        self.records.push_started(mirror_id, int(event.payload.get("gen", 0)))
        sync = PushSync(self.context, self.records, mirror, repo, self.options)
        try:
            result = sync.run()
        except KNOWN_FAILURES as exc:
            self.records.push_finished(mirror_id, error=redact(str(exc)), result=sync.result)
            raise PushError(redact(str(exc))) from None  # the job is retried with backoff
        except Exception as exc:
            self.records.push_finished(mirror_id, error=f"internal error ({type(exc).__name__})", result=sync.result)
            raise
        self.records.push_finished(mirror_id, error=None, result=result)
