"""The storage interfaces, split by capability.

Every backend is an ``ObjectStore`` (the streaming capability): objects are addressed
by their SHA-256 oid, written from an async byte iterator that is hashed and counted
on the fly into a temporary object and promoted atomically only when both match, and
read back with an optional byte range. Some backends add capabilities that callers
test for with ``isinstance``:

* ``LocalFiles``: objects are plain files (the HTTP layer sends them with sendfile);
* ``PresignedStore``: clients can be handed presigned GET/PUT URLs on a host they can
  reach (``lfs.s3.public_endpoint``); a presigned upload lands in a staging object
  that ``promote_staged`` re-hashes before it counts as stored;
* ``MultipartStore``: server-side multipart uploads, with presignable part URLs;
* ``ChunkedUploads``: an object sent as numbered parts of a fixed size, in any order,
  assembled and re-hashed on completion (Hugging Face's ``multipart`` LFS transfer).

Storage knows nothing about repositories or access: ``gitd.lfs.service`` owns the
per-repository object table and decides who may read or link what.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gitd.lfs.storage.health import StorageHealth


@dataclass(frozen=True)
class StoredObject:
    """An object as storage lists it: ``mtime`` is seconds since the epoch."""

    oid: str
    size: int
    mtime: float


class ObjectReader(AsyncIterator[bytes], ABC):
    """The bytes of an object (or of a range of it). Always ``aclose()`` it."""

    @abstractmethod
    async def aclose(self) -> None: ...


class ObjectStore(ABC):
    """The streaming capability, which every backend has."""

    name: str = "abstract"
    #: Whether a remote store answers (S3); None where calls cannot be "down" (local disk).
    health: StorageHealth | None = None

    async def probe(self) -> None:  # noqa: B027 - a local store has nothing to probe
        """Find out whether the store answers, and tell ``health`` (a remote store)."""

    @abstractmethod
    async def put(self, oid: str, size: int, chunks: AsyncIterable[bytes]) -> None:
        """Store ``chunks`` as object ``oid``.

        The bytes are hashed and counted as they arrive, into a temporary object that
        is promoted to ``oid`` atomically only if they are exactly ``size`` bytes with
        SHA-256 ``oid``. Otherwise raises ObjectMismatch; an error or a cancellation at
        any point leaves nothing behind (neither the object nor a temporary).
        """

    @abstractmethod
    async def open(self, oid: str, start: int = 0, end: int | None = None) -> ObjectReader:
        """Read bytes ``start`` to ``end`` (exclusive; None: to the end) of ``oid``.

        Raises FileNotFoundError when the object is not stored.
        """

    @abstractmethod
    async def stat(self, oid: str) -> int | None:
        """The stored size of ``oid``, or None if it is not stored."""

    @abstractmethod
    async def delete(self, oid: str) -> None:
        """Remove ``oid``; removing an absent object is not an error."""

    @abstractmethod
    def iter_objects(self) -> AsyncIterator[StoredObject]:
        """Every stored object (temporaries excluded), in no particular order."""

    @abstractmethod
    async def digest(self, oid: str) -> tuple[str, int]:
        """Re-read ``oid`` and return its (sha256 hex, size). FileNotFoundError if absent."""

    @abstractmethod
    async def sweep_incomplete(self, older_than: float, *, dry_run: bool = False) -> int:
        """Remove temporaries and unfinished uploads last written before ``older_than``
        (seconds since the epoch), left by crashes or abandoned direct uploads.
        Returns how many were removed (``dry_run``: how many would be, removing nothing)."""

    @abstractmethod
    async def close(self) -> None:
        """Release clients and threads."""


class LocalFiles(ABC):
    """Objects are files on a local filesystem."""

    @abstractmethod
    def local_path(self, oid: str) -> Path | None:
        """The file holding ``oid``, or None if it is not stored."""


@dataclass(frozen=True)
class DirectUpload:
    """A presigned upload: the client PUTs to ``url``; the bytes land in ``staging``."""

    url: str
    staging: str
    headers: dict[str, str]


class PresignedStore(ABC):
    """Clients can move bytes straight to and from the store with presigned URLs."""

    #: Largest object a single presigned PUT may carry (S3: 5 GB).
    max_direct_upload: int = 5 * 1000**3

    @property
    @abstractmethod
    def presign_enabled(self) -> bool:
        """False when no host reachable by clients is configured: then nothing is presigned."""

    @abstractmethod
    def presign_get(self, oid: str, ttl: int) -> str:
        """A URL that downloads ``oid`` without other credentials, valid ``ttl`` seconds."""

    @abstractmethod
    def presign_put(self, oid: str, ttl: int) -> DirectUpload:
        """A URL that uploads into a new staging object; see ``promote_staged``."""

    @abstractmethod
    async def promote_staged(self, staging: str, oid: str, size: int) -> None:
        """Re-hash the staging object; promote it to ``oid`` if it is ``size`` bytes with
        SHA-256 ``oid``, else raise ObjectMismatch. The staging object is removed either
        way; FileNotFoundError if it does not exist (the client never uploaded)."""


@dataclass(frozen=True)
class UploadedPart:
    number: int
    etag: str


class MultipartStore(ABC):
    """Server-side multipart uploads into staging objects (S3 semantics: parts of at
    least 5 MiB except the last, at most 10,000 of them)."""

    @abstractmethod
    async def multipart_begin(self) -> tuple[str, str]:
        """Start an upload into a new staging object; returns (staging, upload_id)."""

    @abstractmethod
    async def multipart_put(self, staging: str, upload_id: str, number: int, data: bytes) -> UploadedPart:
        """Upload part ``number`` (from 1)."""

    @abstractmethod
    def presign_part(self, staging: str, upload_id: str, number: int, ttl: int) -> str:
        """A URL a client can PUT part ``number`` to; the response carries its ETag."""

    @abstractmethod
    async def multipart_complete(self, staging: str, upload_id: str, parts: list[UploadedPart]) -> None:
        """Assemble the staging object; follow with ``PresignedStore.promote_staged``."""

    @abstractmethod
    async def multipart_abort(self, staging: str, upload_id: str) -> None:
        """Discard the upload and its parts."""


@dataclass(frozen=True)
class ChunkedUpload:
    """An object on its way in numbered parts: every part is ``chunk_size`` bytes except
    the last, which is shorter. ``staging`` and ``upload_id`` are the backend's handle."""

    oid: str
    size: int
    chunk_size: int
    staging: str
    upload_id: str = ""

    @property
    def part_count(self) -> int:
        return max(1, math.ceil(self.size / self.chunk_size))

    def part_length(self, number: int) -> int:
        """Bytes part ``number`` (from 1) must carry; ValueError outside 1..part_count."""
        if not 1 <= number <= self.part_count:
            raise ValueError(f"part {number} is outside 1..{self.part_count}")
        return min(self.chunk_size, self.size - (number - 1) * self.chunk_size)


