"""huggingface_hub's NDJSON commit request (``create_commit``), parsed and checked without I/O.

The body is one JSON object per line, ``{"key": ..., "value": {...}}``: first the
``header`` (``summary``, ``description``, ``parentCommit``), then one line per
operation: ``file`` (content inline, base64 or text), ``lfsFile`` (a sha256 oid the
repository's LFS store must hold), ``deletedFile`` and ``deletedFolder``. ``CommitParser``
turns each line into an operation for ``HubUploads`` to carry out (write the blob, look
the LFS object up), and the header into the commit's message and parent.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from gitd.errors import BadRequest, GitdError
from gitd.hub.commits import DeleteFile, DeleteFolder, check_path, is_text
from gitd.lfs.pointer import OID_RE

READ_CHUNK = 1 << 16


class PayloadTooLarge(GitdError):
    status = 413
    code = "PayloadTooLarge"


async def ndjson_lines(content: Any, max_line: int) -> AsyncIterator[bytes]:
    """The non-empty lines of a streamed body, each at most ``max_line`` bytes."""
    buf = bytearray()
    scanned = 0
    async for chunk in content.iter_chunked(READ_CHUNK):
        buf += chunk
        while True:
            i = buf.find(b"\n", scanned)
            if i < 0:
                scanned = len(buf)
                break
            line = bytes(buf[:i])
            del buf[:i + 1]
            scanned = 0
            if line.strip():
                yield line
        if len(buf) > max_line:
            raise PayloadTooLarge(
                f"a commit line is larger than {max_line} bytes; upload files this large with Git LFS "
                "(set HF_HUB_DISABLE_XET=1) or git push"
            )
    if bytes(buf).strip():
        yield bytes(buf)


@dataclass(frozen=True)
class InlineFile:
    """A ``file`` line: the content travels in the request."""

    path: str
    data: bytes


@dataclass(frozen=True)
class LfsFile:
    """An ``lfsFile`` line: a pointer to an object the repository's LFS store must hold."""

    path: str
    oid: str
    size: object  # as sent (None when absent): must equal the stored size


ParsedOp = InlineFile | LfsFile | DeleteFile | DeleteFolder


@dataclass(frozen=True)
class CommitHeader:
    summary: str  # stripped, not empty
    description: str
    message: str  # the commit message: summary, blank line, description
    parent: str | None  # parentCommit: a sha or a prefix of one


class CommitParser:
    """The lines of one commit request, in order: ``line`` for each, then ``finish``."""

    def __init__(self, *, max_inline_file: int):
        self.max_inline_file = max_inline_file
        self.header: dict[str, Any] | None = None

    @property
    def max_line(self) -> int:
        """The longest line worth reading: a base64 file at the inline limit, and its JSON."""
        return self.max_inline_file * 4 // 3 + 64 * 1024

    def line(self, line: bytes) -> ParsedOp | None:
        """The operation on this line; None for the header."""
        try:
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if not isinstance(value, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError, RecursionError):  # RecursionError: nested too deep
            raise BadRequest('each commit line must be a JSON object {"key": ..., "value": {...}}')
        if self.header is None:
            if key != "header":
                raise BadRequest("the first commit line must be the header")
            self.header = value
            return None
        return self.operation(key, value)

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
        if not is_text(message):
            raise BadRequest("the commit summary and description must be valid Unicode text")
        return CommitHeader(summary.strip(), description, message, parent)

    def operation(self, key: object, value: dict[str, Any]) -> ParsedOp:
        if key == "file":
            path = check_path(value.get("path"))
            content = value.get("content", "")
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
                except UnicodeEncodeError:
                    raise BadRequest(f"file {path:.200}: content is not valid Unicode text")
            else:
                raise BadRequest(f"file {path:.200}: unknown encoding {encoding!r:.60}")
            if len(data) > self.max_inline_file:
                raise PayloadTooLarge(f"file {path:.200} is larger than {self.max_inline_file} bytes")
            return InlineFile(path, data)
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
        raise BadRequest(f"unknown commit operation {key!r:.60}")


def _is_hex(text: str) -> bool:
    return 5 <= len(text) <= 40 and all(c in "0123456789abcdefABCDEF" for c in text)
