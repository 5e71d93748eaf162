"""Writing to a repository from a plugin: objects, LFS objects, commits and ref moves.

Every ref a plugin moves goes through the hook chain (pre-receive, an atomic
compare-and-swap, post-receive jobs) with ``via`` "plugin" (or "mirror"), exactly as a
push: policy applies, other plugins hear of it, and ref caches see it at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pygit2

from gitd.errors import GitdError
from gitd.lfs.pointer import format_pointer
from gitd.plugins.events import ZERO_OID, PushEvent, RefUpdate, RepoInfo

if TYPE_CHECKING:
    from gitd.lfs.service import LfsService
    from gitd.portal import Portal

WRITER_VIA = ("plugin", "mirror")
CHUNK = 1 << 20


@dataclass(frozen=True)
class LfsUpload:
    """File content for ``RepoWriter.commit`` to store in Git LFS: bytes, or a file on disk
    (streamed, never read whole)."""

    source: bytes | Path

    def size(self) -> int:
        return len(self.source) if isinstance(self.source, bytes) else os.path.getsize(self.source)


FileContent = bytes | str | LfsUpload | None


class LfsRejected(Exception):
    """``RepoWriter.lfs_receive`` refused an object: its bytes are not ``size`` bytes with
    that SHA-256, or it is over the server's size limit. Nothing was stored."""


class RepoWriter:
    """Writes to one repository on behalf of one plugin (one writer per thread)."""

    def __init__(self, repo: RepoInfo, *, apply: Callable[..., PushEvent], lfs: LfsService | None, portal: Portal,
                 author: str):
        self.repo = repo
        self.repository = pygit2.Repository(str(repo.path))
        self._apply = apply
        self._lfs = lfs
        self._portal = portal
        self.author = author

    def blob(self, data: bytes) -> str:
        return str(self.repository.create_blob(data))

    def lfs_object(self, content: LfsUpload) -> bytes:
        """Store ``content`` in the LFS store (once, however many repositories hold it),
        linked to this repository; returns the pointer file's bytes."""
        if self._lfs is None:
            raise RuntimeError("no LFS store")
        size = content.size()
        oid = _sha256(content.source)
        if self._lfs.size(self.repo.id, oid) is None:
            lfs, repo_id, source = self._lfs, self.repo.id, content.source
            self._portal.run(lambda: lfs.receive(repo_id, oid, size, _chunks(source)))
        return format_pointer(oid, size)

    def lfs_missing(self, oids: Iterable[str]) -> set[str]:
        """Of ``oids`` (LFS object ids), those this repository does not hold."""
        wanted = set(oids)
        return self._lfs.missing(self.repo.id, wanted) if self._lfs is not None else wanted

    def lfs_receive(self, oid: str, size: int, chunks: Iterable[bytes]) -> bytes:
        """Store the LFS object ``oid`` of ``size`` bytes from ``chunks`` (an iterator, read on
        this thread as the store takes them: a download streamed in, never held whole),
        linked to this repository; returns the pointer file's bytes. The bytes are hashed
        as they arrive: if they are not ``size`` bytes with SHA-256 ``oid``, LfsRejected is
        raised and nothing is stored. An object the store already has (for another
        repository, say) is not written again, but its bytes are still checked: knowing an
        id is never enough to get an object."""
        if self._lfs is None:
            raise RuntimeError("no LFS store")
        lfs, repo_id, source = self._lfs, self.repo.id, iter(chunks)

        async def store() -> None:
            await lfs.receive(repo_id, oid, size, _from_thread(source))

        try:
            self._portal.run(store)
        except GitdError as exc:
            if exc.status in (413, 422):  # ObjectMismatch, ObjectTooLarge, a bad oid or size
                raise LfsRejected(exc.message) from None
            raise
        return format_pointer(oid, size)

    def commit(self, ref: str, files: Mapping[str, FileContent], *, message: str, parent: str | None = None,
               replace: bool = False, via: str = "plugin", push_options: list[str] | None = None) -> str:
        """Commit ``files`` (``None`` deletes a path; ``LfsUpload`` stores the content in LFS)
        on top of ``ref`` and move it through the hook chain; returns the new commit.

        ``parent`` is the commit ``ref`` must be at (compare-and-swap); by default the ref's
        current commit, or none for a new ref. ``replace``: the new tree holds only
        ``files`` (for a generated branch such as refs/convert/parquet). Raises
        ``gitd.PushRejected`` if a pre-receive check refuses it, and a conflict error if the
        ref moved meanwhile."""
        if not ref.startswith("refs/"):
            raise ValueError(f"a full ref name is needed, not {ref!r}")
        current = self.repository.references.get(ref)
        head = str(current.resolve().target) if current is not None else None
        base = parent if parent is not None else head
        index = pygit2.Index()
        if base is not None and not replace:
            index.read_tree(self.repository[base].peel(pygit2.Commit).tree)
        for path, content in files.items():
            if content is None:
                if path in index:
                    index.remove(path)
                continue
            if isinstance(content, LfsUpload):
                data = self.lfs_object(content)
            else:
                data = content.encode() if isinstance(content, str) else content
            index.add(pygit2.IndexEntry(path, self.repository.create_blob(data), pygit2.GIT_FILEMODE_BLOB))
        tree = index.write_tree(self.repository)
        now = int(time.time())
        sig = pygit2.Signature(self.author, f"{self.author}@plugins.gitd", now, 0)
        parents = [pygit2.Oid(hex=base)] if base is not None else []
        new = str(self.repository.create_commit(None, sig, sig, message, tree, parents))
        self.update_refs([RefUpdate(ref, base or ZERO_OID, new)], via=via, push_options=push_options)
        return new

    def update_refs(self, updates: list[RefUpdate], *, via: str = "plugin",
                    push_options: list[str] | None = None) -> PushEvent:
        """Move refs to objects already in the repository (a mirror's fetch, say) through the
        hook chain, all or none."""
        if via not in WRITER_VIA:
            raise ValueError(f"a plugin moves refs with via {' or '.join(WRITER_VIA)}, not {via!r}")
        return self._apply(self.repo, updates, via=via, pusher=None, push_options=push_options or [])


def _sha256(source: bytes | Path) -> str:
    if isinstance(source, bytes):
        return hashlib.sha256(source).hexdigest()
    digest = hashlib.sha256()
    with open(source, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


async def _from_thread(source: Iterator[bytes]) -> AsyncIterator[bytes]:
    """The chunks of a blocking iterator, each read on a worker thread (not the loop's)."""
    done = object()
    while True:
        chunk = await asyncio.to_thread(next, source, done)
        if chunk is done:
            return
        yield chunk  # type: ignore[misc]


async def _chunks(source: bytes | Path) -> AsyncIterator[bytes]:
    if isinstance(source, bytes):
        yield source
        return
    with open(source, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def apply_through(portal: Portal, chain: Any) -> Callable[..., PushEvent]:
    """``apply(repo, updates, via=..., pusher=..., push_options=...)`` running the hook chain's
    ``apply_updates`` on the daemon's loop, for code on worker threads."""

    def apply(repo: RepoInfo, updates: list[RefUpdate], **kwargs: Any) -> PushEvent:
        return portal.run(lambda: chain.apply_updates(repo, updates, **kwargs))

    return apply
