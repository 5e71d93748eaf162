"""Uploads: preupload (upload modes) and the NDJSON commit, including create_pr."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

from aiohttp import web

from gitd.access.rules import Access, AccessLevel
from gitd.errors import BadRequest, PayloadTooLarge
from gitd.git.quarantine import ObjectQuarantine
from gitd.git.refname import check_revision
from gitd.http.context import INLINE_JSON, JSON_MAX, read_json
from gitd.http.offload import Offload, Overrun, check_deadline
from gitd.http.routing import Match, Router
from gitd.hub.attributes import SAMPLE_SIZE, LfsAttributes, looks_binary
from gitd.hub.commits import MAX_PATH, AddFile, CommitWriter, DeleteFile, DeleteFolder, Op, check_path
from gitd.hub.common import HubBase, RepoCtx, api_patterns, bool_param, dumps_in_pieces, json_response
from gitd.hub.discussions import PullRequests
from gitd.hub.files import FileView
from gitd.hub.gitread import SHA_RE, RepoReader
from gitd.hub.ignore import GitIgnore
from gitd.lfs.pointer import OID_RE, format_pointer
from gitd.repos import RepoService
from gitd.store.redirects import Redirects

log = logging.getLogger("gitd.hub")

READ_CHUNK = 1 << 16
# Largest .gitignore read from the repository for preupload's shouldIgnore, and .gitattributes
# for its upload modes.
IGNORE_MAX = 64 * 1024
ATTRIBUTES_MAX = 64 * 1024
# A commit line over this size waits for one of the ``hub.inline_decodes`` turns before more of
# it is read, and is decoded on a thread.
BIG_LINE = 1 << 20
# How long a big line waits for its turn before the request is refused (503).
TURN_WAIT = 60.0


async def ndjson_lines(content: Any, max_line: int, max_total: int,
                       turns: asyncio.Semaphore) -> AsyncIterator[list[bytearray]]:
    """The non-empty lines of a streamed body, each at most ``max_line`` bytes and all together at most
    ``max_total``. A line growing past BIG_LINE holds one of ``turns`` until it has been handled (the
    caller asks for the next line); use with ``contextlib.aclosing``. Each line comes in a one-item
    list the caller empties, so the only reference to it is the caller's."""
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
                if held and len(buf) <= BIG_LINE:
                    turns.release()
                    held = False
            scanned = len(buf)
            if len(buf) > max_line:
                raise PayloadTooLarge(
                    f"a commit line is larger than {max_line} bytes; upload files this large with Git LFS "
                    "(set HF_HUB_DISABLE_XET=1) or git push"
                )
            if len(buf) > BIG_LINE and not held:
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
    except (ValueError, KeyError, TypeError, RecursionError):
        raise BadRequest('each commit line must be a JSON object {"key": ..., "value": {...}}')
    return key, value


_CONTENT_KEY = re.compile(rb'"content"\s*:\s*"')
B64_CHUNK = 4 * 1024 * 1024  # base64 characters decoded at a time (a multiple of 4)


def split_content(line: bytearray) -> tuple[bytes, memoryview] | None:
    """A big ``file`` line as (the line with an empty content string, a view of the content), found
    without parsing the whole line (json.loads would hold the GIL for as long as it takes, and
    make three copies of it); None when the content holds escapes: then it is parsed in full."""
    found = _CONTENT_KEY.search(line)
    if found is None:
        return None
    start = found.end()
    end = line.find(b'"', start)
    if end < 0 or line.find(b"\\", start, end) >= 0:
        return None
    return bytes(line[:start]) + bytes(line[end:]), memoryview(line)[start:end]


def base64_chunks(path: str, content: memoryview) -> tuple[int, Iterator[bytes]]:
    """The decoded size of base64 ``content`` and its bytes, decoded a few MiB at a time."""
    if len(content) % 4:
        raise BadRequest(f"file {path}: content is not valid base64")
    tail = bytes(content[-2:]) if len(content) >= 2 else b""
    size = len(content) // 4 * 3 - tail.count(b"=")

    def chunks() -> Iterator[bytes]:
        for pos in range(0, len(content), B64_CHUNK):
            piece = content[pos:pos + B64_CHUNK]
            last = pos + B64_CHUNK >= len(content)
            try:
                if not last and bytes(piece[-4:]).find(b"=") >= 0:
                    raise ValueError
                yield base64.b64decode(piece, validate=True)
            except (binascii.Error, ValueError):
                raise BadRequest(f"file {path}: content is not valid base64")

    return size, chunks()


