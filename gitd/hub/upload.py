"""Uploads: preupload (upload modes) and the NDJSON commit, including create_pr."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from gitd.access.rules import Access, AccessLevel
from gitd.errors import BadRequest, GitdError
from gitd.http.routing import Match, Router
from gitd.hub.commits import AddFile, CommitWriter, DeleteFile, DeleteFolder, Op, check_path
from gitd.hub.common import HubBase, RepoCtx, api_patterns, bool_param, json_response
from gitd.hub.discussions import PullRequests
from gitd.hub.files import FileView
from gitd.hub.gitread import SHA_RE, RepoReader, ref_for
from gitd.hub.ignore import GitIgnore
from gitd.lfs.pointer import OID_RE, format_pointer
from gitd.repos import RepoService
from gitd.store.redirects import Redirects

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


class HubUploads(HubBase):
    def __init__(self, repos: RepoService, access: Access, reader: RepoReader, writer: CommitWriter,
                 prs: PullRequests, view: FileView, *, regular_upload_max: int, max_inline_file: int,
                 public_url: str = "",
                 redirects: Redirects | None = None):
        super().__init__(repos, access, public_url=public_url, redirects=redirects)
        self.reader = reader
        self.writer = writer
        self.prs = prs
        self.view = view
        self.regular_upload_max = regular_upload_max
        self.max_inline_file = max_inline_file

    def add_routes(self, router: Router) -> None:
        router.add("POST", api_patterns("/preupload/{rev}"), self.preupload, style="hub", name="hub-preupload")
        router.add("POST", api_patterns("/commit/{rev}"), self.commit, style="hub", name="hub-commit")

    # -- preupload -------------------------------------------------------------------------------
    def upload_mode(self, size: int) -> str:
        """'regular' (inline in the commit) up to ``hub.regular_upload_max``, 'lfs' above it (the
        client then uploads through the LFS batch API and commits an ``lfsFile`` line). Empty files
        are always regular. huggingface_hub 2.4 sends 'lfs' files to Xet unless HF_HUB_DISABLE_XET=1."""
        if size > 0 and size > self.regular_upload_max:
            return "lfs"
        return "regular"

    async def preupload(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self.api_repo(request, m, AccessLevel.WRITE)
        try:
            body = await request.json()
            files = body["files"]
            if not isinstance(files, list):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise BadRequest('expected a JSON body {"files": [{"path", "size", "sample"}, ...]}')
        commit = self.reader.try_resolve(ctx.path, m.params["rev"])
        ignore_text = body.get("gitIgnore")
        if not isinstance(ignore_text, str) and commit is not None:
            entry = self.reader.entry(ctx.path, commit, ".gitignore")
            if entry is not None and entry.kind == "file" and entry.size < 1 << 20:
                ignore_text = self.reader.read_blob(ctx.path, entry.oid).decode("utf-8", "replace")
        ignore = GitIgnore(ignore_text) if isinstance(ignore_text, str) else None
        out = []
        for f in files:
            if not isinstance(f, dict) or not isinstance(f.get("path"), str):
                raise BadRequest("every file needs a path")
            path = f["path"]
            size = f.get("size", 0)
            size = size if isinstance(size, int) and size >= 0 else 0
            item: dict[str, Any] = {"path": path, "uploadMode": self.upload_mode(size),
                                    "shouldIgnore": bool(ignore and ignore.ignored(path.strip("/")))}
            if commit is not None:
                entry = self.reader.entry(ctx.path, commit, path.strip("/"))
                if entry is not None and entry.kind == "file":
                    held = entry.pointer is not None and self.view.held_size(ctx.repo.id, entry.pointer.oid)
                    item["oid"] = entry.pointer.oid if held and entry.pointer else entry.oid
            out.append(item)
        return json_response({"files": out, "commitOid": commit})

    # -- commit ------------------------------------------------------------------------------------
    async def commit(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self.api_repo(request, m, AccessLevel.WRITE)
        rev = m.params["rev"]
        if SHA_RE.match(rev):
            raise BadRequest("commits go to a branch, not to a commit sha")
        create_pr = bool_param(request, "create_pr")
        header: dict[str, Any] | None = None
        ops: list[Op] = []
        max_line = self.max_inline_file * 4 // 3 + 64 * 1024
        async for line in ndjson_lines(request.content, max_line):
            try:
                item = json.loads(line)
                key, value = item["key"], item["value"]
                if not isinstance(value, dict):
                    raise TypeError
            except (ValueError, KeyError, TypeError):
                raise BadRequest('each commit line must be a JSON object {"key": ..., "value": {...}}')
            if header is None:
                if key != "header":
                    raise BadRequest("the first commit line must be the header")
                header = value
                continue
            ops.append(await self._op(ctx, key, value))
        if header is None:
            raise BadRequest("empty commit request")
        summary = header.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            raise BadRequest("the commit summary must be a non-empty string")
        description = header.get("description") or ""
        message = summary.strip() + ("\n\n" + str(description).strip() if str(description).strip() else "") + "\n"
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
                oid = await self.writer.commit(info, ref, ops, author=author, message=message,
                                               parent_commit=parent, may_create=True, start_point=base)
            except BaseException:
                self.prs.discussions.set_status(ctx.repo.id, pr.num, "closed")
                raise
            pr_url = f"{self.repo_url(request, ctx.repo)}/discussions/{pr.num}"
        else:
            ref = ref_for(rev)
            empty = not self.reader.refs(ctx.path, "refs/heads/")
            oid = await self.writer.commit(info, ref, ops, author=author, message=message, parent_commit=parent,
                                           may_create=empty and ref.startswith("refs/heads/"))
            # The hook chain's bookkeeping touched the repository and, if it was empty, made
            # this first branch its HEAD, as after a first push.
        return json_response({"success": True, "commitOid": oid,
                              "commitUrl": f"{self.repo_url(request, ctx.repo)}/commit/{oid}",
                              "commitMessage": message.strip(), "hookOutput": "",
                              "pullRequestUrl": pr_url})

    async def _op(self, ctx: RepoCtx, key: str, value: dict[str, Any]) -> Op:
        if key == "file":
            path = check_path(value.get("path"))
            content = value.get("content", "")
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
                raise BadRequest(f"file {path}: unknown encoding {encoding!r}")
            if len(data) > self.max_inline_file:
                raise PayloadTooLarge(f"file {path} is larger than {self.max_inline_file} bytes")
            return AddFile(path, await self.writer.write_blob(ctx.path, data))
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
            return AddFile(path, await self.writer.write_blob(ctx.path, format_pointer(oid, held)))
        if key == "deletedFile":
            return DeleteFile(check_path(value.get("path")))
        if key == "deletedFolder":
            raw = value.get("path")
            if raw in ("/", ""):
                return DeleteFolder("")
            return DeleteFolder(check_path(raw))
        raise BadRequest(f"unknown commit operation {key!r}")


def _is_hex(text: str) -> bool:
    return 5 <= len(text) <= 40 and all(c in "0123456789abcdefABCDEF" for c in text)
