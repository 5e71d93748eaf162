"""The git-lfs-transfer protocol engine, driven with the exact packets git-lfs 3.3.0 sends.

The backend here is an in-memory stand-in for the LFS service's adapter
(gitd.ssh.lfs_service_backend, driven end to end in tests/e2e/test_ssh_lfs.py); it
trusts the bytes it is given, so every integrity check seen here is the engine's own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import itertools
from collections.abc import AsyncIterator

import pytest

from gitd.errors import Forbidden, NotFound, Unprocessable
from gitd.ssh.lfs_backend import LockConflict, LockInfo
from gitd.ssh.lfs_transfer import LfsTransfer
from gitd.ssh.pktline import DELIM, FLUSH, PktReader, PktWriter, encode_data, encode_text

REPO = 7


class MemoryBackend:
    """The store as one user sees it; ``run`` sets ``user`` for each session."""

    max_size = 10**9

    def __init__(self) -> None:
        self.user = "alice"
        self.objects: dict[tuple[int, str], bytes] = {}
        self.locks: dict[str, tuple[int, LockInfo]] = {}
        self.receive_calls = 0
        self._ids = itertools.count(1)

    def add(self, data: bytes, repo: int = REPO) -> str:
        oid = hashlib.sha256(data).hexdigest()
        self.objects[(repo, oid)] = data
        return oid

    def missing(self, repo_id: int, oids: list[str]) -> set[str]:
        return {oid for oid in oids if (repo_id, oid) not in self.objects}

    def size(self, repo_id: int, oid: str) -> int | None:
        data = self.objects.get((repo_id, oid))
        return None if data is None else len(data)

    def check_upload(self, oid: str, size: int) -> None:
        if size > self.max_size:
            raise Unprocessable(f"object is larger than this server's limit of {self.max_size} bytes")

    async def receive(self, repo_id: int, oid: str, size: int, chunks: AsyncIterator[bytes]) -> None:
        self.receive_calls += 1
        buf = bytearray()
        async for chunk in chunks:  # an exception here means: store nothing
            buf += chunk
        self.objects[(repo_id, oid)] = bytes(buf)

    async def open(self, repo_id: int, oid: str) -> AsyncIterator[bytes]:
        data = self.objects.get((repo_id, oid))
        if data is None:
            raise NotFound("object not found")

        async def gen() -> AsyncIterator[bytes]:
            for i in range(0, len(data), 100_000):
                yield data[i:i + 100_000]

        return gen()

    def _seen(self, lock: LockInfo) -> LockInfo:
        return dataclasses.replace(lock, ours=lock.owner == self.user)

    def create_lock(self, repo_id: int, path: str, refname: str | None) -> LockInfo:
        for rid, lock in self.locks.values():
            if rid == repo_id and lock.path == path:
                raise LockConflict(self._seen(lock))
        lock = LockInfo(str(next(self._ids)), path, "2024-05-06T07:08:09Z", self.user)
        self.locks[lock.id] = (repo_id, lock)
        return lock

    def list_locks(self, repo_id, *, path, lock_id, cursor, limit, refspec):
        found = sorted((lock for rid, lock in self.locks.values() if rid == repo_id
                        and (path is None or lock.path == path) and (lock_id is None or lock.id == lock_id)),
                       key=lambda lock: int(lock.id))
        start = int(cursor or 0)
        page = found[start:start + limit] if limit else found[start:]
        more = limit is not None and start + limit < len(found)
        return [self._seen(lock) for lock in page], str(start + limit) if more else None

    def unlock(self, repo_id: int, lock_id: str, force: bool, refname: str | None) -> LockInfo:
        entry = self.locks.get(lock_id)
        if entry is None or entry[0] != repo_id:
            raise NotFound("lock not found")
        if entry[1].owner != self.user and not force:
            raise Forbidden("the lock belongs to someone else")
        del self.locks[lock_id]
        return entry[1]


# -- a scripted client ---------------------------------------------------------------------------
def request(command: str, *args: str, lines: list[str] | None = None, data: bytes | None = None,
            delim: bool = False) -> bytes:
    out = encode_text(command) + b"".join(encode_text(a) for a in args)
    if lines is not None or data is not None or delim:
        out += b"0001"
        out += b"".join(encode_text(line) for line in lines or [])
        if data is not None:
            out += encode_data(data)
    return out + b"0000"


VERSION = request("version 1")
QUIT = request("quit")


def run(backend: MemoryBackend, wire: bytes, *, operation: str = "upload", can_write: bool = True,
        user: str = "alice") -> tuple[int, list[list]]:
    """Run the engine over ``wire``; returns (exit status, responses split at flushes)."""

    async def go() -> tuple[int, bytes]:
        stream = asyncio.StreamReader()
        stream.feed_data(wire)
        stream.feed_eof()
        sent = bytearray()

        async def write(data: bytes) -> None:
            sent.extend(data)

        backend.user = user
        engine = LfsTransfer(backend, repo_id=REPO, operation=operation, can_write=can_write,
                             reader=PktReader(stream), writer=PktWriter(write))
        return await engine.run(), bytes(sent)

    status, sent = asyncio.run(go())
    return status, split(sent)


def split(sent: bytes) -> list[list]:
    async def go() -> list[list]:
        stream = asyncio.StreamReader()
        stream.feed_data(sent)
        stream.feed_eof()
        reader = PktReader(stream)
        responses, current = [], []
        while True:
            try:
                packet = await reader.read()
            except EOFError:
                if current:
                    responses.append(current)
                return responses
            if packet is FLUSH:
                responses.append(current)
                current = []
            else:
                current.append(packet)

    raw = asyncio.run(go())
    return [[p if p is DELIM else _text(p) for p in response] for response in raw]


def _text(payload: bytes):
    try:
        text = payload.decode()
    except UnicodeDecodeError:
        return payload
    return text[:-1] if text.endswith("\n") else payload


CAPS = ["version=1", "locking"]
OK = ["status 200"]


# -- session ---------------------------------------------------------------------------------------
def test_handshake_and_quit():
    status, responses = run(MemoryBackend(), VERSION + QUIT)
    assert status == 0
    assert responses == [CAPS, OK, OK]


def test_unsupported_version_is_refused_and_nothing_else_is_served_before_version():
    backend = MemoryBackend()
    status, responses = run(backend, request("version 2") + request("batch", lines=[]) + VERSION + QUIT)
    assert status == 0
    assert responses[1][0] == "status 400" and "version 1" in responses[1][2]
    assert responses[2][0] == "status 400" and "version first" in responses[2][2]
    assert responses[3:] == [OK, OK]


def test_client_that_leaves_without_quit_ends_with_failure():
    assert run(MemoryBackend(), VERSION)[0] == 1


@pytest.mark.parametrize("garbage", [b"zzzz", b"ffff" + b"a" * 10, b"0005", b"0002"])
def test_malformed_framing_ends_the_session(garbage):
    status, responses = run(MemoryBackend(), VERSION + garbage + QUIT)
    assert status == 1
    assert responses == [CAPS, OK]


def test_unknown_commands_get_400_and_the_session_goes_on():
    wire = VERSION + request("frobnicate", "x=1", lines=["junk line"]) + request("get-object nothex") + QUIT
    status, responses = run(MemoryBackend(), wire)
    assert status == 0
    assert responses[2] == ["status 400", DELIM, "unknown command 'frobnicate'"]
    assert responses[3][0] == "status 400" and "valid SHA-256" in responses[3][2]
    assert responses[4] == OK


def test_argument_without_equals_sign_is_a_bad_request():
    status, responses = run(MemoryBackend(), VERSION + request("list-lock", "limit") + QUIT)
    assert responses[2][0] == "status 400" and "malformed argument" in responses[2][2]
    assert status == 0


# -- batch -----------------------------------------------------------------------------------------
def test_upload_batch_asks_only_for_what_the_repo_lacks():
    backend = MemoryBackend()
    have = backend.add(b"already here")
    other_repo = backend.add(b"only in repo 8", repo=8)
    new = hashlib.sha256(b"new").hexdigest()
    wire = VERSION + request("batch", "transfer=ssh", "hash-algo=sha256", "refname=refs/heads/main",
                             lines=[f"{have} 12", f"{new} 3", f"{other_repo} 14"]) + QUIT
    status, responses = run(backend, wire)
    assert status == 0
    assert responses[2] == ["status 200", "hash-algo=sha256", DELIM,
                            f"{have} 12 noop", f"{new} 3 upload", f"{other_repo} 14 upload"]


def test_download_batch_reports_stored_sizes():
    backend = MemoryBackend()
    have = backend.add(b"0123456789")
    missing = "b" * 64
    status, responses = run(backend, VERSION + request("batch", "transfer=ssh", lines=[f"{have} 10", f"{missing} 5"])
                            + QUIT, operation="download")
    assert responses[2] == ["status 200", "hash-algo=sha256", DELIM, f"{have} 10 download", f"{missing} 5 download"]
    assert status == 0


def test_batch_refuses_other_hash_algorithms_and_bad_lines():
    backend = MemoryBackend()
    wire = (VERSION + request("batch", "hash-algo=sha1", lines=["a" * 64 + " 1"])
            + request("batch", lines=["nothex 1"]) + request("batch", lines=["a" * 64 + " -1"]) + QUIT)
    status, responses = run(backend, wire)
    assert status == 0
    assert responses[2][0] == "status 409"
    assert responses[3][0] == "status 422" and "malformed object line" in responses[3][2]
    assert responses[4][0] == "status 422"
    assert responses[5] == OK


def test_upload_batch_needs_write_access():
    status, responses = run(MemoryBackend(), VERSION + request("batch", lines=["a" * 64 + " 1"]) + QUIT,
                            can_write=False)
    assert responses[2][0] == "status 403" and status == 0


# -- put-object / verify-object --------------------------------------------------------------------
def test_put_object_streams_and_stores_a_multi_packet_object():
    backend = MemoryBackend()
    data = bytes(range(256)) * 1000  # 256000 bytes: several packets
    oid = hashlib.sha256(data).hexdigest()
    wire = VERSION + request(f"put-object {oid}", f"size={len(data)}", data=data) + \
        request(f"verify-object {oid}", f"size={len(data)}") + QUIT
    status, responses = run(backend, wire)
    assert status == 0
    assert responses[2:] == [OK, OK, OK]
    assert backend.objects[(REPO, oid)] == data


def test_put_object_with_wrong_bytes_stores_nothing_and_the_session_goes_on():
    backend = MemoryBackend()
    claimed = hashlib.sha256(b"the real thing").hexdigest()
    wire = VERSION + request(f"put-object {claimed}", "size=14", data=b"a forged thing") + \
        request(f"verify-object {claimed}", "size=14") + QUIT
    status, responses = run(backend, wire)
    assert status == 0
    assert responses[2][0] == "status 422" and "SHA-256 mismatch" in responses[2][2]
    assert responses[3][0] == "status 404"
    assert responses[4] == OK
    assert (REPO, claimed) not in backend.objects


@pytest.mark.parametrize(("declared", "sent"), [(5, b"0123456789" * 20000), (50, b"short")])
def test_put_object_with_the_wrong_size_stores_nothing(declared, sent):
    backend = MemoryBackend()
    oid = hashlib.sha256(sent).hexdigest()
    wire = VERSION + request(f"put-object {oid}", f"size={declared}", data=sent) + QUIT
    status, responses = run(backend, wire)
    assert status == 0, "the rest of the data was skipped and quit still parsed"
    assert responses[2][0] == "status 422"
    assert responses[3] == OK
    assert backend.objects == {}


def test_put_object_argument_errors_skip_the_data():
    backend = MemoryBackend()
    data = b"x" * 70000
    oid = hashlib.sha256(data).hexdigest()
    wire = (VERSION + request(f"put-object {oid}", data=data) + request(f"put-object {oid}", "size=12x", data=data)
            + QUIT)
    status, responses = run(backend, wire)
    assert status == 0
    assert responses[2][0] == "status 400" and "size=" in responses[2][2]
    assert responses[3][0] == "status 400"
    assert responses[4] == OK and backend.receive_calls == 0


def test_put_object_needs_an_upload_session_with_write_access():
    data = b"hello"
    oid = hashlib.sha256(data).hexdigest()
    wire = VERSION + request(f"put-object {oid}", "size=5", data=data) + QUIT
    for kwargs in ({"operation": "download"}, {"can_write": False}):
        backend = MemoryBackend()
        status, responses = run(backend, wire, **kwargs)
        assert responses[2][0] == "status 403" and responses[3] == OK
        assert backend.objects == {} and status == 0


def test_verify_object_checks_the_size():
    backend = MemoryBackend()
    oid = backend.add(b"12345")
    status, responses = run(backend, VERSION + request(f"verify-object {oid}", "size=6") + QUIT)
    assert responses[2][0] == "status 422" and status == 0


def test_disconnect_in_the_middle_of_an_upload_stores_nothing():
    backend = MemoryBackend()
    data = b"z" * 200_000
    oid = hashlib.sha256(data).hexdigest()
    wire = VERSION + request(f"put-object {oid}", f"size={len(data)}", data=data)
    status, _ = run(backend, wire[: len(wire) // 2])
    assert status == 1
    assert backend.objects == {}


# -- get-object ------------------------------------------------------------------------------------
def test_get_object_sends_size_then_the_data():
    backend = MemoryBackend()
    data = bytes(range(256)) * 600
    oid = backend.add(data)
    status, responses = run(backend, VERSION + request(f"get-object {oid}", f"size={len(data)}") + QUIT,
                            operation="download")
    assert status == 0
    head, body = responses[2][:3], responses[2][3:]
    assert head == ["status 200", f"size={len(data)}", DELIM]
    assert b"".join(p if isinstance(p, bytes) else p.encode() for p in body) == data
    assert responses[3] == OK


def test_get_object_of_an_object_the_repo_lacks_is_404():
    backend = MemoryBackend()
    elsewhere = backend.add(b"secret", repo=99)
    status, responses = run(backend, VERSION + request(f"get-object {elsewhere}", "size=6") + QUIT,
                            operation="download")
    assert responses[2][0] == "status 404" and responses[2][1] is DELIM
    assert responses[3] == OK and status == 0


# -- locks -----------------------------------------------------------------------------------------
def test_lock_conflict_list_and_unlock():
    backend = MemoryBackend()
    wire = (VERSION + request("lock", "path=models/big.bin", "refname=refs/heads/main")
            + request("lock", "path=models/big.bin") + QUIT)
    status, responses = run(backend, wire)
    assert status == 0
    assert responses[2] == ["status 201", "id=1", "path=models/big.bin", "locked-at=2024-05-06T07:08:09Z",
                            "ownername=alice"]
    assert responses[3][:5] == ["status 409", "id=1", "path=models/big.bin", "locked-at=2024-05-06T07:08:09Z",
                                "ownername=alice"]
    assert responses[3][5] is DELIM

    # bob sees alice's lock as theirs, through both spellings of the command
    for command in ("list-lock", "list-locks"):
        status, responses = run(backend, VERSION + request(command, "refname=refs/heads/main") + QUIT, user="bob")
        assert responses[2] == ["status 200", DELIM, "lock 1", "path 1 models/big.bin",
                                "locked-at 1 2024-05-06T07:08:09Z", "ownername 1 alice", "owner 1 theirs"]

    status, responses = run(backend, VERSION + request("unlock 1") + QUIT, user="bob")
    assert responses[2][0] == "status 403" and "someone else" in responses[2][2]
    status, responses = run(backend, VERSION + request("unlock 1", "refname=refs/heads/main") + QUIT)
    assert responses[2] == ["status 200", "id=1", "path=models/big.bin", "locked-at=2024-05-06T07:08:09Z",
                            "ownername=alice"]
    assert backend.locks == {}


def test_list_locks_pages_with_next_cursor_and_filters_by_path():
    backend = MemoryBackend()
    for i in range(3):
        backend.create_lock(REPO, f"f{i}", None)
    status, responses = run(backend, VERSION + request("list-lock", "limit=2") + request(
        "list-lock", "limit=2", "cursor=2") + request("list-lock", "path=f1") + QUIT, operation="download")
    assert status == 0
    first, second, by_path = responses[2], responses[3], responses[4]
    assert first[:3] == ["status 200", "next-cursor=2", DELIM] and first.count("owner 1 ours") == 1
    assert len([p for p in first if isinstance(p, str) and p.startswith("lock ")]) == 2
    assert second[:2] == ["status 200", DELIM] and "lock 3" in second
    assert [p for p in by_path if isinstance(p, str) and p.startswith("path ")] == ["path 2 f1"]


def test_locking_needs_an_upload_session_with_write_access():
    for kwargs in ({"operation": "download"}, {"can_write": False}):
        backend = MemoryBackend()
        status, responses = run(backend, VERSION + request("lock", "path=a") + request("unlock 1") + QUIT, **kwargs)
        assert responses[2][0] == "status 403" and responses[3][0] == "status 403"
        assert backend.locks == {} and status == 0


# -- found by fuzzing (tests/fuzz) ------------------------------------------------------------------
@pytest.mark.parametrize("wire", [
    request("put-object " + "a" * 64, "size=\u00b2", data=b"x"),  # '²'.isdigit(), but int('²') fails
    request("verify-object " + "a" * 64, "size=\u00b9\u00b2"),
    request("batch", lines=["a" * 64 + " \u00b2"]),
    request("list-lock", "limit=\u00b2"),
], ids=["put-object size", "verify-object size", "batch line", "list-lock limit"])
def test_regression_numbers_in_other_scripts_digits_are_refused_and_the_session_goes_on(wire):
    # int() refused what str.isdigit() let through: a ValueError ended the session.
    status, responses = run(MemoryBackend(), VERSION + wire + QUIT)
    assert status == 0
    assert responses[2][0] in ("status 400", "status 422") and len(responses[2][2]) < 200
    assert responses[3:] == [OK]


def test_regression_a_limit_of_5000_digits_lists_as_many_locks_as_allowed():
    # int() refuses more than 4300 digits: a ValueError ended the session.
    status, responses = run(MemoryBackend(), VERSION + request("list-lock", "limit=" + "9" * 5000) + QUIT)
    assert status == 0 and responses[2] == ["status 200", DELIM] and responses[3:] == [OK]
