"""LfsService over a real SQLite store and local-disk storage."""

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator

import pytest

from gitd.errors import NotFound, Unprocessable
from gitd.lfs.errors import ObjectGone, ObjectMismatch, ObjectTooLarge, StorageUnavailable
from gitd.lfs.locks import Locks
from gitd.lfs.maintenance import fsck, gc, parse_duration
from gitd.lfs.objects import DELETING, LOST, ObjectTable
from gitd.lfs.service import LfsService
from gitd.lfs.storage.local import LocalStorage


def oid_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 1000):
        yield data[i:i + 1000]


async def read(service: LfsService, repo_id: int, oid: str, start: int = 0, end: int | None = None) -> bytes:
    reader = await service.open(repo_id, oid, start, end)
    try:
        return b"".join([c async for c in reader])
    finally:
        await reader.aclose()


@pytest.fixture
def lfs(world, tmp_path):
    service = LfsService(ObjectTable(world.store), LocalStorage(tmp_path / "lfs"), Locks(world.store),
                         max_object_size=10_000)
    yield service
    asyncio.run(service.close())


def test_receive_links_the_object_to_that_repository_only(world, lfs):
    data = os.urandom(5000)
    oid = oid_of(data)
    assert lfs.missing(world.first.id, [oid]) == {oid}
    asyncio.run(lfs.receive(world.first.id, oid, len(data), chunks(data)))
    assert lfs.missing(world.first.id, [oid, "0" * 64]) == {"0" * 64}
    assert lfs.size(world.first.id, oid) == 5000 and lfs.size(world.second.id, oid) is None
    assert asyncio.run(read(lfs, world.first.id, oid, 10, 20)) == data[10:20]
    with pytest.raises(NotFound):
        asyncio.run(lfs.open(world.second.id, oid))
    assert lfs.download_url(world.first.id, oid, 60) is None  # local disk: the daemon streams
    assert lfs.local_path(world.first.id, oid).read_bytes() == data
    asyncio.run(lfs.verify(world.first.id, oid, 5000))
    with pytest.raises(NotFound):
        asyncio.run(lfs.verify(world.second.id, oid, 5000))
    with pytest.raises(ObjectMismatch):
        asyncio.run(lfs.verify(world.first.id, oid, 4999))


def test_a_mismatch_stores_and_links_nothing(world, lfs):
    data = os.urandom(3000)
    with pytest.raises(ObjectMismatch):
        asyncio.run(lfs.receive(world.first.id, oid_of(data), 3000, chunks(data[::-1])))
    assert lfs.missing(world.first.id, [oid_of(data)]) == {oid_of(data)}
    assert lfs.objects.get(oid_of(data)) is None and not list(lfs.storage.temporaries())


def test_linking_an_existing_object_needs_its_bytes_and_does_not_rewrite_it(world, lfs):
    data = os.urandom(4000)
    oid = oid_of(data)
    asyncio.run(lfs.receive(world.first.id, oid, 4000, chunks(data)))
    inode = lfs.storage.local_path(oid).stat().st_ino
    with pytest.raises(ObjectMismatch):
        asyncio.run(lfs.receive(world.second.id, oid, 4000, chunks(bytes(4000))))
    assert lfs.size(world.second.id, oid) is None
    asyncio.run(lfs.receive(world.second.id, oid, 4000, chunks(data)))
    assert lfs.size(world.second.id, oid) == 4000
    assert lfs.storage.local_path(oid).stat().st_ino == inode


def test_bytes_lost_behind_our_back_are_stored_again(world, lfs):
    data = os.urandom(1000)
    oid = oid_of(data)
    asyncio.run(lfs.receive(world.first.id, oid, 1000, chunks(data)))
    lfs.storage.local_path(oid).unlink()
    with pytest.raises(ObjectGone):
        asyncio.run(lfs.open(world.first.id, oid))
    assert lfs.objects.get(oid).state == LOST and lfs.missing(world.first.id, [oid]) == {oid}
    asyncio.run(lfs.receive(world.second.id, oid, 1000, chunks(data)))
    assert asyncio.run(read(lfs, world.first.id, oid)) == data


