"""Fuzz targets: one plain function per parser, taking the raw bytes a client could send.

A target returns ``True`` when the input was accepted, ``False`` when the parser refused
it with one of its documented errors; anything else it raises is a crash: another
exception, a broken invariant (``Broken``), an error message that echoes unbounded input
(``Broken``), or an input that takes longer than ``TIME_BOUND`` (``TooSlow``). The
targets drive the real code over real parts (``world.World``); the pytest module
(test_fuzz.py) and ``bench/fuzz.py`` (atheris, or hypothesis) both call ``run``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import time
from collections.abc import Callable

from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import StreamReader as HttpStream

from gitd.access.rules import AccessLevel
from gitd.errors import GitdError
from gitd.git.quarantine import ObjectQuarantine
from gitd.git.runner import sanitize_protocol
from gitd.hooks.api import TOKEN_HEADER, MalformedHookCall, check_quarantine_env, parse_body
from gitd.hooks.server import REASONS, HookServer, _Connection
from gitd.http.context import json_object, parse_json_body
from gitd.hub.commit_request import CommitParser, InlineFile, LfsFile, StreamedFile, ndjson_lines, store_file
from gitd.hub.commits import AddFile, Op, make_commit
from gitd.lfs.batch import check_batch_objects, parse_batch
from gitd.lfs.pointer import format_pointer
from gitd.names import is_valid_name
from gitd.ssh.command import GIT_VERBS, LFS_OPERATIONS, LFS_VERBS, CommandError, parse_command, parse_repo_path
from gitd.ssh.lfs_transfer import LfsTransfer
from gitd.ssh.pktline import (
    DELIM,
    FLUSH,
    MAX_PAYLOAD,
    Marker,
    PktLineError,
    PktReader,
    PktWriter,
    decode_text,
    encode_text,
)
from tests.fuzz.world import world

#: The longest one input may take (inputs are at most a few tens of KiB: only a hang or
#: superlinear work gets near it, even on two busy cores).
TIME_BOUND = 5.0
#: The longest error message a parser may answer with: messages quote bad input cut short.
MAX_MESSAGE = 1000
HOOK_REPO = b"@REPO@"  # stands for the hook repository's path in inputs (seeds, strategies)
OID = re.compile(r"[0-9a-f]{64}")


class Broken(AssertionError):
    """The parser answered, but broke one of its promises."""


class TooSlow(AssertionError):
    pass


def _message(text: str) -> None:
    if len(text) > MAX_MESSAGE:
        raise Broken(f"an error message of {len(text)} characters: {text[:120]!r}...")


def _stream(data: bytes) -> asyncio.StreamReader:
    stream = asyncio.StreamReader(limit=1 << 20)
    stream.feed_data(data)
    stream.feed_eof()
    return stream


# -- pkt-line -----------------------------------------------------------------------------------
def pktline(data: bytes) -> bool:
    """Every packet of ``data``; each must re-encode to the bytes it was read from."""

    async def go() -> bool:
        reader = PktReader(_stream(data))
        pos = 0
        while True:
            try:
                packet = await reader.read()
            except EOFError:
                return pos == len(data)
            except PktLineError as exc:
                _message(str(exc))
                return False
            if isinstance(packet, Marker):
                frame = b"0000" if packet is FLUSH else b"0001"
            else:
                if len(packet) > MAX_PAYLOAD:
                    raise Broken(f"a payload of {len(packet)} bytes")
                frame = b"%04x" % (len(packet) + 4) + packet
                try:
                    text = decode_text(packet)
                except PktLineError:
                    text = None
                if text is not None and text.encode() not in (packet, packet[:-1]):
                    raise Broken(f"text packet {packet[:60]!r} decoded as {text[:60]!r}")
            if data[pos:pos + 4].lower() + data[pos + 4:pos + len(frame)] != frame:
                raise Broken(f"packet at {pos} does not re-encode to its bytes")
            pos += len(frame)

    return world().loop.run_until_complete(go())


# -- the pure-SSH LFS protocol ------------------------------------------------------------------
def lfs_transfer(data: bytes) -> bool:
    """A git-lfs-transfer session: the handshake, then ``data[1:]``. ``data[0]`` picks the
    session's operation, user and access level. The engine must answer every request and
    only ever end with exit status 0 (quit) or 1 (protocol error, end of input)."""
    w = world()
    status, out = transfer_session(data)
    if status not in (0, 1):
        raise Broken(f"exit status {status}")
    w.loop.run_until_complete(_check_responses(out))
    return status == 0


def transfer_session(data: bytes) -> tuple[int, bytes]:
    """(exit status, everything the engine sent) for one session."""
    w = world()
    mode = data[0] if data else 0
    operation = "upload" if mode & 1 == 0 else "download"
    account = w.alice if mode & 2 == 0 else w.bob
    level = (AccessLevel.WRITE, AccessLevel.READ, AccessLevel.ADMIN, AccessLevel.WRITE)[(mode >> 2) & 3]
    wire = encode_text("version 1") + b"0000" + data[1:]
    sent = bytearray()

    async def write(chunk: bytes) -> None:
        sent.extend(chunk)

    async def go() -> int:
        engine = LfsTransfer(w.backend(account, level), repo_id=w.repo.id, operation=operation,
                             can_write=level >= AccessLevel.WRITE, reader=PktReader(_stream(wire)),
                             writer=PktWriter(write))
        return await engine.run()

    try:
        return w.loop.run_until_complete(go()), bytes(sent)
    finally:
        w.reset()


async def _check_responses(out: bytes) -> None:
    """The engine's output is pkt-lines: responses of a status line, arguments, and maybe a
    delimiter and lines or data, each ended by a flush; error messages are short."""
    reader = PktReader(_stream(out))
    try:
        while True:
            first = await reader.read_text()
            if first is FLUSH:  # the end of the capability advertisement
                continue
            error = isinstance(first, str) and first.startswith("status ") and first[7:] >= "400"
            after_delim = False
            while (packet := await reader.read()) is not FLUSH:
                if packet is DELIM:
                    after_delim = True
                elif error and after_delim:
                    _message(packet.decode("utf-8"))  # type: ignore[union-attr]
    except EOFError:
        return
    except PktLineError as exc:
        raise Broken(f"the engine's output is not pkt-line framing: {exc}") from None


# -- SSH commands -------------------------------------------------------------------------------
def ssh_command(data: bytes) -> bool:
    """The command line of an SSH exec request (and a GIT_PROTOCOL value)."""
    text = data.decode("utf-8", "surrogateescape")
    value = sanitize_protocol(text)
    if value is not None and not re.fullmatch(r"[0-9A-Za-z=:]+", value):
        raise Broken(f"GIT_PROTOCOL {value!r} let through")
    try:
        parse_repo_path(text)
    except CommandError as exc:
        _message(exc.message)
    try:
        command = parse_command(text)
    except CommandError as exc:
        _message(exc.message)
        return False
    repo = command.repo
    if command.verb not in GIT_VERBS and command.verb not in LFS_VERBS:
        raise Broken(f"verb {command.verb!r}")
    if not (is_valid_name(repo.namespace) and is_valid_name(repo.name)):
        raise Broken(f"repository {repo!r}")
    if (command.verb in LFS_VERBS) != (command.operation in LFS_OPERATIONS):
        raise Broken(f"operation {command.operation!r} for {command.verb}")
    return True


# -- the hook socket ----------------------------------------------------------------------------
def hook_body(data: bytes) -> bool:
    """A hook call's body (``@REPO@`` in it stands for the repository's path)."""
    repo = world().hook_repo
    body = data.replace(HOOK_REPO, bytes(repo))
    try:
        env, _options, updates = parse_body(body)
        check_quarantine_env(env, repo)
    except MalformedHookCall as exc:
        _message(str(exc))
        return False
    for update in updates:
        if not (update.ref.startswith("refs/") and len(update.old) == len(update.new) == 40):
            raise Broken(f"update {update!r}")
    return True


class _Transport:
    """What _Connection needs of its transport: the bytes it writes, and whether it closed."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        if self.closed:
            raise Broken("a write after close")
        self.written.extend(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass


def hook_http(data: bytes) -> bool:
    """One connection to the hook socket's HTTP server. ``data[0]`` cuts the rest into
    reads of that many bytes (0: one read); then the client half-closes. Every request
    gets exactly one well-formed answer, and the connection is closed."""
    size = data[0] if data else 0
    stream = data[1:]
    calls: list[tuple[str | None, bytes]] = []

    async def handler(token: str | None, body: bytes) -> tuple[int, str]:
        calls.append((token, body))
        return 200, f"{len(body)} bytes"

    async def go() -> bytes:
        server = HookServer({"/hook/pre-receive": handler, "/hook/post-receive": handler},
                            token_header=TOKEN_HEADER, max_body=64 * 1024)
        conn = _Connection(server)
        transport = _Transport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        for i in range(0, len(stream), size or len(stream) or 1):
            conn.data_received(stream[i:i + (size or len(stream))])
        conn.eof_received()
        while server.tasks:
            await asyncio.gather(*server.tasks)
        if not transport.closed:
            raise Broken("the connection was left open")
        return bytes(transport.written)

    answer = world().loop.run_until_complete(go())
    head, sep, text = answer.partition(b"\r\n\r\n")
    match = re.fullmatch(rb"HTTP/1\.1 (\d{3}) [A-Za-z ]+\r\nContent-Type: text/plain; charset=utf-8\r\n"
                         rb"Content-Length: (\d+)\r\nConnection: close", head)
    if not sep or match is None or int(match[2]) != len(text) or int(match[1]) not in REASONS:
        raise Broken(f"not one well-formed answer: {answer[:200]!r}")
    _message(text.decode("utf-8"))
    if len(calls) > 1 or (calls and int(match[1]) != 200):
        raise Broken(f"{len(calls)} handler calls, answer {match[1]!r}")
    return bool(calls)


# -- the Hub's NDJSON commit --------------------------------------------------------------------
def hub_commit(data: bytes) -> bool:
    """A create_commit body, through what ``HubUploads.commit`` runs on it: ``ndjson_lines`` (line
    and total caps, a turn held for a big line), ``CommitParser`` and ``store_file`` into an
    ``ObjectQuarantine`` of the world's repository, then the commit (in the quarantine; no ref
    moves). ``data[0]``: bits 0-5 pick the read size; 0x40 caps lines at 512 bytes and the
    body at 2 KiB; 0x80 makes lines over 96 bytes big (decoded in 8-character pieces, holding
    a turn from 160 bytes), as the daemon treats lines over 64 KiB."""
    w = world()
    mode = data[0] if data else 0
    body = data[1:]
    chunk = 1 + (mode & 0x3F) * 7
    small = bool(mode & 0x80)
    parser = CommitParser(max_inline_file=64 * 1024, **({"inline_json": 96, "b64_chunk": 8} if small else {}))
    max_line, max_total = (512, 2048) if mode & 0x40 else (parser.max_line, 1 << 20)
    q = ObjectQuarantine(w.commit_path)

    async def go() -> list[Op]:
        turns = asyncio.Semaphore(1)
        content = HttpStream(BaseProtocol(w.loop), 1 << 16, loop=w.loop)
        for i in range(0, len(body), chunk):
            content.feed_data(body[i:i + chunk])
        content.feed_eof()
        ops: list[Op] = []
        lines = ndjson_lines(content, max_line, max_total, turns, **({"big_line": 160} if small else {}))
        try:
            async with contextlib.aclosing(lines):
                async for box in lines:
                    whole = bytes(box[0]) if parser.is_big(box) else None
                    op = parser.line(box)
                    if isinstance(op, (InlineFile, StreamedFile)):
                        ops.append(_stored(q, op, whole))
                    elif isinstance(op, LfsFile):
                        if not OID.fullmatch(op.oid):
                            raise Broken(f"lfsFile oid {op.oid!r} let through")
                        size = w.lfs.size(w.repo.id, op.oid) or 0
                        ops.append(AddFile(op.path, q.write_blob(format_pointer(op.oid, size))))
                    elif op is not None:
                        ops.append(op)
        finally:
            if turns.locked():
                raise Broken("a turn for big lines was kept")
        return ops

    try:
        ops = w.loop.run_until_complete(go())
        head = parser.finish()
        make_commit(q.repository(), w.base_commit, ops, author="fuzz", email="fuzz@example.com", message=head.message)
    except GitdError as exc:
        _message(exc.message)
        return False
    finally:
        q.discard()
    return True


def _stored(q: ObjectQuarantine, op: InlineFile | StreamedFile, whole: bytes | None) -> AddFile:
    """``store_file``; a big line's file must hold what parsing the whole line gives."""
    try:
        added = store_file(q, op)
    except GitdError:
        if isinstance(op, StreamedFile) and _full_decode(whole) is not None:
            raise Broken(f"streamed base64 of {op.path!r} refused, but the whole line decodes") from None
        raise
    if whole is not None:
        expected = _full_decode(whole)
        if expected is None or q.repository()[added.oid].data != expected:
            raise Broken(f"the file {op.path!r} of a big line differs from the whole line's content")
    return added


def _full_decode(whole: bytes | None) -> bytes | None:
    """A ``file`` line's content, from the line parsed whole (None: it has none or it is invalid)."""
    try:
        value = json.loads(whole or b"")["value"]
        content, encoding = value.get("content", ""), value.get("encoding", "base64")
        return base64.b64decode(content, validate=True) if encoding == "base64" else content.encode()
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return None


# -- the LFS batch API --------------------------------------------------------------------------
def lfs_batch(data: bytes) -> bool:
    """A batch request body: checked, each object checked, the held ones looked up, and the
    answer's error entries serialised as the response would be."""
    w = world()
    try:
        batch = parse_batch(json_object(parse_json_body(data)), max_objects=100)
    except GitdError as exc:
        _message(exc.message)
        return False
    checked = check_batch_objects(w.lfs, batch)
    for entry in checked:
        if isinstance(entry, tuple):
            oid, size = entry
            if not (isinstance(oid, str) and OID.fullmatch(oid)) or type(size) is not int or size < 0:
                raise Broken(f"object {entry!r} let through")
        else:
            _message(entry["error"]["message"])
    w.lfs.status(w.repo.id, [entry[0] for entry in checked if isinstance(entry, tuple)])
    json.dumps({"transfer": "basic", "objects": [e for e in checked if isinstance(e, dict)]})
    return True


# -- the LFS locks API (HTTP) -------------------------------------------------------------------
def lfs_locks(data: bytes) -> bool:
    """A locks API call: ``data[0]`` picks create, list, verify or unlock (as alice or bob,
    with or without admin rights), the rest is its JSON body; list takes its query from
    the body's values, as strings. One lock (bob's, on ``locked.bin``) is always there."""
    w = world()
    mode = data[0] if data else 0
    account = w.alice if mode & 4 == 0 else w.bob
    try:
        w.locks.create(w.repo.id, w.bob, "locked.bin")
        body = json_object(parse_json_body(data[1:]))
        action = mode & 3
        if action == 0:
            ref = body.get("ref")
            name = ref.get("name") if isinstance(ref, dict) and isinstance(ref.get("name"), str) else None
            found = [w.locks.create(w.repo.id, account, body.get("path"), name)]
        elif action == 1:
            query = {key: str(body[key]) for key in ("path", "id", "cursor", "limit") if body.get(key) is not None}
            found, _ = w.locks.list(w.repo.id, path=query.get("path"), lock_id=query.get("id"),
                                    cursor=query.get("cursor"), limit=query.get("limit"))
        elif action == 2:
            ours, theirs, _ = w.locks.verify(w.repo.id, account, cursor=body.get("cursor"), limit=body.get("limit"))
            found = ours + theirs
        else:
            found = [w.locks.unlock(w.repo.id, str(body.get("id", "")), account, force=body.get("force") is True,
                                    is_admin=bool(mode & 8))]
        json.dumps([lock.to_json() for lock in found])
    except GitdError as exc:
        _message(exc.message)
        return False
    finally:
        w.reset()
    return True


TARGETS: dict[str, Callable[[bytes], bool]] = {
    "pktline": pktline,
    "lfs_transfer": lfs_transfer,
    "ssh_command": ssh_command,
    "hook_body": hook_body,
    "hook_http": hook_http,
    "hub_commit": hub_commit,
    "lfs_batch": lfs_batch,
    "lfs_locks": lfs_locks,
}


def run(name: str, data: bytes) -> bool:
    """Run target ``name`` on ``data`` within the time bound. An input over the bound runs
    again and is TooSlow only if it is slow twice: a busy machine can stall any one run."""
    for _ in range(2):
        start = time.perf_counter()
        accepted = TARGETS[name](data)
        elapsed = time.perf_counter() - start
        if elapsed <= TIME_BOUND:
            return accepted
    raise TooSlow(f"{name}: {elapsed:.1f} s for an input of {len(data)} bytes (twice over {TIME_BOUND} s)")
