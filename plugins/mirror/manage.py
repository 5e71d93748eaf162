"""Configuring mirrors and reporting on them: what the command line and the HTTP API share.

Nothing here returns or prints credentials: a status says whether a mirror has some.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass
from typing import Any

from gitd import PluginContext, PluginError, RepoInfo

from . import gitrepo, hubsource
from .records import DEFAULT_REFS, PullMirror, PushMirror, Records
from .remote import Credentials, check_public_host, parse_remote
from .schedule import Scheduler


@dataclass(frozen=True)
class PullSpec:
    url: str | None = None
    hub_url: str | None = None
    hub_repo_id: str | None = None
    interval: float | None = None
    refs: tuple[str, ...] | None = None
    follow_force: bool | None = None
    prune: bool = True
    read_only: bool | None = None
    lfs: bool = True
    lfs_url: str | None = None
    credentials: Credentials | None = None
    replace: bool = False


def iso(when: float | None) -> str | None:
    if when is None:
        return None
    moment = datetime.datetime.fromtimestamp(when, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def check_refs(refs: tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    if not refs:
        return DEFAULT_REFS
    out = []
    for ref in refs:
        if not isinstance(ref, str) or not ref.startswith("refs/") or any(c in ref for c in " \0\n*?[\\~^:") \
                or ".." in ref:
            raise PluginError(f"{ref!r}: mirrored refs are given as prefixes such as refs/heads/ or refs/tags/")
        out.append(ref if ref.endswith("/") else ref + "/")
    return tuple(dict.fromkeys(out))


class Manager:
    def __init__(self, context: PluginContext, records: Records, scheduler: Scheduler, settings: Any):
        self.context = context
        self.records = records
        self.scheduler = scheduler
        self.settings = settings

    def _restricted(self, operator: bool) -> bool:
        """Whether the mirror's transfers must keep off the server's own networks (checked
        again at every sync, redirects not followed): configured through the API."""
        return not operator and not self.settings.allow_local_networks

    def _check_url(self, url: str, operator: bool) -> None:
        if operator:
            return
        remote, _ = parse_remote(url)
        if remote.scheme == "file":
            raise PluginError("file URLs can only be mirrored by the server's operator (gitd mirror add)")
        if not self.settings.allow_local_networks:
            check_public_host(url)

    # -- pull mirrors ----------------------------------------------------------------------------
    def add_pull(self, repo: RepoInfo, spec: PullSpec, *, operator: bool) -> PullMirror:
        existing = self.records.pull(repo.id)
        if existing is not None:
            raise PluginError(f"{repo.full_name} is already a mirror of {existing.url}; remove it first")
        if spec.hub_repo_id:
            if not spec.hub_url:
                raise PluginError("a hub mirror needs the hub's URL (--from-hub URL)")
            hubsource.check_repo_id(spec.hub_repo_id, repo.type)
            url, creds = hubsource.git_url(spec.hub_url, spec.hub_repo_id, repo.type), Credentials()
            self._check_url(url, operator)
        elif spec.url:
            remote, creds = parse_remote(spec.url)
            url = remote.url
            self._check_url(url, operator)
        else:
            raise PluginError("give the URL to mirror (or --from-hub URL --repo-id ORG/NAME)")
        if spec.lfs_url:
            lfs_remote, lfs_creds = parse_remote(spec.lfs_url)
            if not lfs_remote.is_http or lfs_creds:
                raise PluginError("the LFS URL is an http(s) URL without credentials")
            self._check_url(lfs_remote.url, operator)
        creds = spec.credentials if spec.credentials is not None and (spec.credentials or
                                                                      spec.credentials.username) else creds
        refs = check_refs(spec.refs)
        if not spec.replace:
            present = gitrepo.list_refs(self.context, repo.path, refs)
            if present:
                raise PluginError(f"{repo.full_name} already has {len(present)} branch(es) or tag(s); a mirror "
                                  "replaces them with the upstream's. Mirror into a new repository, or pass "
                                  "--replace")
        interval = self.settings.interval if spec.interval is None else spec.interval
        if interval < 0:
            raise PluginError("the interval cannot be negative (0: sync only when asked)")
        mirror = PullMirror(
            repo_id=repo.id, repo=repo.full_name, type=repo.type, url=url, lfs=spec.lfs,
            refs=refs, interval=float(interval),
            follow_force=self.settings.follow_force if spec.follow_force is None else spec.follow_force,
            prune=spec.prune, read_only=self.settings.read_only if spec.read_only is None else spec.read_only,
            hub_url=hubsource.hub_base(spec.hub_url) if spec.hub_repo_id and spec.hub_url else None,
            hub_repo_id=spec.hub_repo_id, lfs_url=spec.lfs_url,
            credentials=creds.seal(self.context.secrets), restricted=self._restricted(operator))
        self.records.add_pull(mirror)
        mirror = self.records.pull(repo.id) or mirror
        if mirror.interval > 0:
            self.scheduler.schedule(repo, mirror, 0.0)
        else:
            self.scheduler.sync_now(repo)
        self.context.log.info("mirror %s: pulls from %s every %ss", repo.full_name, url, int(mirror.interval))
        return mirror

    def set_pull(self, repo: RepoInfo, *, interval: float | None = None, read_only: bool | None = None,
                 follow_force: bool | None = None, prune: bool | None = None,
                 credentials: Credentials | None = None) -> PullMirror:
        mirror = self.pull(repo)
        changes: dict[str, Any] = {}
        if interval is not None:
            if interval < 0:
                raise PluginError("the interval cannot be negative (0: sync only when asked)")
            changes["interval"] = float(interval)
        for key, value in (("read_only", read_only), ("follow_force", follow_force), ("prune", prune)):
            if value is not None:
                changes[key] = value
        if credentials is not None:
            changes["credentials"] = credentials.seal(self.context.secrets)
        self.records.set_pull(repo.id, **changes)
        updated = self.pull(repo)
        if interval is not None and interval > 0 and (mirror.interval <= 0 or interval < mirror.interval):
            self.scheduler.schedule(repo, updated, min(interval, max(0.0, (updated.next_run or 0) - time.time())))
        return self.pull(repo)

    def pull(self, repo: RepoInfo) -> PullMirror:
        mirror = self.records.pull(repo.id)
        if mirror is None:
            raise PluginError(f"{repo.full_name} is not a pull mirror")
        return mirror

    def remove(self, repo: RepoInfo, push_id: str | None = None) -> str:
        if push_id is not None:
            found = self.records.push(push_id)
            if found is None or found.repo_id != repo.id:
                raise PluginError(f"{repo.full_name} has no push mirror {push_id}")
            self.records.delete_push(push_id)
            return f"push mirror {push_id} of {repo.full_name} to {found.url} removed"
        mirror = self.pull(repo)
        self.records.delete_pull(repo.id)
        return f"{repo.full_name} no longer mirrors {mirror.url}; it keeps what it has and takes pushes"

    # -- push mirrors ----------------------------------------------------------------------------
    def add_push(self, repo: RepoInfo, url: str, *, credentials: Credentials | None = None,
                 refs: tuple[str, ...] | None = None, prune: bool = True, lfs: bool = True,
                 lfs_url: str | None = None, operator: bool) -> PushMirror:
        remote, url_creds = parse_remote(url)
        self._check_url(remote.url, operator)
        creds = credentials if credentials is not None and (credentials or credentials.username) else url_creds
        if lfs_url:
            lfs_remote, lfs_creds = parse_remote(lfs_url)
            if not lfs_remote.is_http or lfs_creds:
                raise PluginError("the LFS URL is an http(s) URL without credentials")
            self._check_url(lfs_remote.url, operator)
        mirror_id = self.records.add_push(repo.id, remote.url, lfs=lfs, lfs_url=lfs_url, refs=check_refs(refs),
                                          prune=prune, credentials=creds.seal(self.context.secrets),
                                          restricted=self._restricted(operator))
        mirror = self.records.push(mirror_id)
        assert mirror is not None
        return mirror

    # -- status ----------------------------------------------------------------------------------
    def status(self, repo: RepoInfo) -> dict[str, Any]:
        pull = self.records.pull(repo.id)
        return {"repo": repo.full_name, "type": repo.type,
                "pull": pull_status(pull) if pull is not None else None,
                "push": [push_status(p) for p in self.records.pushes(repo.id)]}


def pull_status(m: PullMirror) -> dict[str, Any]:
    source = {"hub": m.hub_url, "repo_id": m.hub_repo_id, "mode": m.hub_mode} if m.is_hub else None
    return {
        "direction": "pull", "repo": m.repo, "type": m.type, "url": m.url, "source": source,
        "interval": m.interval, "refs": list(m.refs), "follow_force": m.follow_force, "prune": m.prune,
        "read_only": m.read_only, "lfs": m.lfs, "lfs_url": m.lfs_url, "credentials": m.credentials is not None,
        "state": m.state, "phase": m.phase if m.state == "running" else None,
        "progress": m.progress if m.state == "running" else {},
        "last_attempt": iso(m.last_attempt), "last_success": iso(m.last_success), "last_error": m.last_error,
        "last_result": m.last_result, "failures": m.failures,
        "next_run": iso(m.next_run) if m.interval > 0 else None,
    }


def push_status(m: PushMirror) -> dict[str, Any]:
    return {
        "direction": "push", "id": m.id, "url": m.url, "refs": list(m.refs), "prune": m.prune, "lfs": m.lfs,
        "lfs_url": m.lfs_url, "credentials": m.credentials is not None, "state": m.state,
        "last_attempt": iso(m.last_attempt), "last_success": iso(m.last_success), "last_error": m.last_error,
        "last_result": m.last_result,
    }