def test_upload_checks(lfs):
    for oid, size in (("abc", 1), ("A" * 64, 1), ("0" * 64, -1), ("0" * 64, True), ("0" * 64, "1")):
        with pytest.raises(Unprocessable):
            lfs.check_upload(oid, size)
    with pytest.raises(ObjectTooLarge) as caught:
        lfs.check_upload("0" * 64, 10_001)
    assert "9.8 KiB" in caught.value.message
    lfs.check_object("0" * 64, 10_001)  # downloads are not limited


def test_uploads_racing_gc_are_refused_retryably(world, lfs):
    data = os.urandom(100)
    oid = oid_of(data)
    asyncio.run(lfs.receive(world.second.id, oid, 100, chunks(data)))
    world.repos.delete(world.second)  # unlinks its objects
    claimed = lfs.objects.claim_unreferenced("9999")
    assert [r.oid for r in claimed] == [oid] and lfs.objects.get(oid).state == DELETING
    with pytest.raises(StorageUnavailable):
        asyncio.run(lfs.receive(world.first.id, oid, 100, chunks(data)))
    assert lfs.objects.forget(oid) and lfs.objects.get(oid) is None


def test_gc_honours_the_grace_and_references(world, lfs):
    kept, dropped = os.urandom(10), os.urandom(20)
    asyncio.run(lfs.receive(world.first.id, oid_of(kept), 10, chunks(kept)))
    for data in (kept, dropped):
        asyncio.run(lfs.receive(world.second.id, oid_of(data), len(data), chunks(data)))
    world.repos.delete(world.second)
    (lfs.storage.tmp_dir / "crash.part").write_bytes(b"x")
    assert asyncio.run(gc(lfs.objects, lfs.storage, parse_duration("1h"))).deleted == []
    report = asyncio.run(gc(lfs.objects, lfs.storage, 3600, now=time.time() + 7200))
    assert report.deleted == [oid_of(dropped)] and report.deleted_bytes == 20 and report.incomplete == 1
    assert lfs.storage.local_path(oid_of(dropped)) is None
    assert lfs.storage.local_path(oid_of(kept)) is not None


def test_gc_removes_old_unrecorded_bytes(lfs):
    data = os.urandom(30)
    asyncio.run(lfs.storage.put(oid_of(data), 30, chunks(data)))  # stored, never recorded (a crash)
    assert asyncio.run(gc(lfs.objects, lfs.storage, 3600)).orphans == []
    assert asyncio.run(gc(lfs.objects, lfs.storage, 3600, now=time.time() + 7200)).orphans == [oid_of(data)]


def test_fsck_verdicts_and_recovery(world, lfs):
    good, bad = os.urandom(50), os.urandom(60)
    for data in (good, bad):
        asyncio.run(lfs.receive(world.first.id, oid_of(data), len(data), chunks(data)))
    lfs.storage.local_path(oid_of(bad)).write_bytes(bytes(60))
    seen = []
    report = asyncio.run(fsck(lfs.objects, lfs.storage, lambda oid, verdict: seen.append((oid, verdict))))
    assert report.corrupt == [oid_of(bad)] and report.missing == [] and not report.ok and report.checked == 2
    assert (oid_of(good), "ok") in seen
    lfs.storage.local_path(oid_of(bad)).write_bytes(bad)  # an operator restored it
    report = asyncio.run(fsck(lfs.objects, lfs.storage))
    assert report.ok and report.restored == [oid_of(bad)]


@pytest.mark.parametrize("text, seconds", [("24h", 86400), ("30m", 1800), ("7d", 604800), ("0", 0), ("90", 90)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-1h", "h"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_concurrent_uploads_of_one_new_object_to_two_repositories(world, lfs):
    data = os.urandom(9_000)
    oid = oid_of(data)

    async def both():
        await asyncio.gather(lfs.receive(world.first.id, oid, len(data), chunks(data)),
                             lfs.receive(world.second.id, oid, len(data), chunks(data)))

    asyncio.run(both())
    assert lfs.size(world.first.id, oid) == lfs.size(world.second.id, oid) == len(data)
    assert lfs.storage.local_path(oid).read_bytes() == data and not lfs.storage.temporaries()
    assert lfs.objects.references(oid) == 2
