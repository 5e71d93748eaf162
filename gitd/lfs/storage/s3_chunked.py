"""Chunked uploads (Hugging Face's ``multipart`` transfer through the daemon) on S3, mixed
into ``S3Storage``: one server-side multipart upload into a staging object per upload.
The daemon hands out parts ("chunks") that are a whole number of S3 parts, and streams
each chunk into its own run of S3 part numbers as it arrives (flat memory, any order, a
retried chunk overwrites its run). Finishing checks every S3 part is there and matches
the ETag the chunk answered, completes the upload, then re-hashes the staging object
before it is copied to its oid (``promote_staged``)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from minio.datatypes import Part

from gitd.lfs.errors import ObjectMismatch
from gitd.lfs.storage.base import ChunkedUpload, ChunkedUploads, UploadedPart

if TYPE_CHECKING:
    from minio import Minio

    from gitd.lfs.storage.s3 import S3Settings

T = TypeVar("T")
MIB = 1024 * 1024
MIN_PART = 5 * MIB
MAX_PARTS = 10_000


def part_size_for(size: int, minimum: int) -> int:
    """Part size for a ``size``-byte object: at least ``minimum`` (and 5 MiB), and large
    enough for at most 10,000 parts; whole MiB."""
    want = max(minimum, MIN_PART, math.ceil(size / MAX_PARTS))
    return math.ceil(want / MIB) * MIB


class S3ChunkedUploads(ChunkedUploads):
    """Mixed into S3Storage, whose client, bucket, settings and helpers it uses."""

    if TYPE_CHECKING:  # provided by S3Storage
        client: Minio
        bucket: str
        settings: S3Settings

        async def _run(self, func: Callable[..., T], *args: Any) -> T: ...
        def _check_staging(self, staging: str) -> None: ...
        def _new_staging(self, oid: str = "") -> str: ...
        async def _ship_parts(self, key: str, upload_id: str, first: int, part_size: int,
                              chunks: AsyncIterable[bytes], *, before: Callable[[memoryview], None] | None = None,
                              limit: int | None = None) -> list[UploadedPart]: ...
        async def _complete(self, key: str, upload_id: str, parts: list[UploadedPart]) -> None: ...
        async def promote_staged(self, staging: str, oid: str, size: int) -> None: ...

    def chunk_size_for(self, size: int, wanted: int) -> int:
        part = part_size_for(size, self.settings.part_size)
        return math.ceil(max(wanted, part) / part) * part

    def _layout(self, upload: ChunkedUpload) -> tuple[int, int]:
        """(S3 part size, S3 parts per chunk) of an upload."""
        self._check_staging(upload.staging)
        part = part_size_for(upload.size, self.settings.part_size)
        if upload.chunk_size % part:
            raise ValueError(f"chunk size {upload.chunk_size} is not a multiple of the part size {part}")
        return part, upload.chunk_size // part

    @staticmethod
    def _chunk_etag(etags: list[str]) -> str:
        digest = hashlib.md5("".join(e.strip('"') for e in etags).encode(), usedforsecurity=False).hexdigest()
        return f'"{digest}-{len(etags)}"'

    async def chunked_begin(self, oid: str, size: int, chunk_size: int) -> ChunkedUpload:
        staging = self._new_staging(oid)
        upload_id = await self._run(self.client._create_multipart_upload, self.bucket, staging,
                                    {"Content-Type": "application/octet-stream"})
        return ChunkedUpload(oid, size, chunk_size, staging, upload_id)

    async def chunked_write(self, upload: ChunkedUpload, number: int, chunks: AsyncIterable[bytes]) -> str:
        expected = upload.part_length(number)
        part, per_chunk = self._layout(upload)
        sent = 0

        async def counted() -> AsyncIterator[bytes]:
            nonlocal sent
            async for chunk in chunks:
                sent += len(chunk)
                yield chunk

        parts = await self._ship_parts(upload.staging, upload.upload_id, (number - 1) * per_chunk + 1, part,
                                       counted(), limit=expected)
        if sent != expected:
            raise ObjectMismatch(f"part {number} must be {expected} bytes, but {sent} were sent")
        return self._chunk_etag([p.etag for p in parts])

    async def _listed_parts(self, upload: ChunkedUpload) -> dict[int, Part]:
        def listing() -> dict[int, Part]:
            found: dict[int, Part] = {}
            marker: str | None = None
            for _ in range(MAX_PARTS):
                result = self.client._list_parts(self.bucket, upload.staging, upload.upload_id, max_parts=1000,
                                                 part_number_marker=marker)
                for p in result.parts:
                    found[p.part_number] = p
                if not result.is_truncated or not result.next_part_number_marker \
                        or result.next_part_number_marker == marker:
                    break
                marker = result.next_part_number_marker
            return found

        return await self._run(listing)

    async def chunked_finish(self, upload: ChunkedUpload, etags: dict[int, str]) -> None:
        part, per_chunk = self._layout(upload)
        try:
            listed = await self._listed_parts(upload)
            ordered: list[UploadedPart] = []
            for number in range(1, upload.part_count + 1):
                length = upload.part_length(number)
                first = (number - 1) * per_chunk + 1
                subs = [listed.get(n) for n in range(first, first + math.ceil(length / part))]
                if any(p is None for p in subs):
                    raise ObjectMismatch(f"part {number} of {upload.part_count} was never uploaded completely")
                present = [p for p in subs if p is not None]
                given = etags.get(number, "").strip().removeprefix("W/")
                if given != self._chunk_etag([p.etag for p in present]) or \
                        (all(p.size is not None for p in present) and sum(p.size or 0 for p in present) != length):
                    raise ObjectMismatch(f"part {number} does not carry the ETag its upload answered")
                ordered += [UploadedPart(p.part_number, p.etag) for p in present]
            await self._complete(upload.staging, upload.upload_id, ordered)
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._run(self.client._abort_multipart_upload, self.bucket, upload.staging,
                                               upload.upload_id))
            raise
        await self.promote_staged(upload.staging, upload.oid, upload.size)

    async def chunked_abort(self, upload: ChunkedUpload) -> None:
        self._check_staging(upload.staging)
        with contextlib.suppress(FileNotFoundError):
            await self._run(self.client._abort_multipart_upload, self.bucket, upload.staging, upload.upload_id)
