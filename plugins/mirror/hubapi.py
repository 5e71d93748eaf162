"""Mirroring from a hub that offers no git endpoint: its file API.

The hub's branches and tags (``/api/TYPE/ID/refs``) are read, and for each one whose
upstream commit changed, the tree at that commit (``/tree/COMMIT?recursive=true``, page
by page) becomes a commit here: files are downloaded through ``/resolve/COMMIT/PATH``,
plain files checked against their git blob id, LFS files streamed into the LFS store
(checked against their SHA-256) and committed as pointers. Files whose blob (or LFS
object) the repository already has are not downloaded again, so a sync after a small
upstream change downloads only what changed. Each mirrored commit has the previous one
as its parent (history here grows forward, one commit per sync and ref) and names the
upstream commit in its message; commit ids differ from the upstream's, since the file
API does not give the upstream's commits.

As with git mirrors, the LFS objects go in first and the refs move last, all at once,
through the hook chain (``via="mirror"``).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pygit2

from gitd import LfsRejected, PluginContext, PushRejected, RefConflict, RefUpdate, RepoInfo

from . import gitrepo, hubsource
from .gitrepo import ZERO
from .lfs import CHUNK, LfsError, opener
from .records import PullMirror, Records
from .remote import Credentials, check_public_host, redact

_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
_HEX40 = re.compile(r"^[0-9a-f]{40}$")
MAX_PAGES = 10_000


class HubApiError(Exception):
    pass


def pointer_bytes(oid: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


class HubApiSync:
    def __init__(self, context: PluginContext, records: Records, mirror: PullMirror, repo: RepoInfo,
                 creds: Credentials, options: Any, progress: Callable[..., None]):
        assert mirror.hub_url and mirror.hub_repo_id
        self.context = context
        self.records = records
        self.mirror = mirror
        self.repo = repo
        self.creds = creds
        self.options = options
        self.progress = progress
        self.hub, self.repo_id, self.type = mirror.hub_url, mirror.hub_repo_id, mirror.type
        self.repository = pygit2.Repository(str(repo.path))
        self.result: dict[str, Any] = {"mode": "api", "files": 0, "bytes": 0, "lfs_objects": 0, "lfs_bytes": 0}
        self.guard = check_public_host if mirror.restricted else None
        self._open = opener(options.proxy, self.guard).open
        self._built: dict[str, str] = {}

    def _json(self, url: str) -> tuple[Any, dict[str, str]]:
        try:
            return hubsource.get_json(url, self.creds, stall=self.options.stall, proxy=self.options.proxy,
                                      guard=self.guard)
        except hubsource.HubError as exc:
            raise HubApiError(str(exc)) from None

    # -- the sync ------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        self.progress("fetching", force=True)
        upstream = self._upstream_refs()
        known = self.records.hub_refs(self.repo.id)
        published = gitrepo.list_refs(self.context, self.repo.path, self.mirror.refs)
        updates: list[RefUpdate] = []
        state: dict[str, tuple[str, str] | None] = {}
        for ref, commit in sorted(upstream.items()):
            current = published.get(ref)
            previous = known.get(ref)
            if previous is not None and previous[0] == commit and previous[1] == current:
                continue
            local = self._built.get(commit) or self._build(commit, current)
            self._built[commit] = local
            state[ref] = (commit, local)
            if local != current:
                updates.append(RefUpdate(ref, current or ZERO, local))
        if self.mirror.prune:
            for ref, old in sorted(published.items()):
                if ref not in upstream:
                    updates.append(RefUpdate(ref, old, ZERO))
                    state[ref] = None
        if updates:
            complaint = gitrepo.check_new_objects(self.context, self.repo.path, [u.new for u in updates])
            if complaint is not None:
                raise HubApiError(f"git's object checks refused what the hub serves, so nothing was published: "
                                  f"{redact(complaint)}")
            self.progress("publishing", force=True, refs=len(updates))
            try:
                self.context.writer(self.repo).update_refs(updates, via="mirror")
            except PushRejected as exc:
                raise HubApiError(f"a server check refused the update, so nothing was published: {exc.message}"
                                  ) from None
            except RefConflict:
                raise HubApiError("a ref of the repository moved while the mirror synced; nothing was published")
        self.records.set_hub_refs(self.repo.id, state)
        self.result.update(refs_changed=len(updates), up_to_date=not updates,
                           seconds=round(time.monotonic() - started, 3))
        return self.result

    def _upstream_refs(self) -> dict[str, str]:
        data, _ = self._json(hubsource.api_url(self.hub, self.repo_id, self.type, "/refs"))
        refs: dict[str, str] = {}
        for kind in ("branches", "tags"):
            for item in data.get(kind, []) if isinstance(data, dict) else []:
                ref, commit = item.get("ref"), item.get("targetCommit")
                if not isinstance(ref, str) or not isinstance(commit, str) or not _HEX40.match(commit):
                    continue
                if gitrepo.in_prefixes(ref, self.mirror.refs) and not any(c in ref for c in " \n\0~^:?*[\\"):
                    refs[ref] = commit
        return refs

    # -- one upstream commit -------------------------------------------------------------------
    def _entries(self, commit: str) -> Iterator[dict[str, Any]]:
        url: str | None = hubsource.api_url(self.hub, self.repo_id, self.type,
                                            f"/tree/{commit}?recursive=true&expand=false")
        for _ in range(MAX_PAGES):
            if url is None:
                return
            page, headers = self._json(url)
            if not isinstance(page, list):
                raise HubApiError(f"the hub's tree listing of {commit} is not a list")
            yield from (e for e in page if isinstance(e, dict) and e.get("type") == "file")
            match = _NEXT.search(headers.get("Link", "") or headers.get("link", ""))
            url = match.group(1) if match else None
        raise HubApiError("the hub's tree listing did not end")

    def _build(self, commit: str, parent: str | None) -> str:
        index = pygit2.Index()
        for entry in self._entries(commit):
            path, oid, size = entry.get("path"), entry.get("oid"), entry.get("size")
            if not isinstance(path, str) or not isinstance(size, int) or not path or path.startswith("/"):
                raise HubApiError("the hub's tree listing has an entry without a path or size")
            lfs = entry.get("lfs")
            if isinstance(lfs, dict):
                blob = self._lfs_file(commit, path, str(lfs.get("oid") or lfs.get("sha256")), int(lfs.get("size", -1)))
            else:
                blob = self._plain_file(commit, path, str(oid), size)
            index.add(pygit2.IndexEntry(path, pygit2.Oid(hex=blob), pygit2.GIT_FILEMODE_BLOB))
        tree = index.write_tree(self.repository)
        now = int(time.time())
        sig = pygit2.Signature("gitd mirror", "mirror@gitd.invalid", now, 0)
        message = (f"Mirror of {self.repo_id} at {commit[:12]}\n\nSource: {redact(self.hub)} "
                   f"({self.type} {self.repo_id})\nUpstream-Commit: {commit}\n")
        parents = [pygit2.Oid(hex=parent)] if parent else []
        return str(self.repository.create_commit(None, sig, sig, message, tree, parents))

    def _resolve_url(self, commit: str, path: str) -> str:
        return (f"{hubsource.git_url(self.hub, self.repo_id, self.type)}/resolve/{commit}/"
                f"{quote(path, safe='/')}")

    def _download(self, commit: str, path: str) -> Iterator[bytes]:
        headers = {"User-Agent": "gitd-mirror"}
        auth = self.creds.bearer()
        if auth:
            headers["Authorization"] = auth
        request = urllib.request.Request(self._resolve_url(commit, path), headers=headers)
        try:
            resp = self._open(request, timeout=self.options.stall)
        except urllib.error.HTTPError as exc:
            raise HubApiError(f"downloading {path} failed: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError, LfsError) as exc:
            raise HubApiError(f"downloading {path} failed: {redact(str(exc))}") from None
        with resp:
            try:
                while chunk := resp.read(CHUNK):
                    yield chunk
            except OSError as exc:
                raise HubApiError(f"downloading {path} failed: {exc}") from None

    def _plain_file(self, commit: str, path: str, oid: str, size: int) -> str:
        if _HEX40.match(oid) and oid in self.repository:
            return oid  # already here (an earlier sync, another file): not downloaded again
        digest = hashlib.sha1(b"blob %d\0" % size)
        fd, temp = tempfile.mkstemp(prefix="gitd-mirror-")
        try:
            received = 0
            with os.fdopen(fd, "wb") as out:
                for chunk in self._download(commit, path):
                    received += len(chunk)
                    if received > size:
                        break
                    digest.update(chunk)
                    out.write(chunk)
            if received != size or digest.hexdigest() != oid:
                raise HubApiError(f"{path}: the hub sent content that does not match its git id {oid[:12]}")
            blob = str(self.repository.create_blob_fromdisk(temp))
        finally:
            Path(temp).unlink(missing_ok=True)
        self.result["files"] += 1
        self.result["bytes"] += size
        return blob

    def _lfs_file(self, commit: str, path: str, oid: str, size: int) -> str:
        writer = self.context.writer(self.repo)
        if size < 0 or not re.fullmatch(r"[0-9a-f]{64}", oid):
            raise HubApiError(f"{path}: the hub's LFS details are malformed")
        if writer.lfs_missing([oid]):
            self.progress("lfs", path=path, bytes=size)
            try:
                writer.lfs_receive(oid, size, self._download(commit, path))
            except LfsRejected as exc:
                raise HubApiError(f"{path}: LFS object {oid} rejected ({exc}); nothing was published") from None
            self.result["lfs_objects"] += 1
            self.result["lfs_bytes"] += size
        return str(self.repository.create_blob(pointer_bytes(oid, size)))