def decode_content(path: str, value: dict[str, Any], max_size: int) -> bytes:
    """A ``file`` operation's bytes (its content is taken out of ``value``)."""
    content = value.pop("content", "")
    encoding = value.get("encoding", "base64")
    if not isinstance(content, str):
        raise BadRequest(f"file {path}: content must be a string")
    if encoding == "base64":
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(f"file {path}: content is not valid base64")
    elif encoding in ("utf-8", "utf8", None):
        data = content.encode()
    else:
        raise BadRequest(f"file {path}: unknown encoding {str(encoding)[:40]!r}")
    if len(data) > max_size:
        raise PayloadTooLarge(f"file {path} is larger than {max_size} bytes")
    return data


def _sample(raw: Any) -> bytes | None:
    """preupload's ``sample`` (base64 of a file's first bytes); None when missing or not base64."""
    if not isinstance(raw, str) or not raw or len(raw) > 4 * SAMPLE_SIZE:
        return None
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return None


class UploadPlanner:
    """What preupload answers, for the Hub API and the native API alike: per file its upload
    mode ('regular': inline in the commit, up to ``hub.regular_upload_max``; 'lfs': through
    the LFS batch API, then an ``lfsFile`` commit line), whether the gitignore rules skip it,
    and what the revision holds at its path (the object id, or a directory)."""

    def __init__(self, reader: RepoReader, view: FileView, *, regular_upload_max: int, max_paths: int = 10_000,
                 lfs_by_content: bool = True):
        self.reader = reader
        self.view = view
        self.regular_upload_max = regular_upload_max
        self.max_paths = max_paths
        self.lfs_by_content = lfs_by_content

    def upload_mode(self, size: int, path: str = "", sample: bytes | None = None,
                    attributes: LfsAttributes | None = None) -> str:
        """'lfs' or 'regular', as the Hub decides: empty files are regular; files over
        ``regular_upload_max``, files the revision's .gitattributes sends through LFS (whatever
        their size) and files whose sample looks binary are 'lfs' (with ``lfs_by_content`` off,
        only the size counts). huggingface_hub 2.4 sends 'lfs' files to Xet unless
        HF_HUB_DISABLE_XET=1."""
        if size <= 0:
            return "regular"
        if size > self.regular_upload_max:
            return "lfs"
        if not self.lfs_by_content:
            return "regular"
        if attributes is not None and attributes.is_lfs(path):
            return "lfs"
        if sample is not None and looks_binary(sample[:SAMPLE_SIZE], truncated=size > len(sample)):
            return "lfs"
        return "regular"

    def _attributes(self, ctx: RepoCtx, commit: str | None) -> LfsAttributes | None:
        """The LFS rules of the revision's root .gitattributes (None without one)."""
        if commit is None or not self.lfs_by_content:
            return None
        entry = self.reader.entry(ctx.path, commit, ".gitattributes")
        if entry is None or entry.kind != "file" or entry.pointer is not None:
            return None
        if entry.size > ATTRIBUTES_MAX:
            log.warning("the .gitattributes of %s at %s is larger than %d bytes: not used for LFS decisions",
                        ctx.repo.full_name, commit, ATTRIBUTES_MAX)
            return None
        return LfsAttributes(self.reader.read_blob(ctx.path, entry.oid).decode("utf-8", "replace"))

    def plan(self, ctx: RepoCtx, commit: str | None, files: list[Any], ignore_text: Any = None) -> list[dict[str, Any]]:
        """One dict per file: path, uploadMode, shouldIgnore, oid ("" for none), isDir (blocking,
        bounded: run it through the offload budget)."""
        if len(files) > self.max_paths:
            raise BadRequest(f"preupload takes at most {self.max_paths} files at a time")
        ignore = GitIgnore(ignore_text) if isinstance(ignore_text, str) else None  # the client's: 400 if bad
        if ignore is None and commit is not None:
            entry = self.reader.entry(ctx.path, commit, ".gitignore")
            if entry is not None and entry.kind == "file" and entry.size <= IGNORE_MAX:
                try:
                    ignore = GitIgnore(self.reader.read_blob(ctx.path, entry.oid).decode("utf-8", "replace"))
                except BadRequest as exc:  # the repository's own: used when it can be, never an error
                    log.warning("the .gitignore of %s at %s is not used: %s", ctx.repo.full_name, commit,
                                exc.message)
        attributes = self._attributes(ctx, commit)
        out = []
        for n, f in enumerate(files):
            if not isinstance(f, dict) or not isinstance(f.get("path"), str):
                raise BadRequest("every file needs a path")
            path = f["path"]
            if len(path) > MAX_PATH:
                raise BadRequest(f"path longer than {MAX_PATH} characters: {path[:64]}...")
            if n % 256 == 0:
                check_deadline()
            size = f.get("size", 0)
            size = size if isinstance(size, int) and size >= 0 else 0
            mode = self.upload_mode(size, path.strip("/"), _sample(f.get("sample")), attributes)
            item: dict[str, Any] = {"path": path, "uploadMode": mode,
                                    "shouldIgnore": bool(ignore and ignore.ignored(path.strip("/"))),
                                    "oid": "", "isDir": False}
            entry = self.reader.entry(ctx.path, commit, path.strip("/")) if commit is not None and path else None
            if entry is not None and entry.kind == "file":
                held = entry.pointer is not None and self.view.held_size(ctx.repo.id, entry.pointer.oid)
                item["oid"] = entry.pointer.oid if held and entry.pointer else entry.oid
            elif entry is not None and entry.kind == "directory":
                item["isDir"] = True
            out.append(item)
        return out


