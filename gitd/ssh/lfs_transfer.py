"""The pure-SSH Git LFS protocol (``git-lfs-transfer PATH upload|download``).

git-lfs 3.x runs ``git-lfs-transfer`` over SSH before it tries anything else and
speaks pkt-lines (see ``gitd.ssh.pktline``) with it:

* the server advertises ``version=1`` and ``locking``, then a flush; the client sends
  ``version 1`` and the server answers ``status 200``;
* every request is a command packet, ``key=value`` argument packets, and either a flush,
  or a delimiter followed by text lines (``batch``) or binary data (``put-object``) and
  a flush;
* every response is ``status NNN``, argument packets, and optionally a delimiter and
  text lines or data, then a flush. An error response carries its message after the
  delimiter.

Commands: ``batch``, ``put-object`` (size and SHA-256 checked while the data streams;
nothing is stored on mismatch), ``verify-object``, ``get-object`` (answers with the
required ``size=``), ``lock``, ``list-lock`` (and ``list-locks``, the spelling git-lfs
3.3.0 sends when it verifies locks before a push), ``unlock`` and ``quit``. Objects can
be written and locks taken or released only by an ``upload`` session with write access.

The engine talks to storage only through ``TransferBackend`` (gitd.ssh.lfs_backend),
which gitd.ssh.lfs_service_backend implements over ``LfsService`` for the session's
user; it never holds an object in memory.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from gitd.errors import GitdError
from gitd.lfs.pointer import OID_RE
from gitd.ssh.lfs_backend import LockConflict, TransferBackend
from gitd.ssh.pktline import DELIM, FLUSH, Marker, PktLineError, PktReader, PktWriter, decode_text

log = logging.getLogger("gitd.ssh.lfs")

MAX_BATCH = 10_000
MAX_ARGS = 64
MAX_LOCK_LIMIT = 1000
_MALFORMED = "\0malformed"  # key under which a non key=value argument is remembered


class RequestError(Exception):
    """A request the engine answers with an error status; the session goes on."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Request:
    command: str
    args: dict[str, str]
    delimited: bool  # a delimiter followed the arguments: lines or data come next


