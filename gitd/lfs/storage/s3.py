"""S3 / MinIO storage through the minio client (plain S3 calls only).

* Keys: ``<prefix><oid[0:2]>/<oid[2:4]>/<oid>``; staging objects (presigned uploads,
  client multipart uploads) under ``<prefix>staging/``.
* Streaming ``put``: an object that fits in one part is buffered (at most one part),
  hashed, then PUT; anything larger is a server-side multipart upload straight to the
  final key, parts of at least max(``part_size``, size/10000) hashed as they stream,
  two in flight. The upload is completed only if hash and size match and is aborted
  otherwise, so a half-written object is never visible: completion is the atomic
  promote. (The issue asks for multipart above 5 GB; a single streamed PUT of a big
  object would need the whole body in memory with this client, so every object
  larger than one part goes multipart.)
* Chunked uploads (Hugging Face's ``multipart`` transfer through the daemon) are one
  server-side multipart upload into a staging object: the daemon hands out parts
  ("chunks") that are a whole number of S3 parts, and streams each chunk into its own
  run of S3 part numbers as it arrives (flat memory, any order, retries overwrite).
  Finishing checks every S3 part is there, completes the upload, then re-hashes the
  staging object before it is copied to its oid (``promote_staged``); see s3_chunked.py.
* Presigning uses a second client built on ``public_endpoint``: signing is offline
  (the region is configured), and clients only ever see that host.
* The minio client is synchronous: every call runs in this storage's thread pool.
  The multipart primitives are the client's underscore methods (stable across 7.x).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import secrets
from collections.abc import AsyncIterable, AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.commonconfig import ComposeSource, CopySource
from minio.datatypes import Part
from minio.error import MinioException, S3Error

from gitd.lfs.errors import ObjectMismatch, StorageUnavailable
from gitd.lfs.storage.base import (
    DirectUpload,
    MultipartStore,
    ObjectReader,
    ObjectStore,
    PresignedStore,
    StoredObject,
    UploadedPart,
)
from gitd.lfs.storage.health import StorageHealth
from gitd.lfs.storage.s3_chunked import MIB, S3ChunkedUploads, part_size_for
from gitd.lfs.streams import CHUNK, ThreadReader, Verifier, is_oid

T = TypeVar("T")
MAX_COPY = 5 * 1024**3
PARTS_IN_FLIGHT = 2
_MISSING = ("NoSuchKey", "NoSuchObject", "NoSuchUpload", "NotFound")


@dataclass(frozen=True)
class S3Settings:
    endpoint: str
    access_key: str
    secret_key: str
    bucket: str
    region: str = "us-east-1"
    secure: bool = True
    public_endpoint: str = ""
    direct: bool = False
    prefix: str = "lfs/"
    part_size: int = 8 * MIB


def split_endpoint(endpoint: str, secure: bool) -> tuple[str, bool]:
    """'host:port' keeps ``secure``; 'https://host[:port]' or 'http://...' sets it."""
    if "://" not in endpoint:
        if "/" in endpoint:
            raise ValueError(f"S3 endpoint {endpoint!r} must be host[:port] or a URL without a path")
        return endpoint, secure
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/") or parts.query:
        raise ValueError(f"S3 endpoint {endpoint!r} must be http(s)://host[:port] without a path")
    return parts.netloc, parts.scheme == "https"


def _missing(exc: BaseException) -> bool:
    return isinstance(exc, S3Error) and (exc.code in _MISSING or getattr(exc.response, "status", 0) == 404)


class S3Storage(ObjectStore, PresignedStore, MultipartStore, S3ChunkedUploads):
    name = "s3"

    def __init__(self, settings: S3Settings, *, threads: int = 16, health: StorageHealth | None = None):
        if not settings.bucket:
            raise ValueError("lfs.s3.bucket is empty")
        self.settings = settings
        self.bucket = settings.bucket
        self.prefix = settings.prefix
        self.staging_prefix = f"{settings.prefix}staging/"
        host, secure = split_endpoint(settings.endpoint, settings.secure)
        # A store that refuses connections fails after one quick retry, not after seconds of
        # backoff; then StorageHealth fails calls at once until it is back (see health.py).
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=10, read=300), maxsize=max(threads, 10),
            retries=urllib3.Retry(total=5, connect=1, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )
        self.client = Minio(host, access_key=settings.access_key, secret_key=settings.secret_key,
                            secure=secure, region=settings.region, http_client=http)
        probe_http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=2, read=5), maxsize=1,
                                         retries=urllib3.Retry(total=0))
        self._probe_client = Minio(host, access_key=settings.access_key, secret_key=settings.secret_key,
                                   secure=secure, region=settings.region, http_client=probe_http)
        self.health = health or StorageHealth()
        self.public: Minio | None = None
        if settings.public_endpoint:
            pub_host, pub_secure = split_endpoint(settings.public_endpoint, settings.secure)
            self.public = Minio(pub_host, access_key=settings.access_key, secret_key=settings.secret_key,
                                secure=pub_secure, region=settings.region)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="lfs-s3")

    @property
    def presign_enabled(self) -> bool:
        """Presigned URLs are handed out only when a public endpoint is configured."""
        return self.public is not None

    def key(self, oid: str) -> str:
        if not is_oid(oid):
            raise ValueError(f"not an object id: {oid!r}")
        return f"{self.prefix}{oid[:2]}/{oid[2:4]}/{oid}"

    def _new_staging(self, oid: str = "") -> str:
        return f"{self.staging_prefix}{oid or 'upload'}.{secrets.token_hex(12)}"

    def _check_staging(self, staging: str) -> None:
        rest = staging[len(self.staging_prefix):]
        if not staging.startswith(self.staging_prefix) or not rest or "/" in rest:
            raise ValueError(f"not a staging object: {staging!r}")

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        """Run a blocking client call in the pool; storage failures become StorageUnavailable
        and a missing object FileNotFoundError."""
        self.health.before_call()  # fails at once while the store is known down
        try:
            result = await asyncio.get_running_loop().run_in_executor(self._pool, func, *args)
        except (S3Error, MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            if _missing(exc):
                self.health.succeeded()
                raise FileNotFoundError(str(exc)) from exc
            if isinstance(exc, FileNotFoundError):
                raise
            if isinstance(exc, S3Error):
                self.health.succeeded()  # it answered (with an error): reachable
            else:
                self.health.failed(f"{type(exc).__name__}: {exc}")
            raise StorageUnavailable("the object store is unavailable; try again later",
                                     detail=f"{type(exc).__name__}: {exc}") from exc
        self.health.succeeded()
        return result

    async def probe(self) -> None:
        """Find out whether the store answers (a HEAD of the bucket, short timeouts, no
        retries), and tell ``health``."""
        try:
            await asyncio.get_running_loop().run_in_executor(self._pool, self._probe_client.bucket_exists,
                                                             self.bucket)
        except S3Error:
            self.health.succeeded()
        except Exception as exc:
            self.health.failed(f"{type(exc).__name__}: {exc}")
        else:
            self.health.succeeded()

    async def ensure_bucket(self) -> None:
        def ensure() -> None:
            if not self.client.bucket_exists(self.bucket):
                self.client.make_bucket(self.bucket, location=self.settings.region)

        await self._run(ensure)

    # -- streaming ------------------------------------------------------------------------------
    async def put(self, oid: str, size: int, chunks: AsyncIterable[bytes]) -> None:
        key = self.key(oid)
        verifier = Verifier(oid, size)
        part_size = part_size_for(size, self.settings.part_size)
        if size >= part_size:
            await self._put_multipart(key, verifier, part_size, chunks)
            return
        buffer = bytearray(size)
        filled = 0
        async for chunk in chunks:
            verifier.update(chunk)
            buffer[filled:filled + len(chunk)] = chunk
            filled += len(chunk)
        verifier.check()
        await self._run(self.client._put_object, self.bucket, key, memoryview(buffer),
                        {"Content-Type": "application/octet-stream"})

    async def _put_multipart(self, key: str, verifier: Verifier, part_size: int,
                             chunks: AsyncIterable[bytes]) -> None:
        upload_id = await self._run(self.client._create_multipart_upload, self.bucket, key,
                                    {"Content-Type": "application/octet-stream"})
        try:
            done = await self._ship_parts(key, upload_id, 1, part_size, chunks, before=verifier.update)
            verifier.check()
            await self._complete(key, upload_id, done)
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._run(self.client._abort_multipart_upload, self.bucket, key, upload_id))
            raise

    async def _ship_parts(self, key: str, upload_id: str, first: int, part_size: int,
                          chunks: AsyncIterable[bytes], *, before: Callable[[memoryview], None] | None = None,
                          limit: int | None = None) -> list[UploadedPart]:
        """Upload ``chunks`` as parts ``first``, ``first + 1``, ... of ``part_size`` bytes (the
        last shorter). Parts are filled into a few buffers reused for the whole stream (no
        allocation per part, so memory stays flat), passed to ``before`` in order (in a
        thread), and uploaded in the background. More than ``limit`` bytes raise
        ObjectMismatch. Returns the parts in order; neither completes nor aborts."""
        free = [bytearray(part_size) for _ in range(PARTS_IN_FLIGHT + 1)]
        in_flight: dict[asyncio.Future[UploadedPart], bytearray] = {}
        done: list[UploadedPart] = []
        number = first - 1
        total = 0

        async def reap(wait_for_all: bool) -> None:
            while in_flight and (wait_for_all or not free):
                finished, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                for fut in finished:
                    free.append(in_flight.pop(fut))
                    done.append(fut.result())

        async def ship(buffer: bytearray, length: int) -> None:
            nonlocal number
            view = memoryview(buffer)[:length]
            if before is not None:
                await self._run(before, view)
            number += 1
            in_flight[asyncio.ensure_future(self._upload_part(key, upload_id, number, view))] = buffer

        try:
            buffer, filled = free.pop(), 0
            async for chunk in chunks:
                total += len(chunk)
                if limit is not None and total > limit:
                    raise ObjectMismatch(f"at most {limit} bytes were expected, but more were sent")
                view = memoryview(chunk)
                while view:
                    n = min(len(view), part_size - filled)
                    buffer[filled:filled + n] = view[:n]
                    filled += n
                    view = view[n:]
                    if filled == part_size:
                        await ship(buffer, filled)
                        await reap(wait_for_all=False)
                        buffer, filled = free.pop(), 0
            if filled:
                await ship(buffer, filled)
            await reap(wait_for_all=True)
        except BaseException:
            for fut in in_flight:
                fut.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.shield(asyncio.gather(*in_flight, return_exceptions=True))
            raise
        return sorted(done, key=lambda p: p.number)

    async def open(self, oid: str, start: int = 0, end: int | None = None) -> ObjectReader:
        key = self.key(oid)
        length = 0 if end is None else end - start
        if end is not None and length <= 0:
            await self._run(self.client.stat_object, self.bucket, key)
            return ThreadReader(lambda n: b"", lambda: None, executor=self._pool, remaining=0)
        response = await self._run(lambda: self.client.get_object(self.bucket, key, offset=start, length=length))

        def close() -> None:
            response.close()
            response.release_conn()

        return ThreadReader(lambda n: response.read(n), close, executor=self._pool)

    async def stat(self, oid: str) -> int | None:
        try:
            return (await self._run(self.client.stat_object, self.bucket, self.key(oid))).size
        except FileNotFoundError:
            return None

    async def delete(self, oid: str) -> None:
        await self._run(self.client.remove_object, self.bucket, self.key(oid))

    async def iter_objects(self) -> AsyncIterator[StoredObject]:
        listing = iter(self.client.list_objects(self.bucket, prefix=self.prefix, recursive=True))
        while True:
            batch = await self._run(lambda: list(itertools.islice(listing, 1000)))
            if not batch:
                return
            for item in batch:
                name = item.object_name or ""
                oid = name.rsplit("/", 1)[-1]
                if name.startswith(self.staging_prefix) or not is_oid(oid) or name != self.key(oid):
                    continue
                mtime = item.last_modified.timestamp() if item.last_modified else 0.0
                yield StoredObject(oid, item.size or 0, mtime)

    async def _hash_key(self, key: str) -> tuple[str, int]:
        def hash_object() -> tuple[str, int]:
            response = self.client.get_object(self.bucket, key)
            try:
                h = hashlib.sha256()
                n = 0
                for block in response.stream(CHUNK):
                    h.update(block)
                    n += len(block)
                return h.hexdigest(), n
            finally:
                response.close()
                response.release_conn()

        return await self._run(hash_object)

    async def digest(self, oid: str) -> tuple[str, int]:
        return await self._hash_key(self.key(oid))

    async def sweep_incomplete(self, older_than: float, *, dry_run: bool = False) -> int:
        def sweep() -> int:
            removed = 0
            for item in self.client.list_objects(self.bucket, prefix=self.staging_prefix, recursive=True):
                if item.last_modified and item.last_modified.timestamp() < older_than and item.object_name:
                    if not dry_run:
                        self.client.remove_object(self.bucket, item.object_name)
                    removed += 1
            marker: str | None = None
            for _ in range(10_000):
                result = self.client._list_multipart_uploads(self.bucket, prefix=self.prefix, key_marker=marker)
                for upload in result.uploads:
                    started = upload.initiated_time.timestamp() if upload.initiated_time else 0.0
                    if started < older_than and upload.upload_id:
                        if not dry_run:
                            self.client._abort_multipart_upload(self.bucket, upload.object_name, upload.upload_id)
                        removed += 1
                if not result.is_truncated or not result.next_key_marker or result.next_key_marker == marker:
                    break
                marker = result.next_key_marker
            return removed

        return await self._run(sweep)

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- presigned ------------------------------------------------------------------------------
    def _public(self) -> Minio:
        if self.public is None:
            raise RuntimeError("presigning needs lfs.s3.public_endpoint")
        return self.public

    def presign_get(self, oid: str, ttl: int) -> str:
        return self._public().presigned_get_object(self.bucket, self.key(oid), expires=timedelta(seconds=ttl))

    def presign_put(self, oid: str, ttl: int) -> DirectUpload:
        staging = self._new_staging(oid)
        url = self._public().presigned_put_object(self.bucket, staging, expires=timedelta(seconds=ttl))
        return DirectUpload(url=url, staging=staging, headers={"Content-Type": "application/octet-stream"})

    async def promote_staged(self, staging: str, oid: str, size: int) -> None:
        self._check_staging(staging)
        key = self.key(oid)
        try:
            stored = (await self._run(self.client.stat_object, self.bucket, staging)).size or 0
            if stored != size:
                raise ObjectMismatch(f"object {oid} is {size} bytes, but {stored} bytes were uploaded")
            digest, count = await self._hash_key(staging)
            if count != size:
                raise ObjectMismatch(f"object {oid} is {size} bytes, but {count} bytes were uploaded")
            if digest != oid:
                raise ObjectMismatch(f"the bytes uploaded do not match object {oid} (their sha256 is {digest})")
            if size > MAX_COPY:
                await self._run(self.client.compose_object, self.bucket, key, [ComposeSource(self.bucket, staging)])
            else:
                await self._run(self.client.copy_object, self.bucket, key, CopySource(self.bucket, staging))
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._run(self.client.remove_object, self.bucket, staging))

    # -- multipart ------------------------------------------------------------------------------
    async def multipart_begin(self) -> tuple[str, str]:
        staging = self._new_staging()
        upload_id = await self._run(self.client._create_multipart_upload, self.bucket, staging,
                                    {"Content-Type": "application/octet-stream"})
        return staging, upload_id

    async def multipart_put(self, staging: str, upload_id: str, number: int, data: bytes) -> UploadedPart:
        self._check_staging(staging)
        return await self._upload_part(staging, upload_id, number, data)

    async def _upload_part(self, key: str, upload_id: str, number: int, data: bytes | memoryview) -> UploadedPart:
        etag = await self._run(self.client._upload_part, self.bucket, key, data, None, upload_id, number)
        return UploadedPart(number, etag)

    def presign_part(self, staging: str, upload_id: str, number: int, ttl: int) -> str:
        self._check_staging(staging)
        return self._public().get_presigned_url(
            "PUT", self.bucket, staging, expires=timedelta(seconds=ttl),
            extra_query_params={"partNumber": str(number), "uploadId": upload_id},
        )

    async def multipart_complete(self, staging: str, upload_id: str, parts: list[UploadedPart]) -> None:
        self._check_staging(staging)
        await self._complete(staging, upload_id, parts)

    async def _complete(self, key: str, upload_id: str, parts: list[UploadedPart]) -> None:
        ordered = [Part(p.number, p.etag.strip('"')) for p in sorted(parts, key=lambda p: p.number)]
        await self._run(self.client._complete_multipart_upload, self.bucket, key, upload_id, ordered)

    async def multipart_abort(self, staging: str, upload_id: str) -> None:
        self._check_staging(staging)
        await self._run(self.client._abort_multipart_upload, self.bucket, staging, upload_id)
