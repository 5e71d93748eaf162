"""huggingface_hub's NDJSON commit request (``create_commit``): its lines, read and parsed.

The body is one JSON object per line, ``{"key": ..., "value": {...}}``: first the
``header`` (``summary``, ``description``, ``parentCommit``), then one line per
operation: ``file`` (content inline, base64 or text), ``lfsFile`` (a sha256 oid the
repository's LFS store must hold), ``deletedFile`` and ``deletedFolder``.

``ndjson_lines`` streams the lines of the body within a per-line and a total cap;
``CommitParser`` turns each line into an operation (``ParsedOp``) and the header into the
commit's message and parent, without I/O. A big ``file`` line (over ``INLINE_JSON``) is
not parsed whole: its base64 content becomes a ``StreamedFile``, decoded a few MiB at a
time while ``store_file`` writes it into the commit's quarantine. ``HubUploads.commit``
runs these on the daemon's requests; the fuzz target ``hub_commit`` runs the same.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from gitd.errors import BadRequest, PayloadTooLarge
from gitd.git.quarantine import ObjectQuarantine
from gitd.http.context import INLINE_JSON
from gitd.http.offload import Overrun
from gitd.hub.commits import AddFile, DeleteFile, DeleteFolder, check_path, is_text
from gitd.lfs.pointer import OID_RE

READ_CHUNK = 1 << 16
# A commit line over this size waits for one of the ``hub.inline_decodes`` turns before more of
# it is read, and is decoded on a thread.
BIG_LINE = 1 << 20
# How long a big line waits for its turn before the request is refused (503).
TURN_WAIT = 60.0
B64_CHUNK = 4 * 1024 * 1024  # base64 characters decoded at a time (a multiple of 4)
_CONTENT_KEY = re.compile(rb'"content"\s*:\s*"')


async def ndjson_lines(content: Any, max_line: int, max_total: int, turns: asyncio.Semaphore, *,
                       big_line: int = BIG_LINE) -> AsyncIterator[list[bytearray]]:
    """The non-empty lines of a streamed body, each at most ``max_line`` bytes and all together at most
    ``max_total``. A line growing past ``big_line`` holds one of ``turns`` until it has been handled
    (the caller asks for the next line); use with ``contextlib.aclosing``. Each line comes in a
    one-item list the caller empties, so the only reference to it is the caller's."""
    buf = bytearray()
    scanned = total = 0
    held = False
    try:
        async for chunk in content.iter_chunked(READ_CHUNK):
            total += len(chunk)
            if total > max_total:
                raise PayloadTooLarge(f"the commit request is larger than {max_total} bytes; split it into "
                                      "several commits or upload large files with Git LFS")
            buf += chunk
            while (i := buf.find(b"\n", scanned)) >= 0:
                rest = buf[i + 1:]
                del buf[i:]
                line, buf, scanned = buf, rest, 0
                if line and not line.isspace():  # (strip() would copy a big line)
                    box = [line]
                    del line
                    yield box
                    del box
                if held and len(buf) <= big_line:
                    turns.release()
                    held = False
            scanned = len(buf)
            if len(buf) > max_line:
                raise PayloadTooLarge(
                    f"a commit line is larger than {max_line} bytes; upload files this large with Git LFS "
                    "(set HF_HUB_DISABLE_XET=1) or git push"
                )
            if len(buf) > big_line and not held:
                try:
                    await asyncio.wait_for(turns.acquire(), TURN_WAIT)
                except TimeoutError:
                    raise Overrun("the server is busy with other large commits; try again later")
                held = True
        if buf and not buf.isspace():
            yield [buf]
    finally:
        if held:
            turns.release()


def decode_line(box: list[bytearray]) -> tuple[str, dict[str, Any]]:
    """One commit line's key and value (the line is consumed: its memory goes as soon as it is parsed)."""
    line = box.pop()
    try:
        item = json.loads(line)
        del line
        key, value = item["key"], item["value"]
        if not isinstance(value, dict) or not isinstance(key, str):
            raise TypeError
    except (ValueError, KeyError, TypeError, RecursionError):  # ValueError: also a number of 4300+ digits
        raise BadRequest('each commit line must be a JSON object {"key": ..., "value": {...}}')
    return key, value


