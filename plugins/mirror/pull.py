"""One pull-mirror sync: fetch into a staging area, take in the LFS objects the new commits
point to, then publish the changed refs at once through the hook chain.

**Staging.** git fetches into a staging repository inside the mirrored repository
(``REPO.git/mirror-staging``) whose *refs* are its own and whose *objects* are the
repository's (``GIT_OBJECT_DIRECTORY``): the pack lands where it will be served from,
never copied, while the repository's refs stay as they were. Objects fetched and not
(yet) published are unreachable from every published ref, so clients never see them,
and pre-receive checks that list "what is new" (``rev-list NEW --not --all``) see all of
them, exactly as for a push. The staging refs remember what was fetched, so the next
fetch negotiates from there (one round for one new commit), and a sync that failed
after fetching resumes without fetching again.

**Order.** LFS objects first, refs last: the policy plugin refuses refs whose LFS
pointers name objects the repository does not hold, and a sync that fails half-way must
leave nothing published that points at nothing. Objects already held are not fetched
again, so a retried sync resumes where the last one stopped.

**Publish.** ``RepoWriter.update_refs(..., via="mirror")``: pre-receive (policy and every
other plugin), one atomic compare-and-swap of every changed ref, then post-receive jobs
(metadata, dataset previews, push mirrors) as for a push; ref caches are invalidated.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gitd import GitCommand, PluginContext, PluginError, PushRejected, RefConflict, RefUpdate, RepoInfo

from . import gitrepo, gitrun, hubsource
from .gitrepo import ZERO
from .lfsfetch import LfsFailed, LfsFetcher
from .records import PullMirror, Records
from .remote import Credentials, GitAccess, Remote, check_public_host, git_access, parse_remote, redact

STAGING = "mirror-staging"
PACK_REFS_OVER = 1000


class SyncError(Exception):
    """The sync failed; the message is the mirror's status (nothing was published)."""


@dataclasses.dataclass(frozen=True)
class SyncOptions:
    timeout: float
    stall: float
    lfs_concurrency: int
    proxy: str | None = None