class HubUploads(HubBase):
    def __init__(self, repos: RepoService, access: Access, reader: RepoReader, writer: CommitWriter,
                 prs: PullRequests, view: FileView, planner: UploadPlanner, *, max_inline_file: int,
                 public_url: str = "", redirects: Redirects | None = None, offload: Offload | None = None,
                 max_commit_size: int = 1 << 30, inline_decodes: int = 2):
        super().__init__(repos, access, public_url=public_url, redirects=redirects,
                         offload=offload)
        self.reader = reader
        self.writer = writer
        self.prs = prs
        self.view = view
        self.planner = planner
        self.max_inline_file = max_inline_file
        self.max_commit_size = max_commit_size
        self.inline_decodes = max(1, inline_decodes)
        self._turns: asyncio.Semaphore | None = None

    @property
    def turns(self) -> asyncio.Semaphore:
        if self._turns is None:
            self._turns = asyncio.Semaphore(self.inline_decodes)
        return self._turns

    def add_routes(self, router: Router) -> None:
        router.add("POST", api_patterns("/preupload/{rev}"), self.preupload, style="hub", name="hub-preupload")
        router.add("POST", api_patterns("/commit/{rev}"), self.commit, style="hub", name="hub-commit")

    # -- preupload -------------------------------------------------------------------------------
    async def preupload(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self.api_repo(request, m, AccessLevel.WRITE)
        body = await read_json(request, allow_empty=False, offload=self.offload, max_size=2 * JSON_MAX)
        files = body.get("files")
        if not isinstance(files, list):
            raise BadRequest('expected a JSON body {"files": [{"path", "size", "sample"}, ...]}')
        commit = self.reader.try_resolve(ctx.path, check_revision(m.params["rev"]))
        # The gitignore patterns are client data (the body's or the repository's): off the loop.
        plans = await self.offload.run(self.planner.plan, ctx, commit, files, body.get("gitIgnore"),
                                       what="preupload")
        out = [{k: v for k, v in plan.items() if k != "isDir" and (k != "oid" or v)} for plan in plans]
        return web.Response(text=dumps_in_pieces({"files": out, "commitOid": commit}), content_type="application/json")

    # -- commit ------------------------------------------------------------------------------------
    async def commit(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self.api_repo(request, m, AccessLevel.WRITE)
        rev = check_revision(m.params["rev"])
        if SHA_RE.match(rev):
            raise BadRequest("commits go to a branch, not to a commit sha")
        create_pr = bool_param(request, "create_pr")
        # The objects of the commit wait in a quarantine: a refused commit leaves nothing behind.
        async with self.writer.quarantine(ctx.path) as q:
            header, ops = await self._read_ops(request, ctx, q)
            if header is None:
                raise BadRequest("empty commit request")
            summary = header.get("summary")
            if not isinstance(summary, str) or not summary.strip():
                raise BadRequest("the commit summary must be a non-empty string")
            description = header.get("description") or ""
            message = summary.strip() + ("\n\n" + str(description).strip() if str(description).strip() else "") \
                + "\n"
            parent = header.get("parentCommit")
            if parent is not None and (not isinstance(parent, str) or not _is_hex(parent)):
                raise BadRequest("parentCommit must be a commit sha")
            author = ctx.principal.name or "anonymous"
            info = self.repos.info(ctx.repo)
            pr_url = None
            if create_pr:
                base = self.reader.resolve(ctx.path, rev)
                pr = await self.prs.open(ctx, summary.strip(), str(description), base=rev, start_point=base,
                                         create_ref=False)
                ref = f"refs/pr/{pr.num}"
                try:
                    oid = await self.writer.commit(q, info, ref, ops, author=author, message=message,
                                                   parent_commit=parent, may_create=True, start_point=base)
                except BaseException:
                    self.prs.discussions.set_status(ctx.repo.id, pr.num, "closed")
                    raise
                pr_url = f"{self.repo_url(request, ctx.repo)}/discussions/{pr.num}"
            else:
                oid = await self.writer.commit_to_branch(q, info, rev, ops, author=author, message=message,
                                                         parent_commit=parent)
        return json_response({"success": True, "commitOid": oid,
                              "commitUrl": f"{self.repo_url(request, ctx.repo)}/commit/{oid}",
                              "commitMessage": message.strip(), "hookOutput": "",
                              "pullRequestUrl": pr_url})

    async def _read_ops(self, request: web.Request, ctx: RepoCtx, q: ObjectQuarantine
                        ) -> tuple[dict[str, Any] | None, list[Op]]:
        """The header and the operations of an NDJSON commit body, streamed: big lines are decoded on a
        thread, one of ``hub.inline_decodes`` at a time, and their blobs go into the quarantine."""
        header: dict[str, Any] | None = None
        ops: list[Op] = []
        max_line = self.max_inline_file * 4 // 3 + 64 * 1024
        async with contextlib.aclosing(ndjson_lines(request.content, max_line, self.max_commit_size,
                                                    self.turns)) as lines:
            async for box in lines:
                if len(box[0]) <= INLINE_JSON:
                    key, value = decode_line(box)
                    if header is not None and key == "file":
                        path = check_path(value.get("path"))
                        data = decode_content(path, value, self.max_inline_file)
                        ops.append(AddFile(path, await self.writer.write_blob(q, data)))
                        continue
                elif header is not None:
                    ops.append(await asyncio.to_thread(self._big_op, q, box))
                    continue
                else:
                    key, value = await asyncio.to_thread(decode_line, box)
                if header is None:
                    if key != "header":
                        raise BadRequest("the first commit line must be the header")
                    header = value
                    continue
                ops.append(await self._op(ctx, q, key, value))
        return header, ops

    def _big_op(self, q: ObjectQuarantine, box: list[bytearray]) -> Op:
        """A big commit line (on a thread): only ``file`` lines carry data worth its size. Its base64
        content is decoded a few MiB at a time straight into a loose object in the quarantine."""
        split = split_content(box[0])
        if split is not None:
            small, content = split
            key, value = decode_line([bytearray(small)])
            if key == "file" and value.get("content") == "" and value.get("encoding", "base64") == "base64":
                path = check_path(value.get("path"))
                size, chunks = base64_chunks(path, content)
                if size > self.max_inline_file:
                    raise PayloadTooLarge(f"file {path} is larger than {self.max_inline_file} bytes")
                try:
                    return AddFile(path, q.write_blob_chunks(size, chunks))
                except ValueError:
                    raise BadRequest(f"file {path}: content is not valid base64")
            del content
        key, value = decode_line(box)
        if key != "file":
            raise BadRequest(f"a {str(key)[:40]!r} commit line is larger than {INLINE_JSON} bytes")
        path = check_path(value.get("path"))
        data = decode_content(path, value, self.max_inline_file)
        del value
        return AddFile(path, q.write_blob(data))

    async def _op(self, ctx: RepoCtx, q: ObjectQuarantine, key: str, value: dict[str, Any]) -> Op:
        if key == "lfsFile":
            path = check_path(value.get("path"))
            oid = value.get("oid")
            if value.get("algo", "sha256") != "sha256" or not isinstance(oid, str) or not OID_RE.match(oid):
                raise BadRequest(f"lfsFile {path}: expected a sha256 oid")
            held = self.view.held_size(ctx.repo.id, oid)
            if held is None:
                raise BadRequest(f"lfsFile {path}: this repository holds no LFS object {oid}; upload it first "
                                 "through the repository's Git LFS batch API (huggingface_hub does so with "
                                 "HF_HUB_DISABLE_XET=1)",
                                 code="LfsObjectNotFound")
            size = value.get("size")
            if size is not None and size != held:
                raise BadRequest(f"lfsFile {path}: size {size} does not match the stored LFS object {oid} "
                                 f"({held} bytes)", code="LfsSizeMismatch")
            return AddFile(path, await self.writer.write_blob(q, format_pointer(oid, held)))
        if key == "deletedFile":
            return DeleteFile(check_path(value.get("path")))
        if key == "deletedFolder":
            raw = value.get("path")
            if raw in ("/", ""):
                return DeleteFolder("")
            return DeleteFolder(check_path(raw))
        raise BadRequest(f"unknown commit operation {key[:40]!r}")


def _is_hex(text: str) -> bool:
    return 5 <= len(text) <= 40 and all(c in "0123456789abcdefABCDEF" for c in text)
