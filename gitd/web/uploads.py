"""Files uploaded from the browser: a multipart form streamed to temporary files (never
held in memory), then committed through the same commit path as the APIs
(``CommitWriter.commit_to_branch``: quarantine, git's object checks, the hook chain).
Files larger than ``[hub] regular_upload_max`` go to Git LFS, as huggingface_hub's
uploads do, with a ``.gitattributes`` line added for each unless one already covers it."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pathspec
from aiohttp import BodyPartReader, MultipartReader

from gitd.errors import BadRequest, PayloadTooLarge
from gitd.lfs.pointer import format_pointer
from gitd.web.sessions import CSRF_FIELD, WebSessions

CHUNK = 1 << 20
FIELD_MAX = 64 * 1024
LFS_ATTRIBUTES = "filter=lfs diff=lfs merge=lfs -text"


@dataclass
class Uploaded:
    name: str  # as the browser sent it (a relative path for a folder upload)
    file: Path
    size: int
    sha256: str


@dataclass
class UploadForm:
    fields: dict[str, str]
    files: list[Uploaded]


async def read_upload_form(reader: MultipartReader, request, sessions: WebSessions, into: Path, *,
                           max_files: int, max_size: int) -> UploadForm:
    """Read the form: its CSRF token must be the first field (checked before any file is
    read), then text fields and files, each file written to a temporary file under ``into``."""
    first = await reader.next()
    if not isinstance(first, BodyPartReader) or first.name != CSRF_FIELD:
        sessions.check_csrf(request, None)
    assert isinstance(first, BodyPartReader)
    sessions.check_csrf(request, (await _text(first, 256)))
    out = UploadForm({}, [])
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or not part.name:
            continue
        if part.filename is None:
            out.fields[part.name] = await _text(part, FIELD_MAX)
            continue
        if not part.filename:
            continue  # an empty file input
        if len(out.files) >= max_files:
            raise BadRequest(f"at most {max_files} files at a time")
        fd, temp = tempfile.mkstemp(prefix="upload-", dir=into)
        digest, size = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as sink:
            while chunk := await part.read_chunk(CHUNK):
                size += len(chunk)
                if max_size and size > max_size:
                    raise PayloadTooLarge(f"{part.filename[:200]} is larger than this server's limit")
                digest.update(chunk)
                sink.write(chunk)
        out.files.append(Uploaded(part.filename, Path(temp), size, digest.hexdigest()))
    return out


async def _text(part: BodyPartReader, limit: int) -> str:
    buf = bytearray()
    while chunk := await part.read_chunk(4096):
        buf += chunk
        if len(buf) > limit:
            raise BadRequest(f"the form field {part.name!r} is too long")
    return buf.decode("utf-8", "replace")


def file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


async def file_chunks_async(path: Path) -> AsyncIterator[bytes]:
    for chunk in file_chunks(path):
        yield chunk


def pointer_for(upload: Uploaded) -> bytes:
    return format_pointer(upload.sha256, upload.size)


def with_lfs_attributes(current: str, paths: list[str]) -> str | None:
    """``.gitattributes`` with a Git LFS line for each of ``paths`` no existing LFS line
    covers, or None when nothing needs adding."""
    patterns = []
    for line in current.splitlines():
        words = line.split()
        if len(words) > 1 and not words[0].startswith("#") and "filter=lfs" in words[1:]:
            patterns.append(words[0])
    spec = pathspec.PathSpec.from_lines("gitignore", patterns) if patterns else None
    missing = [p for p in paths if spec is None or not spec.match_file(p)]
    if not missing:
        return None
    lines = current if current.endswith("\n") or not current else current + "\n"
    for path in missing:
        # A pattern that matches exactly this path: glob characters escaped; with whitespace
        # or quotes in it, the pattern is quoted in C style, as git reads it.
        pattern = "/" + "".join("\\" + c if c in "*?[]\\!#" else c for c in path)
        if any(c.isspace() or c == '"' for c in pattern):
            pattern = '"' + pattern.replace("\\", "\\\\").replace('"', '\\"') + '"'
        lines += f"{pattern} {LFS_ATTRIBUTES}\n"
    return lines


def cleanup(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