class PullSync:
    def __init__(self, context: PluginContext, records: Records, mirror: PullMirror, repo: RepoInfo,
                 options: SyncOptions):
        self.context = context
        self.records = records
        self.mirror = mirror
        self.repo = repo
        self.options = options
        self.started = time.monotonic()
        self.result: dict[str, Any] = {}
        self._last_progress = 0.0
        self._current: tuple[str, float] | None = None

    # -- the whole sync ------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        creds = Credentials.unseal(self.context.secrets, self.mirror.credentials)
        mirror = self.mirror
        if mirror.restricted:  # configured through the API: its hosts may have moved since
            try:
                for url in filter(None, (mirror.url, mirror.lfs_url)):
                    check_public_host(url)
            except PluginError as exc:
                raise SyncError(str(exc)) from None
        if mirror.is_hub:
            mode = mirror.hub_mode or self._detect(creds)
            if mode == "api":
                from .hubapi import HubApiSync

                return HubApiSync(self.context, self.records, mirror, self.repo, creds, self.options,
                                  self._progress).run()
        remote, _ = parse_remote(mirror.url)
        return self._git_sync(remote, creds)

    def _guard(self) -> Callable[[str], None] | None:
        return check_public_host if self.mirror.restricted else None

    def _detect(self, creds: Credentials) -> str:
        assert self.mirror.hub_url and self.mirror.hub_repo_id
        mode = hubsource.detect(self.mirror.hub_url, self.mirror.hub_repo_id, self.mirror.type, creds,
                                stall=self.options.stall, proxy=self.options.proxy, guard=self._guard())
        self.records.set_pull(self.repo.id, hub_mode=mode)
        self.context.log.info("mirror %s: %s serves %s through its %s", self.repo.full_name,
                              redact(self.mirror.hub_url), self.mirror.hub_repo_id,
                              "git endpoint" if mode == "git" else "file API (no git)")
        return mode

    def _git_sync(self, remote: Remote, creds: Credentials) -> dict[str, Any]:
        prefixes = self.mirror.refs
        self._phase("prepare")
        staging = self.staging()
        published = gitrepo.list_refs(self.context, self.repo.path, prefixes)
        with git_access(remote, creds, known_hosts=self.mirror.known_hosts, timeout=self.options.stall,
                        proxy=self.options.proxy, restricted=self.mirror.restricted) as access:
            packs_before = set(self._packs())
            cloned = not staging.exists()
            try:
                self._phase("fetch")
                if cloned:
                    self._clone(remote, staging, access)
                else:
                    self._fetch(remote, staging, access)
            finally:
                self._keep_known_hosts(access)
            self._phase("plan")
            fetched = gitrepo.list_refs(self.context, staging, prefixes, env=self._objects_env())
            updates = self._plan(published, fetched)
            if not updates:
                self.result["up_to_date"] = True
                return self._done()
            self._check_forced(updates)
            if self.mirror.lfs:
                self._phase("lfs")
                # A first sync's clone brought everything it publishes in new packs: their
                # objects are read for LFS pointers, rather than walking the whole history.
                new_packs = sorted(set(self._packs()) - packs_before) if cloned and not published else None
                self._fetch_lfs(remote, creds, access, [u.new for u in updates], new_packs or None)
        self._phase("publish")
        head = None if any(ref.startswith("refs/heads/") for ref in published) else self._staged_head(staging)
        self._publish(updates, head)
        return self._done()

    def _done(self) -> dict[str, Any]:
        self._phase("")
        self.result["seconds"] = round(time.monotonic() - self.started, 3)
        return self.result

    def _phase(self, name: str) -> None:
        """Seconds spent per phase, in the result (``phases``): where a slow sync's time went."""
        now = time.monotonic()
        phases = self.result.setdefault("phases", {})
        if self._current is not None:
            phases[self._current[0]] = round(phases.get(self._current[0], 0) + now - self._current[1], 2)
        self._current = (name, now) if name else None

    def _progress(self, phase: str, force: bool = False, **values: Any) -> None:
        now = time.monotonic()
        if force or now - self._last_progress >= 1.0:
            self._last_progress = now
            self.records.progress(self.repo.id, phase, values)

    # -- staging -------------------------------------------------------------------------------
    def _objects_env(self) -> dict[str, str]:
        return {"GIT_OBJECT_DIRECTORY": str(self.repo.path / "objects")}

    def staging(self) -> Path:
        """The staging repository, ready to fetch into; or its path, not there yet, when the
        first sync will clone it. A transfer a crashed daemon left running is stopped, stale
        locks are removed, and a staging area whose refs name objects the repository lost
        starts afresh (seeded with the published refs, so the fetch negotiates from them)."""
        staging = self.repo.path / STAGING
        gitrun.reap(self._pid_file())
        shutil.rmtree(staging.with_name(f"{STAGING}.tmp"), ignore_errors=True)
        if (staging / "HEAD").exists():
            for lock in [*staging.glob("*.lock"), *(staging / "refs").rglob("*.lock")]:
                lock.unlink(missing_ok=True)
            refs = gitrepo.list_refs(self.context, staging, ["refs/"], env=self._objects_env())
            if not gitrepo.missing_objects(self.context, self.repo.path, refs.values()):
                return staging
            self.context.log.warning("mirror %s: staging refs name missing objects; starting staging afresh",
                                     self.repo.full_name)
            shutil.rmtree(staging)
        seed = gitrepo.list_refs(self.context, self.repo.path, self.mirror.refs)
        if not seed:
            return staging  # nothing to negotiate from: the first fetch is a clone
        temp = staging.with_name(f"{STAGING}.tmp")
        cmd = self.context.git_command(["init", "--bare", "-q", "--template=", str(temp)], git_dir=None)
        subprocess.run(cmd.argv, env=cmd.env, check=True, capture_output=True)
        lines = "".join(f"create {ref} {oid}\n" for ref, oid in seed.items())
        cmd = self.context.git_command(["update-ref", "--stdin"], git_dir=temp, env=self._objects_env())
        subprocess.run(cmd.argv, env=cmd.env, input=lines.encode(), check=True, capture_output=True)
        self._pack_refs(temp, self._objects_env())
        temp.rename(staging)
        return staging

    def _pid_file(self) -> Path:
        """Names the transfer running for this mirror (``gitrun.reap``)."""
        return self.repo.path / f"{STAGING}.pid"

    def _staged_head(self, staging: Path) -> str | None:
        """The branch the upstream's HEAD names (a clone records it), for a repository that
        has no branch yet: it becomes the default branch."""
        try:
            head = (staging / "HEAD").read_text().strip()
        except OSError:
            return None
        return head[len("ref: refs/heads/"):] if head.startswith("ref: refs/heads/") else None

    # -- fetching ------------------------------------------------------------------------------
    def _protocols(self, remote: Remote) -> tuple[str, ...]:
        return (remote.scheme,)

    def _transfer(self, cmd: GitCommand) -> None:
        """Run a fetch or clone within what is left of the sync's time, recording its progress."""
        self._progress("fetching", force=True)
        remaining = max(1.0, self.options.timeout - (time.monotonic() - self.started))
        try:
            transfer = gitrun.run(cmd, timeout=remaining, stall=self.options.stall, what="fetching",
                                  pid_file=self._pid_file(),
                                  on_progress=lambda t: self._progress("fetching", objects=t.objects, bytes=t.bytes))
        except gitrun.TransferFailed as exc:
            raise SyncError(str(exc)) from None
        self.result.update(objects=transfer.objects, bytes=transfer.bytes)

    def _fetch(self, remote: Remote, staging: Path, access: GitAccess) -> None:
        refspecs = [f"+{p}*:{p}*" for p in (p if p.endswith("/") else p + "/" for p in self.mirror.refs)]
        args = ["fetch", "--atomic", "--prune", "--no-tags", "--no-write-fetch-head", "--no-show-forced-updates",
                "--no-auto-maintenance", "--progress", remote.url, *refspecs]
        cmd = self.context.git_command(args, git_dir=staging, env={**access.env, **self._objects_env()},
                                       protocols=self._protocols(remote))
        self._transfer(cmd)

    def _clone(self, remote: Remote, staging: Path, access: GitAccess) -> None:
        """The first fetch: a bare clone into the staging area, objects into the repository's
        object store. git writes a clone's refs into one packed-refs file (a fetch writes one
        file per ref: seconds for thousands of refs), and records the upstream's HEAD."""
        temp = staging.with_name(f"{STAGING}.tmp")
        prefixes = [p if p.endswith("/") else p + "/" for p in self.mirror.refs]
        if "refs/" in prefixes:
            shape = ["--mirror"]
        else:
            shape = ["--bare", "--no-tags"]
            for prefix in prefixes:
                if prefix != "refs/heads/":  # a bare clone takes the branches anyway
                    shape += ["-c", f"remote.origin.fetch=+{prefix}*:{prefix}*"]
        args = ["clone", "--template=", "--progress", *shape, remote.url, str(temp)]
        cmd = self.context.git_command(args, git_dir=None, env={**access.env, **self._objects_env()},
                                       protocols=self._protocols(remote))
        try:
            self._transfer(cmd)
        except SyncError:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        temp.rename(staging)

    def _keep_known_hosts(self, access: GitAccess) -> None:
        text = access.known_hosts_text()
        if text is not None and text != (self.mirror.known_hosts or ""):
            self.records.set_pull(self.repo.id, known_hosts=text)

    # -- planning ------------------------------------------------------------------------------
    def _plan(self, published: dict[str, str], fetched: dict[str, str]) -> list[RefUpdate]:
        updates = [RefUpdate(ref, published.get(ref, ZERO), new) for ref, new in sorted(fetched.items())
                   if published.get(ref) != new]
        if self.mirror.prune:
            updates += [RefUpdate(ref, old, ZERO) for ref, old in sorted(published.items()) if ref not in fetched]
        return updates

    def _check_forced(self, updates: list[RefUpdate]) -> None:
        if self.mirror.follow_force:
            return
        forced = [u for u in updates if not u.is_create and not u.is_delete
                  and not gitrepo.is_ancestor(self.context, self.repo.path, u.old, u.new)]
        if forced:
            named = ", ".join(f"{u.ref} ({u.old[:7]} -> {u.new[:7]})" for u in forced[:5])
            more = f" and {len(forced) - 5} more" if len(forced) > 5 else ""
            raise SyncError(f"the upstream rewrote history of {named}{more}; this mirror refuses forced updates, "
                            "so nothing was published (gitd mirror set NS/NAME --follow-force to follow)")

    # -- LFS -----------------------------------------------------------------------------------
    def _packs(self) -> list[Path]:
        return list((self.repo.path / "objects" / "pack").glob("pack-*.idx"))

    def _fetch_lfs(self, remote: Remote, creds: Credentials, access: GitAccess, tips: list[str],
                   packs: list[Path] | None = None) -> None:
        self._progress("lfs", force=True)
        if packs:
            pointers = gitrepo.pack_lfs_pointers(self.context, self.repo.path, packs)
        else:
            pointers = gitrepo.new_lfs_pointers(self.context, self.repo.path, tips)
        fetcher = LfsFetcher(self.context, self.mirror, self.repo, self.options, self._progress)
        try:
            self.result.update(fetcher.fetch(remote, creds, access, pointers))
        except LfsFailed as exc:
            self.result.update(exc.result)
            raise SyncError(str(exc)) from None

    # -- publishing ----------------------------------------------------------------------------
    def _publish(self, updates: list[RefUpdate], head: str | None) -> None:
        self._progress("publishing", force=True, refs=len(updates))
        repo = self.repo
        if head is not None:
            wanted = f"refs/heads/{head}"
            updates = sorted(updates, key=lambda u: u.ref != wanted)  # the upstream's HEAD branch first
            repo = dataclasses.replace(repo, default_branch=head)
        try:
            self.context.writer(repo).update_refs(updates, via="mirror")
        except PushRejected as exc:
            raise SyncError(f"a server check refused the update, so nothing was published: {exc.message}") from None
        except RefConflict:
            raise SyncError("a ref of the repository moved while the mirror synced; nothing was published "
                            "(the next sync tries again)") from None
        self.result.update(refs_changed=len(updates), created=sum(u.is_create for u in updates),
                           deleted=sum(u.is_delete for u in updates))
        if len(updates) > PACK_REFS_OVER:
            # git wrote one file per ref: fold them into packed-refs, later, off the sync's clock.
            self.context.submit(self.repo, "pack-refs", {}, key=f"pack-refs:{self.repo.id}:{time.time_ns()}")

    def _pack_refs(self, git_dir: Path, env: dict[str, str] | None = None) -> None:
        pack_refs(self.context, git_dir, env)


def pack_refs(context: PluginContext, git_dir: Path, env: dict[str, str] | None = None) -> None:
    cmd = context.git_command(["pack-refs", "--all", "--prune"], git_dir=git_dir, env=env)
    subprocess.run(cmd.argv, env=cmd.env, capture_output=True)


def pack_repository_refs(context: PluginContext, repo: RepoInfo) -> None:
    """The "pack-refs" task: the repository's refs, and its staging area's."""
    if not repo.path.exists():
        return
    pack_refs(context, repo.path)
    staging = repo.path / STAGING
    if (staging / "HEAD").exists():
        pack_refs(context, staging, {"GIT_OBJECT_DIRECTORY": str(repo.path / "objects")})
