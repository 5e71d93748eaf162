"""The git-lfs-transfer engine over the real LfsService (SQLite store, local storage):
what the adapter maps (locks, ours/theirs, errors) and the rules that depend on who asks."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitd.access.rules import AccessLevel
from gitd.lfs.locks import Locks
from gitd.lfs.objects import LOST, ObjectTable
from gitd.lfs.service import LfsService
from gitd.lfs.storage.local import LocalStorage
from gitd.metrics import Metrics
from gitd.ssh.lfs_service_backend import LfsServiceBackend
from gitd.ssh.lfs_transfer import LfsTransfer
from gitd.ssh.pktline import DELIM, FLUSH, PktReader, PktWriter, encode_data, encode_text
from gitd.store import Account, Accounts, Repos, Store

MAX_SIZE = 100_000
FLUSH_PKT = b"0000"


class World:
    def __init__(self, root: Path):
        self.store = Store(root / "gitd.db")
        self.store.migrate()
        accounts = Accounts(self.store)
        self.alice, self.bob = accounts.create_user("alice"), accounts.create_user("bob")
        self.repo = Repos(self.store).insert(self.alice, "one", "model", private=False, default_branch="main")
        self.objects = ObjectTable(self.store)
        self.lfs = LfsService(self.objects, LocalStorage(root / "lfs"), Locks(self.store), max_object_size=MAX_SIZE)
        self.metrics = Metrics()
        self.root = root

    def session(self, account: Account, wire: bytes, *, level: AccessLevel = AccessLevel.WRITE,
                operation: str = "upload") -> list[list]:
        """Run one git-lfs-transfer session; the responses after the handshake, split at flushes."""
        backend = LfsServiceBackend(self.lfs, self.metrics, account, level)

        async def go() -> bytes:
            stream = asyncio.StreamReader()
            stream.feed_data(encode_text("version 1") + FLUSH_PKT + wire + encode_text("quit") + FLUSH_PKT)
            stream.feed_eof()
            sent = bytearray()

            async def write(data: bytes) -> None:
                sent.extend(data)

            engine = LfsTransfer(backend, repo_id=self.repo.id, operation=operation,
                                 can_write=level >= AccessLevel.WRITE, reader=PktReader(stream),
                                 writer=PktWriter(write))
            assert await engine.run() == 0
            return bytes(sent)

        return asyncio.run(_split(asyncio.run(go())))[2:-1]

    def stored_files(self) -> list[str]:
        return sorted(p.name for p in (self.root / "lfs").rglob("*") if p.is_file())



async def _split(sent: bytes) -> list[list]:
    stream = asyncio.StreamReader()
    stream.feed_data(sent)
    stream.feed_eof()
    reader = PktReader(stream)
    responses: list[list] = [[]]
    while not stream.at_eof():
        packet = await reader.read()
        if packet is FLUSH:
            responses.append([])
        elif packet is DELIM:
            responses[-1].append(DELIM)
        else:
            assert isinstance(packet, bytes)
            responses[-1].append(packet.decode(errors="replace").rstrip("\n"))
    return responses[:-1]


def request(command: str, *args: str, lines: list[str] | None = None, data: bytes | None = None) -> bytes:
    out = encode_text(command) + b"".join(encode_text(a) for a in args)
    if lines is not None or data is not None:
        out += b"0001" + b"".join(encode_text(line) for line in lines or []) + (encode_data(data) if data else b"")
    return out + FLUSH_PKT


def oid_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    asyncio.run(w.lfs.close())
    w.store.close()


def test_uploads_are_stored_once_verified_and_counted(world):
    data = b"weights" * 1000
    oid = oid_of(data)
    forged = world.session(world.alice, request(f"put-object {oid}", f"size={len(data)}", data=b"x" * len(data)))
    assert forged[0][0] == "status 422" and world.stored_files() == []
    batch = request("batch", "hash-algo=sha256", lines=[f"{oid} {len(data)}", f"{'a' * 64} {MAX_SIZE + 1}"])
    too_big = world.session(world.alice, batch)
    assert too_big[0][0] == "status 422" and "limit" in too_big[0][2]

    answers = world.session(world.alice, request("batch", lines=[f"{oid} {len(data)}"])
                            + request(f"put-object {oid}", f"size={len(data)}", data=data)
                            + request("batch", lines=[f"{oid} {len(data)}"]))
    assert answers[0][-1] == f"{oid} {len(data)} upload"
    assert answers[1] == ["status 200"]
    assert answers[2][-1] == f"{oid} {len(data)} noop"
    assert world.stored_files() == [oid]
    assert world.metrics.lfs_bytes_received.value(transport="ssh") == 2 * len(data)  # the forged try counts too

    got = world.session(world.bob, request(f"get-object {oid}"), level=AccessLevel.READ, operation="download")
    assert got[0][:3] == ["status 200", f"size={len(data)}", DELIM]
    assert world.metrics.lfs_bytes_sent.value(transport="ssh") == len(data)


def test_an_object_storage_lost_is_gone_not_missing(world):
    data = b"lost" * 100
    oid = oid_of(data)
    world.session(world.alice, request(f"put-object {oid}", f"size={len(data)}", data=data))
    world.objects.set_state(oid, LOST)
    answers = world.session(world.alice, request("batch", lines=[f"{oid} {len(data)}"])
                            + request(f"get-object {oid}"), operation="download")
    assert answers[0][-1] == f"{oid} {len(data)} download"
    assert answers[1][0] == "status 410" and "push it again" in answers[1][2]
    assert world.session(world.alice, request("batch", lines=[f"{oid} {len(data)}"]))[0][-1].endswith(" upload")


def test_locks_belong_to_who_took_them(world):
    taken = world.session(world.alice, request("lock", "path=./models//a.bin", "refname=refs/heads/main"))
    assert taken[0][0] == "status 201" and "path=models/a.bin" in taken[0] and "ownername=alice" in taken[0]
    lock_id = taken[0][1].removeprefix("id=")
    conflict = world.session(world.bob, request("lock", "path=models/a.bin"))
    assert conflict[0][:2] == ["status 409", f"id={lock_id}"] and "already locked by alice" in conflict[0][-1]

    for user, who in ((world.alice, "ours"), (world.bob, "theirs")):
        listed = world.session(user, request("list-locks", "refname=refs/heads/main"), level=AccessLevel.READ)
        assert listed[0] == ["status 200", DELIM, f"lock {lock_id}", f"path {lock_id} models/a.bin",
                             listed[0][4], f"ownername {lock_id} alice", f"owner {lock_id} {who}"]
        assert listed[0][4].startswith(f"locked-at {lock_id} ") and listed[0][4].endswith("Z")

    for force in ("false", "true"):  # bob may write but is no admin of alice's repository
        refused = world.session(world.bob, request(f"unlock {lock_id}", f"force={force}"))
        assert refused[0][0] == "status 403" and "locked by alice" in refused[0][2]
    assert world.session(world.alice, request(f"unlock {lock_id}"))[0][:2] == ["status 200", f"id={lock_id}"]
    assert world.lfs.locks.list(world.repo.id) == ([], None)


def test_an_admin_breaks_a_lock_only_with_force_and_is_told_why(world):
    lock = world.lfs.locks.create(world.repo.id, world.bob, "b.bin")
    plain = world.session(world.alice, request(f"unlock {lock.id}"), level=AccessLevel.ADMIN)
    assert plain[0][0] == "status 403" and "over HTTPS" in plain[0][2]
    forced = world.session(world.alice, request(f"unlock {lock.id}", "force=true"), level=AccessLevel.ADMIN)
    assert forced[0][:4] == ["status 200", f"id={lock.id}", "path=b.bin", forced[0][3]]
    assert forced[0][4] == "ownername=bob"


def test_regression_lock_ids_and_cursors_beyond_sqlite_integers_are_answered(world: World):
    big = "9" * 30  # SQLite integers end at 2**63 - 1: binding this raised OverflowError
    responses = world.session(world.alice, request("unlock " + big) + request("list-lock", f"id={big}")
                              + request("list-lock", f"cursor={big}"))
    assert responses[0][0] == "status 404"
    assert responses[1] == ["status 200", DELIM]
    assert responses[2][0] == "status 422"
