"""A pull mirror's LFS objects: the ones new commits point to and the repository lacks,
downloaded (``lfs_concurrency`` at once) and streamed into the LFS store, which checks
each against its SHA-256 as it arrives. From the remote's LFS batch API (the usual
endpoint, ``--lfs-url``, or the one git-lfs-authenticate names over ssh), or from a
``file://`` remote's own LFS store."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gitd import LfsRejected, PluginContext, RepoInfo

from .lfs import LfsClient, LfsError, LfsObject, file_chunks, file_lfs_path, objects_of, ssh_authenticate
from .records import PullMirror
from .remote import Credentials, GitAccess, Remote, check_public_host, lfs_endpoint, redact, ssh_target


class LfsFailed(Exception):
    """Some objects could not be fetched (the message says which); ``result`` counts the rest."""

    def __init__(self, message: str, result: dict[str, Any]):
        super().__init__(message)
        self.result = result


class LfsFetcher:
    def __init__(self, context: PluginContext, mirror: PullMirror, repo: RepoInfo, options: Any,
                 progress: Callable[..., None]):
        self.context = context
        self.mirror = mirror
        self.repo = repo
        self.options = options
        self.progress = progress
        self._lock = threading.Lock()
        self.done = {"objects": 0, "bytes": 0}

    def fetch(self, remote: Remote, creds: Credentials, access: GitAccess, pointers: set[tuple[str, int]]
              ) -> dict[str, Any]:
        """Fetch what is missing of ``pointers`` ((oid, size) pairs); returns the counts.
        LfsFailed if any object could not be fetched (the others stay stored)."""
        missing = self.context.writer(self.repo).lfs_missing({oid for oid, _ in pointers})
        wanted = objects_of((oid, size) for oid, size in pointers if oid in missing)
        held = len(pointers) - len(wanted)
        if not wanted:
            return {"lfs_objects": 0, "lfs_bytes": 0, "lfs_held": held}
        self.total = (len(wanted), sum(o.size for o in wanted))
        if remote.scheme == "file" and not self.mirror.lfs_url:
            failures = self._each(wanted, lambda obj: self._from_file(remote, obj))
        else:
            failures = self._from_server(self._client(remote, creds, access), wanted)
        result = {"lfs_objects": self.done["objects"], "lfs_bytes": self.done["bytes"], "lfs_held": held}
        if failures:
            shown = "; ".join(failures[:3]) + (f"; and {len(failures) - 3} more" if len(failures) > 3 else "")
            raise LfsFailed(f"{len(failures)} of {len(wanted)} LFS object(s) could not be fetched, so nothing was "
                            f"published: {shown}", result)
        return result

    def _stored(self, obj: LfsObject) -> None:
        with self._lock:
            self.done["objects"] += 1
            self.done["bytes"] += obj.size
            self.progress("lfs", objects=self.done["objects"], of=self.total[0], bytes=self.done["bytes"],
                          total=self.total[1])

    def _client(self, remote: Remote, creds: Credentials, access: GitAccess) -> LfsClient:
        headers: dict[str, str] = {}
        endpoint = self.mirror.lfs_url or lfs_endpoint(remote)
        if endpoint is None and remote.scheme == "ssh":
            target, path = ssh_target(remote)
            try:
                endpoint, headers = ssh_authenticate(access.ssh, target, path, "download", timeout=self.options.stall)
            except LfsError as exc:
                raise LfsFailed(str(exc), {}) from None
        elif creds.authorization() is not None:
            headers["Authorization"] = creds.authorization() or ""
        if endpoint is None:
            raise LfsFailed("this remote has no LFS server (set an LFS URL, or turn LFS off)", {})
        return LfsClient(endpoint, headers=headers, stall=self.options.stall, proxy=self.options.proxy,
                         guard=check_public_host if self.mirror.restricted else None)

    def _each(self, objects: list[Any], fetch: Callable[[Any], str | None]) -> list[str]:
        workers = max(1, min(self.options.lfs_concurrency, len(objects)))
        with ThreadPoolExecutor(workers, thread_name_prefix="gitd-mirror-lfs") as pool:
            return [f for f in pool.map(fetch, objects) if f is not None]

    def _from_file(self, remote: Remote, obj: LfsObject) -> str | None:
        path = file_lfs_path(remote.url[len("file://"):], obj.oid)
        if not path.is_file():
            return f"{obj.oid} is not in the upstream repository's LFS store"
        try:
            self.context.writer(self.repo).lfs_receive(obj.oid, obj.size, file_chunks(path))
        except LfsRejected as exc:
            return f"{obj.oid}: {exc}"
        self._stored(obj)
        return None

    def _from_server(self, client: LfsClient, wanted: list[LfsObject]) -> list[str]:
        try:
            answers = list(client.batch("download", wanted))
        except LfsError as exc:
            raise LfsFailed(str(exc), {}) from None

        def fetch(pair: tuple[LfsObject, dict[str, Any]]) -> str | None:
            obj, answer = pair
            error = answer.get("error")
            action = (answer.get("actions") or {}).get("download")
            if error or action is None:
                message = error.get("message") if isinstance(error, dict) else None
                return f"{obj.oid}: the upstream LFS server has no copy ({redact(str(message or 'no download link'))})"
            try:
                with client.download(obj, action) as chunks:
                    self.context.writer(self.repo).lfs_receive(obj.oid, obj.size, chunks)
            except LfsRejected as exc:
                return f"{obj.oid}: rejected ({exc})"
            except LfsError as exc:
                return str(exc)
            self._stored(obj)
            return None

        return self._each(answers, fetch)