def split_content(line: bytearray, marker: str) -> tuple[bytes, memoryview] | None:
    """A big ``file`` line as (the line with ``marker`` for its content string, a view of the content),
    found without parsing the whole line (json.loads would hold the GIL for as long as it takes, and
    make three copies of it); None when the content holds escapes: then it is parsed in full."""
    found = _CONTENT_KEY.search(line)
    if found is None:
        return None
    start = found.end()
    end = line.find(b'"', start)
    if end < 0 or line.find(b"\\", start, end) >= 0:
        return None
    return bytes(line[:start]) + marker.encode() + bytes(line[end:]), memoryview(line)[start:end]


def base64_chunks(path: str, content: memoryview, chunk: int = B64_CHUNK) -> tuple[int, Iterator[bytes]]:
    """The decoded size of base64 ``content`` and its bytes, decoded ``chunk`` characters (a multiple
    of 4) at a time."""
    if len(content) % 4:
        raise BadRequest(f"file {path:.200}: content is not valid base64")
    tail = bytes(content[-2:]) if len(content) >= 2 else b""
    size = len(content) // 4 * 3 - tail.count(b"=")

    def chunks() -> Iterator[bytes]:
        for pos in range(0, len(content), chunk):
            piece = content[pos:pos + chunk]
            last = pos + chunk >= len(content)
            try:
                if not last and bytes(piece[-4:]).find(b"=") >= 0:
                    raise ValueError
                yield base64.b64decode(piece, validate=True)
            except (binascii.Error, ValueError):
                raise BadRequest(f"file {path:.200}: content is not valid base64")

    return size, chunks()


def decode_content(path: str, value: dict[str, Any], max_size: int) -> bytes:
    """A ``file`` operation's bytes (its content is taken out of ``value``)."""
    content = value.pop("content", "")
    encoding = value.get("encoding", "base64")
    if not isinstance(content, str):
        raise BadRequest(f"file {path:.200}: content must be a string")
    if encoding == "base64":
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(f"file {path:.200}: content is not valid base64")
    elif encoding in ("utf-8", "utf8", None):
        try:
            data = content.encode()
        except UnicodeEncodeError:  # a lone surrogate ("\ud800")
            raise BadRequest(f"file {path:.200}: content is not valid Unicode text")
    else:
        raise BadRequest(f"file {path:.200}: unknown encoding {str(encoding)[:40]!r}")
    if len(data) > max_size:
        raise PayloadTooLarge(f"file {path:.200} is larger than {max_size} bytes")
    return data


@dataclass(frozen=True)
class InlineFile:
    """A ``file`` line, its content decoded."""

    path: str
    data: bytes


@dataclass(frozen=True)
class StreamedFile:
    """A big ``file`` line's base64 content, decoded piece by piece as it is written (``store_file``)."""

    path: str
    size: int
    chunks: Iterator[bytes]


@dataclass(frozen=True)
class LfsFile:
    """An ``lfsFile`` line: a pointer to an object the repository's LFS store must hold."""

    path: str
    oid: str
    size: object  # as sent (None when absent): must equal the stored size


ParsedOp = InlineFile | StreamedFile | LfsFile | DeleteFile | DeleteFolder


@dataclass(frozen=True)
class CommitHeader:
    summary: str  # stripped, not empty
    description: str
    message: str  # the commit message: summary, blank line, description
    parent: str | None  # parentCommit: a sha or a prefix of one