class LfsTransfer:
    def __init__(self, backend: TransferBackend, *, repo_id: int, operation: str, can_write: bool,
                 reader: PktReader, writer: PktWriter):
        self.backend = backend
        self.repo_id = repo_id
        self.operation = operation
        self.can_write = can_write
        self.reader = reader
        self.out = writer
        self.negotiated = False

    # -- the session -------------------------------------------------------------------------
    async def run(self) -> int:
        """Serve requests until ``quit``; returns the process exit status."""
        try:
            await self.out.text("version=1").text("locking").flush_pkt().send()
            while True:
                try:
                    request = await self._read_request()
                except EOFError:
                    log.info("git-lfs-transfer: client left without quit")
                    return 1
                if request.command == "quit":
                    await self.out.text("status 200").flush_pkt().send()
                    return 0
                await self._dispatch(request)
        except (PktLineError, EOFError) as exc:
            log.info("git-lfs-transfer: protocol error: %s", exc)
            return 1

    async def _dispatch(self, request: Request) -> None:
        try:
            handler = self._handler(request.command)
            await handler(request)
        except RequestError as exc:
            await self._drain(request)
            await self._error(exc.status, exc.message)
        except LockConflict as exc:
            await self._drain(request)
            self.out.text("status 409")
            for arg in exc.lock.args():
                self.out.text(arg)
            await self.out.delim().text(exc.message).flush_pkt().send()
        except GitdError as exc:
            await self._drain(request)
            await self._error(exc.status, exc.message)

    def _handler(self, command: str):
        verb, _, operand = command.partition(" ")
        if verb == "version":
            return lambda r: self._version(operand)
        if not self.negotiated:
            raise RequestError(400, "negotiate the protocol version first")
        if verb == "batch" and not operand:
            return self._batch
        if verb in ("put-object", "verify-object", "get-object") and OID_RE.match(operand):
            method = {"put-object": self._put_object, "verify-object": self._verify_object,
                      "get-object": self._get_object}[verb]
            return lambda r: method(r, operand)
        if verb in ("put-object", "verify-object", "get-object"):
            raise RequestError(400, f"{verb} needs a valid SHA-256 object id")
        if verb == "lock" and not operand:
            return self._lock
        if verb in ("list-lock", "list-locks") and not operand:
            return self._list_locks
        if verb == "unlock" and operand and " " not in operand:
            return lambda r: self._unlock(r, operand)
        raise RequestError(400, f"unknown command {verb[:40]!r}")

    # -- reading -------------------------------------------------------------------------------
    async def _read_request(self) -> Request:
        first = await self.reader.read()
        if isinstance(first, Marker):
            raise PktLineError("expected a command, got a flush or delimiter packet")
        command = decode_text(first)
        args: dict[str, str] = {}
        while True:
            packet = await self.reader.read_text()
            if packet is FLUSH:
                return Request(command, args, delimited=False)
            if packet is DELIM:
                return Request(command, args, delimited=True)
            assert isinstance(packet, str)
            if len(args) >= MAX_ARGS:
                raise PktLineError("too many arguments")
            key, eq, value = packet.partition("=")
            if not eq or not key:
                # Answered once the rest of the request has been read.
                args.setdefault(_MALFORMED, packet)
                continue
            args[key] = value

    async def _lines(self, request: Request) -> list[str]:
        """The text lines after the delimiter, up to the flush."""
        lines: list[str] = []
        if not request.delimited:
            return lines
        request.delimited = False
        while True:
            packet = await self.reader.read_text()
            if packet is FLUSH:
                return lines
            if packet is DELIM:
                raise PktLineError("unexpected delimiter packet")
            assert isinstance(packet, str)
            if len(lines) >= MAX_BATCH:
                await self._skip_to_flush()
                raise RequestError(413, f"too many lines in one request; send at most {MAX_BATCH}")
            lines.append(packet)

    async def _skip_to_flush(self) -> None:
        while (await self.reader.read()) is not FLUSH:
            pass

    async def _drain(self, request: Request) -> None:
        """Read whatever of the request is still unread, so the next request parses."""
        if request.delimited:
            request.delimited = False
            await self._skip_to_flush()

    # -- writing -------------------------------------------------------------------------------
    async def _error(self, status: int, message: str) -> None:
        await self.out.text(f"status {status}").delim().text(message).flush_pkt().send()

    # -- commands -----------------------------------------------------------------------------
    def _check_args(self, request: Request) -> None:
        if _MALFORMED in request.args:
            raise RequestError(400, f"malformed argument {request.args[_MALFORMED][:60]!r}")

    def _require_upload(self, what: str) -> None:
        if self.operation != "upload":
            raise RequestError(403, f"{what} needs an upload session (git-lfs-transfer PATH upload)")
        if not self.can_write:
            raise RequestError(403, "you do not have write access to this repository")

    async def _version(self, operand: str) -> None:
        if operand != "1":
            raise RequestError(400, f"unsupported protocol version {operand[:20]!r}; this server speaks version 1")
        self.negotiated = True
        await self.out.text("status 200").flush_pkt().send()

    async def _batch(self, request: Request) -> None:
        lines = await self._lines(request)
        self._check_args(request)
        algo = request.args.get("hash-algo", "sha256")
        if algo != "sha256":
            raise RequestError(409, f"unsupported hash algorithm {algo[:20]!r}; use sha256")
        transfer = request.args.get("transfer", "ssh")
        if transfer not in ("ssh", "basic"):
            raise RequestError(400, f"unsupported transfer {transfer[:20]!r}")
        if self.operation == "upload" and not self.can_write:
            raise RequestError(403, "you do not have write access to this repository")
        objects = [_parse_object_line(line) for line in lines]
        answers = self._upload_actions(objects) if self.operation == "upload" else self._download_actions(objects)
        self.out.text("status 200").text("hash-algo=sha256").delim()
        for line in answers:
            self.out.text(line)
        await self.out.flush_pkt().send()

    def _upload_actions(self, objects: list[tuple[str, int]]) -> list[str]:
        for oid, size in objects:
            self.backend.check_upload(oid, size)  # e.g. over the size limit: refused before any upload
        missing = self.backend.missing(self.repo_id, [oid for oid, _ in objects]) if objects else set()
        answers = []
        for oid, size in objects:
            present = oid not in missing and self.backend.size(self.repo_id, oid) == size
            answers.append(f"{oid} {size} {'noop' if present else 'upload'}")
        return answers

    def _download_actions(self, objects: list[tuple[str, int]]) -> list[str]:
        """``download`` for every object, even one the repository does not hold: its
        get-object then fails with 404 (410 when storage lost it), and git-lfs reports that
        message with the oid after its retries, having downloaded everything else. git-lfs
        3.3.0 has no per-object error in this protocol, and the alternatives fail worse: a
        ``noop`` makes ``git lfs pull`` skip the file without a word and crashes the smudge
        filter (nil pointer), and failing the whole batch crashes the smudge filter too."""
        answers = []
        for oid, size in objects:
            stored = self.backend.size(self.repo_id, oid)
            answers.append(f"{oid} {stored if stored is not None else size} download")
        return answers

    async def _put_object(self, request: Request, oid: str) -> None:
        self._check_args(request)
        self._require_upload("put-object")
        size = _size_arg(request.args)
        if not request.delimited:
            raise RequestError(400, "put-object needs a delimiter packet before the data")
        request.delimited = False
        state = _Upload(oid, size)
        try:
            await self.backend.receive(self.repo_id, oid, size, state.chunks(self.reader))
        except (PktLineError, EOFError):
            raise
        except Exception as exc:
            if not state.done:
                await self._skip_to_flush()
            if isinstance(exc, RequestError | GitdError):
                raise
            log.exception("git-lfs-transfer: storing %s failed", oid)
            raise RequestError(500, "the server could not store the object") from None
        if not state.done:
            # The backend stopped reading early without an error: that is a bug there.
            await self._skip_to_flush()
            raise RequestError(500, "the server did not read the whole object")
        await self.out.text("status 200").flush_pkt().send()

    async def _verify_object(self, request: Request, oid: str) -> None:
        await self._lines(request)
        self._check_args(request)
        self._require_upload("verify-object")
        size = _size_arg(request.args)
        stored = self.backend.size(self.repo_id, oid)
        if stored is None:
            raise RequestError(404, f"object {oid} not found")
        if stored != size:
            raise RequestError(422, f"object {oid} has size {stored}, not {size}")
        await self.out.text("status 200").flush_pkt().send()

    async def _get_object(self, request: Request, oid: str) -> None:
        await self._lines(request)
        self._check_args(request)
        reader = await self.backend.open(self.repo_id, oid)  # NotFound / gone: answered as such
        try:
            size = self.backend.size(self.repo_id, oid)
            if size is None:  # removed in between
                raise RequestError(404, f"object {oid} not found")
            await self.out.text("status 200").text(f"size={size}").delim().send()
            sent = 0
            async for chunk in reader:
                sent += len(chunk)
                if sent > size:
                    break
                await self.out.data(chunk).send()
        finally:
            close = getattr(reader, "aclose", None)
            if close is not None:
                await close()
        if sent != size:
            # The status is already sent: the only honest way out is to break the stream.
            raise PktLineError(f"object {oid} changed while it was sent ({sent} bytes, expected {size})")
        await self.out.flush_pkt().send()

    async def _lock(self, request: Request) -> None:
        await self._lines(request)
        self._check_args(request)
        self._require_upload("lock")
        path = request.args.get("path", "")
        if not path:
            raise RequestError(400, "lock needs a path= argument")
        lock = self.backend.create_lock(self.repo_id, path, request.args.get("refname"))
        self.out.text("status 201")
        for arg in lock.args():
            self.out.text(arg)
        await self.out.flush_pkt().send()

    async def _list_locks(self, request: Request) -> None:
        await self._lines(request)
        self._check_args(request)
        limit = None
        if "limit" in request.args:
            value = request.args["limit"]
            if not _is_number(value):
                raise RequestError(400, "limit= must be a number")
            digits = value.lstrip("0") or "0"
            limit = min(int(digits), MAX_LOCK_LIMIT) if len(digits) <= 19 else MAX_LOCK_LIMIT
        locks, next_cursor = self.backend.list_locks(
            self.repo_id, path=request.args.get("path") or None, lock_id=request.args.get("id") or None,
            cursor=request.args.get("cursor") or None, limit=limit,
            refspec=request.args.get("refspec") or request.args.get("refname") or None)
        self.out.text("status 200")
        if next_cursor:
            self.out.text(f"next-cursor={next_cursor}")
        self.out.delim()
        for lock in locks:
            self.out.text(f"lock {lock.id}").text(f"path {lock.id} {lock.path}")
            self.out.text(f"locked-at {lock.id} {lock.locked_at}").text(f"ownername {lock.id} {lock.owner}")
            self.out.text(f"owner {lock.id} {'ours' if lock.ours else 'theirs'}")
        await self.out.flush_pkt().send()

    async def _unlock(self, request: Request, lock_id: str) -> None:
        await self._lines(request)
        self._check_args(request)
        self._require_upload("unlock")
        force = request.args.get("force", "false").lower() in ("true", "1")
        lock = self.backend.unlock(self.repo_id, lock_id, force, request.args.get("refname"))
        self.out.text("status 200")
        for arg in lock.args():
            self.out.text(arg)
        await self.out.flush_pkt().send()


