"""``LfsService``: the one facade every transport uses for Git LFS objects and locks.

The HTTP batch API uses it now; the pure-SSH ``git-lfs-transfer`` and the Hub API use
the same calls. It never decides access: a transport first asks
``Access.require(principal, repo, AccessLevel.READ | WRITE)`` and then passes the
repository id here. Everything is scoped to one repository: an object is *held* by a
repository once bytes hashing to its oid were uploaded to that repository, so knowing
an oid is never enough to read it (objects are stored once, linked per repository).

Objects
    ``missing(repo_id, oids) -> set[str]``
        the oids the repository does not hold (or whose bytes storage lost).
    ``size(repo_id, oid) -> int | None``
        the size of a held object; None if the repository does not hold it.
    ``status(repo_id, oids) -> dict[str, ObjectStatus]``
        held/lost per oid, with sizes (for batch answers: 404 vs 410 vs no-op).
    ``check_object(oid, size)`` / ``check_upload(oid, size)``
        raise Unprocessable for a bad oid or size, and (uploads) ObjectTooLarge over
        ``lfs.max_object_size``: per-object 422 in a batch.
    ``await receive(repo_id, oid, size, chunks)``
        stream an upload: hashed and counted as it arrives, then linked to the
        repository. Raises ObjectMismatch (422) and stores nothing when the bytes are not
        ``size`` bytes with SHA-256 ``oid``. If the object is already stored the bytes
        are still hashed (proof of possession) but not written again.
    ``await open(repo_id, oid, start=0, end=None) -> ObjectReader``
        the bytes (``end`` exclusive) of a held object; NotFound (404) if the repository
        does not hold it, ObjectGone (410) if storage lost it. ``aclose()`` the reader.
    ``local_path(repo_id, oid) -> Path | None``
        the file of a held object on the local backend (for sendfile), else None.
    ``download_url(repo_id, oid, ttl) -> str | None``
        a presigned URL when the backend presigns downloads (S3 with a public
        endpoint); None means: stream through the daemon.
    ``upload_url(repo_id, oid, size, ttl) -> DirectUpload | None``
        a presigned upload into a staging object (S3 ``direct = true`` mode).
    ``await verify(repo_id, oid, size, staged=None)``
        succeeds if the repository holds the object with that size. With ``staged``
        (a direct upload), re-hashes the staging object from S3 first, then links it.
    ``await chunked_begin(oid, size, chunk_size) -> ChunkedUpload | None``,
    ``await chunked_write(upload, number, chunks) -> etag``,
    ``await chunked_finish(repo_id, upload, etags)``
        an upload in numbered parts (Hugging Face's ``multipart`` transfer), any order,
        assembled and re-hashed on completion, then linked to the repository; None from
        ``chunked_begin`` when the backend cannot. Abandoned uploads go with ``gitd lfs gc``.

Locks
    ``locks.create(repo_id, owner, path, ref=None) -> Lock`` (LockConflict: 409),
    ``locks.list(repo_id, path=, lock_id=, cursor=, limit=) -> (locks, next_cursor)``,
    ``locks.verify(repo_id, account, cursor=, limit=) -> (ours, theirs, next_cursor)``,
    ``locks.unlock(repo_id, lock_id, account, force=, is_admin=) -> Lock``;
    see ``gitd.lfs.locks``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from gitd.errors import NotFound, Unprocessable
from gitd.lfs.errors import ObjectGone, ObjectMismatch, ObjectTooLarge, StorageUnavailable
from gitd.lfs.locks import Locks
from gitd.lfs.objects import DELETING, LOST, STORED, ObjectTable
from gitd.lfs.storage.base import (
    ChunkedUpload,
    ChunkedUploads,
    DirectUpload,
    LocalFiles,
    ObjectReader,
    ObjectStore,
    PresignedStore,
)
from gitd.lfs.streams import Verifier, grouped, is_oid
from gitd.ops.diskspace import DiskSpace

log = logging.getLogger("gitd.lfs")
T = TypeVar("T")

HASH_BLOCK = 4 * 1024 * 1024
#: Most parts one chunked upload is split into (the chunk size grows beyond that).
MAX_CHUNKS = 1000
#: The largest size an object can have: SQLite's largest integer (the store keeps sizes there).
MAX_SIZE = 2**63 - 1


@dataclass(frozen=True)
class ObjectStatus:
    """What a repository knows of one oid: held (``lost`` when storage lost the bytes)."""

    size: int
    lost: bool = False


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


class LfsService:
    def __init__(self, objects: ObjectTable, storage: ObjectStore, locks: Locks, *, max_object_size: int = 0,
                 direct_uploads: bool = False, disk: DiskSpace | None = None):
        self.objects = objects
        # The local disk the objects go to: below its watermark, uploads are refused (507).
        self.disk = disk
        self.storage = storage
        self.locks = locks
        self.max_object_size = max_object_size
        self.direct_uploads = direct_uploads and self._presigner() is not None

    def _presigner(self) -> PresignedStore | None:
        storage = self.storage
        if isinstance(storage, PresignedStore) and storage.presign_enabled:
            return storage
        return None

    async def _db(self, function: Callable[..., T], *args: Any) -> T:
        """A write to the object tables, off the event loop (see ``Store.run``)."""
        return await self.objects.store.run(function, *args)

    # -- queries --------------------------------------------------------------------------------
    def status(self, repo_id: int, oids: Iterable[str]) -> dict[str, ObjectStatus]:
        return {oid: ObjectStatus(row.size, lost=row.state != STORED)
                for oid, row in self.objects.held(repo_id, oids).items()}

    def missing(self, repo_id: int, oids: Iterable[str]) -> set[str]:
        wanted = set(oids)
        held = self.status(repo_id, wanted)
        return {oid for oid in wanted if oid not in held or held[oid].lost}

    def size(self, repo_id: int, oid: str) -> int | None:
        found = self.status(repo_id, [oid]).get(oid)
        return found.size if found is not None and not found.lost else None

    def check_object(self, oid: object, size: object) -> None:
        """Unprocessable unless ``oid`` is a SHA-256 oid and ``size`` a byte count."""
        if not is_oid(oid):
            raise Unprocessable("invalid object id: expected 64 lowercase hex digits (sha256)")
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_SIZE:
            raise Unprocessable("invalid object size: expected a whole number of bytes")

    def check_upload(self, oid: object, size: object) -> None:
        """``check_object``, and ObjectTooLarge above ``lfs.max_object_size``."""
        self.check_object(oid, size)
        if self.max_object_size and size > self.max_object_size:
            raise ObjectTooLarge(
                f"object is {_human(size)}, larger than this server's limit of {_human(self.max_object_size)} "
                "for one Git LFS object"
            )

    def check_storage(self) -> None:
        """StorageUnavailable (503) while the object store is known to be down: hand out no links."""
        if self.storage.health is not None:
            self.storage.health.check_up()

    def check_room(self) -> None:
        """InsufficientStorage (507) while the disk objects are stored on is below its watermark."""
        if self.disk is not None:
            self.disk.check()

    # -- uploads --------------------------------------------------------------------------------
    async def receive(self, repo_id: int, oid: str, size: int, chunks: AsyncIterable[bytes]) -> None:
        self.check_upload(oid, size)
        self.check_room()
        row = await self._db(self.objects.touch, oid)
        if row is not None and row.state == DELETING:
            raise StorageUnavailable("this object is being garbage-collected right now; try again shortly")
        if row is not None and row.state == STORED and row.size == size and await self.storage.stat(oid) == size:
            await self._prove(oid, size, chunks)
            if await self._db(self.objects.link, repo_id, oid):
                return
            raise StorageUnavailable("this object was removed while it was being uploaded; try again")
        await self.storage.put(oid, size, chunks)
        await self._db(self.objects.add_and_link, repo_id, oid, size)
        log.info("stored LFS object %s (%d bytes) for repository %d", oid, size, repo_id)

    async def _prove(self, oid: str, size: int, chunks: AsyncIterable[bytes]) -> None:
        """Hash the upload of an object we already store, without writing it: proof of possession."""
        verifier = Verifier(oid, size)
        pending: asyncio.Future[None] | None = None
        try:
            async for group in grouped(chunks, HASH_BLOCK):
                if pending is not None:
                    await pending
                pending = asyncio.ensure_future(asyncio.to_thread(verifier.update_all, group))
            if pending is not None:
                await pending
                pending = None
        finally:
            if pending is not None:
                with contextlib.suppress(BaseException):
                    await asyncio.shield(pending)
        verifier.check()

    def upload_url(self, repo_id: int, oid: str, size: int, ttl: int) -> DirectUpload | None:
        presigner = self._presigner()
        if not self.direct_uploads or presigner is None or size > presigner.max_direct_upload:
            return None
        return presigner.presign_put(oid, ttl)

    async def verify(self, repo_id: int, oid: str, size: int, *, staged: str | None = None) -> None:
        self.check_upload(oid, size)
        if staged is not None:
            presigner = self._presigner()
            if presigner is None:
                raise NotFound("no such upload")
            try:
                await presigner.promote_staged(staged, oid, size)
            except FileNotFoundError:
                if self.size(repo_id, oid) == size:
                    return  # a retried verify of an upload already promoted
                raise NotFound(f"object {oid} was not uploaded") from None
            await self._db(self.objects.add_and_link, repo_id, oid, size)
            log.info("stored LFS object %s (%d bytes, direct upload) for repository %d", oid, size, repo_id)
            return
        held = self.status(repo_id, [oid]).get(oid)
        if held is None or held.lost:
            raise NotFound(f"object {oid} was not uploaded")
        if held.size != size:
            raise ObjectMismatch(f"object {oid} is {held.size} bytes, not {size}")

    # -- chunked uploads ------------------------------------------------------------------------
    def _chunked(self) -> ChunkedUploads | None:
        return self.storage if isinstance(self.storage, ChunkedUploads) else None

    async def chunked_begin(self, oid: str, size: int, chunk_size: int) -> ChunkedUpload | None:
        storage = self._chunked()
        if storage is None:
            return None
        self.check_upload(oid, size)
        self.check_room()
        wanted = max(1, chunk_size, -(-size // MAX_CHUNKS))
        return await storage.chunked_begin(oid, size, storage.chunk_size_for(size, wanted))

    async def chunked_write(self, upload: ChunkedUpload, number: int, chunks: AsyncIterable[bytes]) -> str:
        storage = self._chunked()
        if storage is None or not 1 <= number <= upload.part_count:
            raise NotFound(f"this upload has no part {number}")
        self.check_room()
        try:
            return await storage.chunked_write(upload, number, chunks)
        except FileNotFoundError:
            raise NotFound("this upload was completed, cancelled or has expired; upload the file again") from None

    async def chunked_abort(self, upload: ChunkedUpload) -> None:
        storage = self._chunked()
        if storage is not None:
            await storage.chunked_abort(upload)

    async def chunked_finish(self, repo_id: int, upload: ChunkedUpload, etags: dict[int, str]) -> None:
        storage = self._chunked()
        self.check_upload(upload.oid, upload.size)
        row = await self._db(self.objects.touch, upload.oid)
        if row is not None and row.state == DELETING:
            raise StorageUnavailable("this object is being garbage-collected right now; try again shortly")
        try:
            if storage is None:
                raise FileNotFoundError(upload.staging)
            await storage.chunked_finish(upload, etags)
        except FileNotFoundError:
            if self.size(repo_id, upload.oid) == upload.size:
                return  # a retried completion of an upload that already finished
            raise NotFound("this upload was completed, cancelled or has expired; upload the file again") from None
        await self._db(self.objects.add_and_link, repo_id, upload.oid, upload.size)
        log.info("stored LFS object %s (%d bytes, %d parts) for repository %d", upload.oid, upload.size,
                 upload.part_count, repo_id)

    # -- downloads ------------------------------------------------------------------------------
    def _held_size(self, repo_id: int, oid: str) -> int:
        if not is_oid(oid):
            raise NotFound("object not found")
        held = self.status(repo_id, [oid]).get(oid)
        if held is None:
            raise NotFound("object not found")
        if held.lost:
            raise ObjectGone(f"object {oid} is no longer available on this server; push it again to restore it")
        return held.size

    async def open(self, repo_id: int, oid: str, start: int = 0, end: int | None = None) -> ObjectReader:
        self._held_size(repo_id, oid)
        try:
            return await self.storage.open(oid, start, end)
        except FileNotFoundError:
            self._mark_lost(oid)
            raise ObjectGone(f"object {oid} is no longer available on this server; push it again to restore it")

    def local_path(self, repo_id: int, oid: str) -> Path | None:
        self._held_size(repo_id, oid)
        if not isinstance(self.storage, LocalFiles):
            return None
        path = self.storage.local_path(oid)
        if path is None:
            self._mark_lost(oid)
            raise ObjectGone(f"object {oid} is no longer available on this server; push it again to restore it")
        return path

    def download_url(self, repo_id: int, oid: str, ttl: int) -> str | None:
        presigner = self._presigner()
        if presigner is None:
            return None
        self._held_size(repo_id, oid)
        return presigner.presign_get(oid, ttl)

    def _mark_lost(self, oid: str) -> None:
        if self.objects.set_state(oid, LOST, only_from=STORED):
            log.error("LFS object %s is recorded as stored but storage does not have it; marked lost", oid)

    async def close(self) -> None:
        await self.storage.close()
