"""One contract for every storage backend, run against local disk and a real S3 server
(SeaweedFS). Capability tests (presigned, multipart) run on the backends that have them."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import pytest

from gitd.lfs.errors import ObjectMismatch
from gitd.lfs.storage.base import ChunkedUploads, MultipartStore, ObjectStore, PresignedStore, UploadedPart
from gitd.lfs.storage.local import LocalStorage
from gitd.lfs.storage.s3 import S3Settings, S3Storage, part_size_for
from tests.support import tampered, unique

MIB = 1024 * 1024


def oid_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def chunks_of(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]
        await asyncio.sleep(0)


async def read_all(storage: ObjectStore, oid: str, start: int = 0, end: int | None = None) -> bytes:
    reader = await storage.open(oid, start, end)
    try:
        return b"".join([chunk async for chunk in reader])
    finally:
        await reader.aclose()


@dataclass
class Backend:
    storage: ObjectStore
    leftovers: Callable[[], list[str]]  # temporaries and unfinished uploads


def run(coro):
    return asyncio.run(coro)


def make_backend(kind: str, request, tmp_path) -> Iterator[Backend]:
    if kind == "local":
        storage = LocalStorage(tmp_path / "lfs")
        yield Backend(storage, lambda: [p.name for p in storage.temporaries()])
    else:
        seaweed = request.getfixturevalue("seaweed")
        bucket = seaweed.make_bucket(unique("contract").lower())
        s3 = S3Storage(S3Settings(endpoint=seaweed.endpoint, access_key=seaweed.access_key,
                                  secret_key=seaweed.secret_key, bucket=bucket, secure=False,
                                  public_endpoint=seaweed.url, part_size=5 * MIB))
        client = seaweed.client()

        def leftovers() -> list[str]:
            staged = [o.object_name for o in client.list_objects(bucket, prefix=s3.staging_prefix, recursive=True)]
            uploads = [u.object_name for u in client._list_multipart_uploads(bucket).uploads]
            return staged + uploads

        yield Backend(s3, leftovers)
        storage = s3
    run(storage.close())


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def backend(request, tmp_path) -> Iterator[Backend]:
    """Every backend: the streaming contract."""
    yield from make_backend(request.param, request, tmp_path)


@pytest.fixture(params=[pytest.param("s3", marks=pytest.mark.s3)])
def capable(request, tmp_path) -> Iterator[Backend]:
    """The backends with the presigned and multipart capabilities (S3; local has neither)."""
    yield from make_backend(request.param, request, tmp_path)


def test_put_then_read_whole_ranges_and_digest(backend):
    storage = backend.storage
    data = os.urandom(300_000)
    oid = oid_of(data)

    async def scenario():
        await storage.put(oid, len(data), chunks_of(data))
        assert await storage.stat(oid) == len(data)
        assert await read_all(storage, oid) == data
        assert await read_all(storage, oid, 1000) == data[1000:]
        assert await read_all(storage, oid, 10, 20) == data[10:20]
        assert await read_all(storage, oid, 5, 5) == b""
        assert await storage.digest(oid) == (oid, len(data))
        assert oid in [o.oid async for o in storage.iter_objects()]

    run(scenario())
    assert backend.leftovers() == []


def test_empty_object(backend):
    async def scenario():
        await backend.storage.put(oid_of(b""), 0, chunks_of(b""))
        assert await read_all(backend.storage, oid_of(b"")) == b""

    run(scenario())


def test_large_object_goes_in_parts_and_reads_back(backend):
    data = os.urandom(11 * MIB + 123)
    oid = oid_of(data)

    async def scenario():
        await backend.storage.put(oid, len(data), chunks_of(data, 256 * 1024))
        assert await backend.storage.digest(oid) == (oid, len(data))
        assert await read_all(backend.storage, oid, 6 * MIB, 6 * MIB + 10) == data[6 * MIB:6 * MIB + 10]

    run(scenario())
    assert backend.leftovers() == []


@pytest.mark.parametrize("kind", ["wrong bytes", "too short", "too long"])
@pytest.mark.parametrize("size", [1000, 11 * MIB])
def test_mismatch_stores_nothing(backend, kind, size):
    data = os.urandom(size)
    oid = oid_of(data)
    sent = {"wrong bytes": tampered(data), "too short": data[:-1], "too long": data + b"!"}[kind]

    async def scenario():
        with pytest.raises(ObjectMismatch):
            await backend.storage.put(oid, size, chunks_of(sent, 512 * 1024))
        assert await backend.storage.stat(oid) is None

    run(scenario())
    assert backend.leftovers() == []


@pytest.mark.parametrize("size", [1000, 11 * MIB])
def test_interrupted_or_cancelled_upload_leaves_nothing(backend, size):
    data = os.urandom(size)
    oid = oid_of(data)

    async def broken() -> AsyncIterator[bytes]:
        async for chunk in chunks_of(data[: size // 2]):
            yield chunk
        raise ConnectionResetError("client went away")

    async def stalled() -> AsyncIterator[bytes]:
        async for chunk in chunks_of(data[: size // 2]):
            yield chunk
        await asyncio.sleep(3600)
        yield b""

    async def scenario():
        with pytest.raises(ConnectionResetError):
            await backend.storage.put(oid, size, broken())
        task = asyncio.ensure_future(backend.storage.put(oid, size, stalled()))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await backend.storage.stat(oid) is None

    run(scenario())
    assert backend.leftovers() == []


def test_missing_objects(backend):
    oid = oid_of(b"never stored")

    async def scenario():
        assert await backend.storage.stat(oid) is None
        with pytest.raises(FileNotFoundError):
            await read_all(backend.storage, oid)
        with pytest.raises(FileNotFoundError):
            await backend.storage.digest(oid)
        await backend.storage.delete(oid)  # absent: not an error

    run(scenario())


def test_delete_and_listing(backend):
    blobs = [os.urandom(100) for _ in range(3)]

    async def scenario():
        for blob in blobs:
            await backend.storage.put(oid_of(blob), 100, chunks_of(blob))
        await backend.storage.delete(oid_of(blobs[0]))
        listed = {o.oid: o for o in [o async for o in backend.storage.iter_objects()]}
        assert oid_of(blobs[0]) not in listed
        assert {oid_of(b) for b in blobs[1:]} <= set(listed)
        assert all(listed[oid_of(b)].size == 100 and listed[oid_of(b)].mtime > time.time() - 600 for b in blobs[1:])

    run(scenario())


def test_sweep_removes_only_old_leftovers(backend):
    storage = backend.storage

    async def scenario():
        if isinstance(storage, LocalStorage):
            (storage.tmp_dir / "crashed.part").write_bytes(b"x")
        else:
            assert isinstance(storage, PresignedStore)
            upload = storage.presign_put(oid_of(b"abandoned"), 60)
            urllib.request.urlopen(urllib.request.Request(upload.url, data=b"abandoned", method="PUT")).close()
        assert await storage.sweep_incomplete(time.time() - 3600) == 0
        assert len(backend.leftovers()) == 1
        assert await storage.sweep_incomplete(time.time() + 60) == 1
        assert backend.leftovers() == []

    run(scenario())


# -- capabilities ------------------------------------------------------------------------------
def presigned(backend: Backend) -> PresignedStore:
    assert isinstance(backend.storage, PresignedStore) and backend.storage.presign_enabled
    return backend.storage


def test_presigned_download_and_upload(capable):
    backend = capable
    store = presigned(backend)
    data = os.urandom(5000)
    oid = oid_of(data)
    upload = store.presign_put(oid, 60)
    request = urllib.request.Request(upload.url, data=data, method="PUT", headers=upload.headers)
    urllib.request.urlopen(request).close()
    run(store.promote_staged(upload.staging, oid, len(data)))
    with urllib.request.urlopen(store.presign_get(oid, 60)) as response:
        assert response.read() == data
    assert backend.leftovers() == []
    with pytest.raises(FileNotFoundError):  # promoting consumed the staging object
        run(store.promote_staged(upload.staging, oid, len(data)))


def test_presigned_upload_of_wrong_bytes_is_refused_and_discarded(capable):
    backend = capable
    store = presigned(backend)
    data = os.urandom(5000)
    oid = oid_of(data)
    for sent in (tampered(data), data[:-1]):
        upload = store.presign_put(oid, 60)
        urllib.request.urlopen(urllib.request.Request(upload.url, data=sent, method="PUT")).close()
        with pytest.raises(ObjectMismatch):
            run(store.promote_staged(upload.staging, oid, len(data)))
    assert run(backend.storage.stat(oid)) is None
    assert backend.leftovers() == []
    with pytest.raises(ValueError):
        run(store.promote_staged("lfs/aa/bb/" + oid, oid, len(data)))


def test_client_multipart_upload_then_promote(capable):
    backend = capable
    store = backend.storage
    assert isinstance(store, MultipartStore) and isinstance(store, PresignedStore)
    data = os.urandom(5 * MIB + 10)
    oid = oid_of(data)

    async def scenario():
        staging, upload_id = await store.multipart_begin()
        url = store.presign_part(staging, upload_id, 2, 60)
        response = urllib.request.urlopen(urllib.request.Request(url, data=data[5 * MIB:], method="PUT"))
        second = response.headers["ETag"]
        first = await store.multipart_put(staging, upload_id, 1, data[:5 * MIB])
        await store.multipart_complete(staging, upload_id, [UploadedPart(2, second), first])
        await store.promote_staged(staging, oid, len(data))
        assert await store.digest(oid) == (oid, len(data))

    run(scenario())
    assert backend.leftovers() == []


def test_part_sizes_respect_s3_limits():
    assert part_size_for(1, 8 * MIB) == 8 * MIB
    assert part_size_for(100 * 1024**3, 8 * MIB) * 10_000 >= 100 * 1024**3
    assert part_size_for(100 * 1024**3, 8 * MIB) % MIB == 0
    assert part_size_for(10, 1) == 5 * MIB


# -- chunked uploads (Hugging Face's multipart transfer), every backend ---------------------------
def test_chunked_upload_parts_in_any_order_and_resent(backend):
    store = backend.storage
    assert isinstance(store, ChunkedUploads)
    data = os.urandom(12 * MIB + 5)
    oid = oid_of(data)

    async def scenario():
        chunk = store.chunk_size_for(len(data), 5 * MIB)
        assert chunk >= 5 * MIB
        upload = await store.chunked_begin(oid, len(data), chunk)
        assert upload.part_count == -(-len(data) // chunk) >= 2
        parts = {n: data[(n - 1) * chunk:n * chunk] for n in range(1, upload.part_count + 1)}
        etags = {}
        for n in reversed(parts):  # out of order
            etags[n] = await store.chunked_write(upload, n, chunks_of(parts[n]))
        first_etag = etags[1]
        etags[1] = await store.chunked_write(upload, 1, chunks_of(parts[1]))  # sent again: replaces
        assert all(e.startswith('"') and len(e) > 2 for e in etags.values())
        with pytest.raises(ObjectMismatch):  # too long for its slot: not kept
            await store.chunked_write(upload, upload.part_count, chunks_of(parts[upload.part_count] + b"x"))
        with pytest.raises(ObjectMismatch):  # an ETag that is not the part's current one
            stale = first_etag if first_etag != etags[1] else '"x"'
            await store.chunked_finish(upload, {**etags, 1: stale})
        assert await store.stat(oid) is None

        upload = await store.chunked_begin(oid, len(data), chunk)
        etags = {n: await store.chunked_write(upload, n, chunks_of(p)) for n, p in parts.items()}
        await store.chunked_finish(upload, etags)
        assert await store.digest(oid) == (oid, len(data))
        with pytest.raises(FileNotFoundError):  # finished: its parts are gone
            await store.chunked_write(upload, 1, chunks_of(parts[1]))

    run(scenario())
    assert backend.leftovers() == []


@pytest.mark.parametrize("tamper", ["wrong bytes", "missing part", "short part"])
def test_chunked_upload_that_does_not_hash_stores_nothing(backend, tamper):
    store = backend.storage
    assert isinstance(store, ChunkedUploads)
    data = os.urandom(11 * MIB)
    oid = oid_of(data)

    async def scenario():
        upload = await store.chunked_begin(oid, len(data), store.chunk_size_for(len(data), 5 * MIB))
        chunk = upload.chunk_size
        etags = {}
        for n in range(1, upload.part_count + 1):
            part = data[(n - 1) * chunk:n * chunk]
            if n == 2 and tamper == "wrong bytes":
                part = tampered(part)
            if n == 2 and tamper == "missing part":
                continue
            if n == 2 and tamper == "short part":
                with pytest.raises(ObjectMismatch):
                    await store.chunked_write(upload, n, chunks_of(part[:-1]))
                etags[n] = '"made-up"'
                continue
            etags[n] = await store.chunked_write(upload, n, chunks_of(part))
        with pytest.raises(ObjectMismatch):
            await store.chunked_finish(upload, etags)
        assert await store.stat(oid) is None

    run(scenario())
    assert backend.leftovers() == []


def test_abandoned_chunked_upload_is_swept(backend):
    store = backend.storage
    assert isinstance(store, ChunkedUploads)
    data = os.urandom(6 * MIB)

    async def scenario():
        upload = await store.chunked_begin(oid_of(data), len(data), store.chunk_size_for(len(data), 5 * MIB))
        await store.chunked_write(upload, 1, chunks_of(data[:upload.chunk_size]))
        assert backend.leftovers() != []
        assert await store.sweep_incomplete(time.time() - 3600) == 0  # still fresh: kept
        assert backend.leftovers() != []
        assert await store.sweep_incomplete(time.time() + 60) >= 1

    run(scenario())
    assert backend.leftovers() == []