class _Upload:
    """The data packets of one put-object, checked for size and SHA-256 as they stream."""

    def __init__(self, oid: str, size: int):
        self.oid = oid
        self.size = size
        self.done = False  # read up to and including the flush

    async def chunks(self, reader: PktReader) -> AsyncIterator[bytes]:
        digest = hashlib.sha256()
        received = 0
        while True:
            packet = await reader.read()
            if packet is FLUSH:
                self.done = True
                break
            if packet is DELIM:
                raise PktLineError("unexpected delimiter packet inside object data")
            assert isinstance(packet, bytes)
            received += len(packet)
            if received > self.size:
                raise RequestError(422, f"more data than the declared size {self.size}")
            digest.update(packet)
            yield packet
        if received != self.size:
            raise RequestError(422, f"received {received} bytes, but the declared size is {self.size}")
        if digest.hexdigest() != self.oid:
            raise RequestError(422, f"the data does not match the object id {self.oid} (SHA-256 mismatch)")


def _size_arg(args: dict[str, str]) -> int:
    value = args.get("size")
    if value is None:
        raise RequestError(400, "a size= argument is required")
    if not _is_number(value) or len(value) > 19:
        raise RequestError(400, f"size= must be a non-negative integer, not {value[:20]!r}")
    return int(value)


def _is_number(value: str) -> bool:
    """ASCII digits only: str.isdigit() also takes '²' and other scripts' digits, which int() refuses."""
    return value.isascii() and value.isdigit()


def _parse_object_line(line: str) -> tuple[str, int]:
    parts = line.split(" ")
    if len(parts) < 2 or not OID_RE.match(parts[0]) or not _is_number(parts[1]) or len(parts[1]) > 19:
        raise RequestError(422, f"malformed object line {line[:80]!r}; expected '<sha256 oid> <size>'")
    return parts[0], int(parts[1])
