"""Push mirrors: after refs move, the repository's refs (and the LFS objects they point to)
are pushed to the configured remotes, as a durable job retried with backoff.

A push sends the repository's *current* refs, so one job covers every change made
before it starts: a push that happens while a job is queued (not yet started) queues no
second job (``Records.want_push``). LFS objects go first (the remote's batch API says
which it lacks; only those are uploaded), then ``git push`` with forced refspecs per
mirrored prefix, and ``--prune`` to delete what was deleted here.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable
from typing import Any

from gitd import LfsObjectMissing, PluginContext, PluginError, RepoInfo

from . import gitrepo, gitrun
from .lfs import CHUNK, LfsClient, LfsError, LfsObject, file_lfs_path, objects_of, ssh_authenticate
from .records import PushMirror, Records
from .remote import (
    Credentials,
    GitAccess,
    Remote,
    check_public_host,
    git_access,
    lfs_endpoint,
    parse_remote,
    redact,
    ssh_target,
)


class PushError(Exception):
    """The push failed (the job is retried); the message is the mirror's status."""


class PushSync:
    def __init__(self, context: PluginContext, records: Records, mirror: PushMirror, repo: RepoInfo, options: Any):
        self.context = context
        self.records = records
        self.mirror = mirror
        self.repo = repo
        self.options = options
        self.result: dict[str, Any] = {}

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        if self.mirror.restricted:
            try:
                for url in filter(None, (self.mirror.url, self.mirror.lfs_url)):
                    check_public_host(url)
            except PluginError as exc:
                raise PushError(str(exc)) from None
        remote, _ = parse_remote(self.mirror.url)
        creds = Credentials.unseal(self.context.secrets, self.mirror.credentials)
        local = gitrepo.list_refs(self.context, self.repo.path, self.mirror.refs)
        with git_access(remote, creds, known_hosts=self.mirror.known_hosts, timeout=self.options.stall,
                        proxy=self.options.proxy, restricted=self.mirror.restricted) as access:
            try:
                theirs = self._remote_refs(remote, access)
                changed = {ref: oid for ref, oid in local.items() if theirs.get(ref) != oid}
                deleted = [ref for ref in theirs if ref not in local] if self.mirror.prune else []
                if not changed and not deleted:
                    self.result["up_to_date"] = True
                else:
                    if self.mirror.lfs and changed:
                        self._push_lfs(remote, creds, access, changed.values(), theirs.values())
                    self._push(remote, access)
                    self.result.update(refs_changed=len(changed), deleted=len(deleted))
            finally:
                text = access.known_hosts_text()
                if text is not None and text != (self.mirror.known_hosts or ""):
                    self.records.set_push(self.mirror.id, known_hosts=text)
        self.result["seconds"] = round(time.monotonic() - started, 3)
        return self.result

    def _protocols(self, remote: Remote) -> tuple[str, ...]:
        return (remote.scheme,)

    def _remote_refs(self, remote: Remote, access: GitAccess) -> dict[str, str]:
        cmd = self.context.git_command(["ls-remote", remote.url], git_dir=self.repo.path, env=access.env,
                                       protocols=self._protocols(remote))
        try:
            out = gitrun.run(cmd, timeout=self.options.timeout, stall=self.options.stall, what="listing the remote")
        except gitrun.TransferFailed as exc:
            raise PushError(str(exc)) from None
        refs = {}
        for line in out.stdout.decode("utf-8", "replace").splitlines():
            oid, _, ref = line.partition("\t")
            if not ref.endswith("^{}") and gitrepo.in_prefixes(ref, self.mirror.refs):
                refs[ref] = oid
        return refs

    def _push_lfs(self, remote: Remote, creds: Credentials, access: GitAccess, tips: Iterable[str],
                  theirs: Iterable[str]) -> None:
        have = set(theirs) - gitrepo.missing_objects(self.context, self.repo.path, theirs)
        pointers = gitrepo.lfs_pointers(self.context, self.repo.path, tips, exclude=have)
        if not pointers:
            return
        view = self.context.view(self.repo)
        if remote.scheme == "file" and not self.mirror.lfs_url:
            self.result["lfs_objects"] = self._to_file(remote, view, objects_of(pointers))
            return
        client = self._client(remote, creds, access)
        uploaded, failures = 0, []
        try:
            answers = list(client.batch("upload", objects_of(pointers)))
        except LfsError as exc:
            raise PushError(str(exc)) from None
        for obj, answer in answers:
            error = answer.get("error")
            if error:
                failures.append(f"{obj.oid}: {error.get('message') if isinstance(error, dict) else error}")
                continue
            actions = answer.get("actions") or {}
            if "upload" not in actions:
                continue
            try:
                with view.lfs_open(obj.oid) as source:
                    client.upload(LfsObject(obj.oid, obj.size), actions, source)
            except LfsObjectMissing:
                failures.append(f"{obj.oid}: not held here")
                continue
            except LfsError as exc:
                failures.append(str(exc))
                continue
            uploaded += 1
        self.result["lfs_objects"] = uploaded
        if failures:
            raise PushError(f"{len(failures)} LFS object(s) could not be uploaded: {'; '.join(failures[:3])}")

    def _to_file(self, remote: Remote, view: Any, objects: list[LfsObject]) -> int:
        """Copy LFS objects into a local repository's LFS store, where git-lfs keeps them."""
        copied = 0
        for obj in objects:
            target = file_lfs_path(remote.url[len("file://"):], obj.oid)
            if target.is_file() and target.stat().st_size == obj.size:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            temp = target.with_name(f".{obj.oid}.{os.getpid()}.tmp")
            try:
                with view.lfs_open(obj.oid) as source, open(temp, "wb") as out:
                    shutil.copyfileobj(source, out, CHUNK)
                os.replace(temp, target)
            except LfsObjectMissing:
                raise PushError(f"LFS object {obj.oid} is not held here") from None
            finally:
                temp.unlink(missing_ok=True)
            copied += 1
        return copied

    def _client(self, remote: Remote, creds: Credentials, access: GitAccess) -> LfsClient:
        headers: dict[str, str] = {}
        endpoint = self.mirror.lfs_url or lfs_endpoint(remote)
        if endpoint is None:
            if remote.scheme != "ssh":
                raise PushError("this remote has no LFS server to upload to (set an LFS URL, or turn LFS off)")
            target, path = ssh_target(remote)
            try:
                endpoint, headers = ssh_authenticate(access.ssh, target, path, "upload", timeout=self.options.stall)
            except LfsError as exc:
                raise PushError(str(exc)) from None
        elif creds.authorization() is not None:
            headers["Authorization"] = creds.authorization() or ""
        return LfsClient(endpoint, headers=headers, stall=self.options.stall, proxy=self.options.proxy,
                         guard=check_public_host if self.mirror.restricted else None)

    def _push(self, remote: Remote, access: GitAccess) -> None:
        refspecs = [f"+{p}*:{p}*" for p in (p if p.endswith("/") else p + "/" for p in self.mirror.refs)]
        args = ["push", "--porcelain", "--progress", "--no-verify", *(["--prune"] if self.mirror.prune else []),
                remote.url, *refspecs]
        cmd = self.context.git_command(args, git_dir=self.repo.path, env=access.env, protocols=self._protocols(remote))
        try:
            transfer = gitrun.run(cmd, timeout=self.options.timeout, stall=self.options.stall, what="pushing")
        except gitrun.TransferFailed as exc:
            rejected = [ln.strip() for ln in exc.stdout.decode("utf-8", "replace").splitlines() if ln.startswith("!")]
            raise PushError(str(exc) + (f" ({redact(rejected[0])[:300]})" if rejected else "")) from None
        self.result.update(objects=transfer.objects, bytes=transfer.bytes)