class ChunkedUploads(ABC):
    """Uploads in parts that arrive in any order, possibly in parallel or more than once
    (a retried part replaces the earlier one), then are assembled in order while the
    whole is hashed. Only a verified object is ever stored."""

    @abstractmethod
    def chunk_size_for(self, size: int, wanted: int) -> int:
        """The part size to hand out for a ``size``-byte object: ``wanted`` or more, as the
        backend's limits require."""

    @abstractmethod
    async def chunked_begin(self, oid: str, size: int, chunk_size: int) -> ChunkedUpload:
        """Start an upload of ``size`` bytes in parts of ``chunk_size``."""

    @abstractmethod
    async def chunked_write(self, upload: ChunkedUpload, number: int, chunks: AsyncIterable[bytes]) -> str:
        """Stream part ``number`` and return its ETag (a quoted string). The part must be
        exactly ``upload.part_length(number)`` bytes, else ObjectMismatch and the part is
        not kept. FileNotFoundError if the upload no longer exists (finished, aborted or
        swept)."""

    @abstractmethod
    async def chunked_finish(self, upload: ChunkedUpload, etags: dict[int, str]) -> None:
        """Assemble parts 1..part_count (each must still carry the ETag given for it),
        hashing the whole; store it as ``upload.oid`` only if it is ``upload.size`` bytes
        with that SHA-256. Otherwise raise ObjectMismatch. The parts are removed either
        way. FileNotFoundError if the upload no longer exists."""

    @abstractmethod
    async def chunked_abort(self, upload: ChunkedUpload) -> None:
        """Discard the upload and its parts (absent is not an error)."""