class CommitParser:
    """The lines of one commit request, in order: ``line`` for each, then ``finish``. A line over
    ``inline_json`` bytes (``is_big``) is worth a thread: the daemon parses it off the loop."""

    def __init__(self, *, max_inline_file: int, inline_json: int = INLINE_JSON, b64_chunk: int = B64_CHUNK):
        self.max_inline_file = max_inline_file
        self.inline_json = inline_json
        self.b64_chunk = b64_chunk
        self.header: dict[str, Any] | None = None

    @property
    def max_line(self) -> int:
        """The longest line worth reading: a base64 file at the inline limit, and its JSON."""
        return self.max_inline_file * 4 // 3 + 64 * 1024

    def is_big(self, box: list[bytearray]) -> bool:
        return len(box[0]) > self.inline_json

    def line(self, box: list[bytearray]) -> ParsedOp | None:
        """The operation on this line (consumed); None for the header."""
        if self.is_big(box):
            return self._big(box)
        return self._entry(*decode_line(box))

    def finish(self) -> CommitHeader:
        header = self.header
        if header is None:
            raise BadRequest("empty commit request")
        summary = header.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            raise BadRequest("the commit summary must be a non-empty string")
        description = str(header.get("description") or "")
        message = summary.strip() + ("\n\n" + description.strip() if description.strip() else "") + "\n"
        parent = header.get("parentCommit")
        if parent is not None and (not isinstance(parent, str) or not _is_hex(parent)):
            raise BadRequest("parentCommit must be a commit sha")
        if not is_text(message):  # a lone surrogate: git (and SQLite, for a pull request) cannot take it
            raise BadRequest("the commit summary and description must be valid Unicode text")
        return CommitHeader(summary.strip(), description, message, parent)

    def _entry(self, key: str, value: dict[str, Any]) -> ParsedOp | None:
        if self.header is None:
            if key != "header":
                raise BadRequest("the first commit line must be the header")
            self.header = value
            return None
        return self.operation(key, value)

    def _big(self, box: list[bytearray]) -> ParsedOp | None:
        """A big line: the header, or a ``file`` line (only they carry data worth its size), whose
        base64 content is not parsed as JSON but decoded as it is written."""
        if self.header is not None:
            marker = "gitd-content-" + secrets.token_hex(16)  # no client can send it: the content was ours
            split = split_content(box[0], marker)
            if split is not None:
                small, content = split
                del split
                key, value = decode_line([bytearray(small)])
                if key == "file" and value.get("content") == marker and value.get("encoding", "base64") == "base64":
                    path = check_path(value.get("path"))
                    size, chunks = base64_chunks(path, content, self.b64_chunk)
                    if size > self.max_inline_file:
                        raise PayloadTooLarge(f"file {path:.200} is larger than {self.max_inline_file} bytes")
                    return StreamedFile(path, size, chunks)
                del content
        key, value = decode_line(box)
        if self.header is not None and key != "file":
            raise BadRequest(f"a {key[:40]!r} commit line is larger than {self.inline_json} bytes")
        return self._entry(key, value)

    def operation(self, key: str, value: dict[str, Any]) -> ParsedOp:
        if key == "file":
            path = check_path(value.get("path"))
            return InlineFile(path, decode_content(path, value, self.max_inline_file))
        if key == "lfsFile":
            path = check_path(value.get("path"))
            oid = value.get("oid")
            if value.get("algo", "sha256") != "sha256" or not isinstance(oid, str) or not OID_RE.match(oid):
                raise BadRequest(f"lfsFile {path:.200}: expected a sha256 oid")
            return LfsFile(path, oid, value.get("size"))
        if key == "deletedFile":
            return DeleteFile(check_path(value.get("path")))
        if key == "deletedFolder":
            raw = value.get("path")
            if raw in ("/", ""):
                return DeleteFolder("")
            return DeleteFolder(check_path(raw))
        raise BadRequest(f"unknown commit operation {key[:40]!r}")


def store_file(q: ObjectQuarantine, file: InlineFile | StreamedFile) -> AddFile:
    """Write a file's blob into the commit's quarantine (blocking: on a thread). A streamed file's
    content is decoded as it is written, hashed and compressed as git writes a loose object."""
    if isinstance(file, InlineFile):
        return AddFile(file.path, q.write_blob(file.data))
    try:
        return AddFile(file.path, q.write_blob_chunks(file.size, file.chunks))
    except ValueError:  # the decoded size is not the size its length and padding promised
        raise BadRequest(f"file {file.path:.200}: content is not valid base64")


def _is_hex(text: str) -> bool:
    return 5 <= len(text) <= 40 and all(c in "0123456789abcdefABCDEF" for c in text)
