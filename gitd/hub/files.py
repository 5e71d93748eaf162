"""Files: resolve (GET/HEAD with Range), tree listings and paths-info."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from gitd.access.rules import Access, AccessLevel
from gitd.errors import BadRequest, GitdError
from gitd.git.env import git_env
from gitd.git.process import GitProcess
from gitd.http.context import JSON_MAX, read_json, read_limited
from gitd.http.errors import error_response
from gitd.http.offload import Offload, check_deadline
from gitd.http.routing import Match, Router
from gitd.http.sendfile import send_local
from gitd.hub.commits import MAX_PATH
from gitd.hub.common import HubBase, RepoCtx, api_patterns, bool_param, dumps, dumps_in_pieces, json_response, next_link
from gitd.hub.gitread import Entry, EntryNotFound, RepoReader, iso
from gitd.lfs.service import LfsService
from gitd.repos import RepoService
from gitd.store.redirects import Redirects

TREE_PAGE = 1000
TREE_PAGE_EXPAND = 50
IN_MEMORY_BLOB = 8 * 1024 * 1024
CHUNK = 256 * 1024
FORM_MAX = 16 * 1024 * 1024
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _parse_form(raw: bytes, max_paths: int) -> list[tuple[str, str]]:
    try:
        return parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=max_paths + 8)
    except ValueError:
        raise BadRequest(f"paths-info takes at most {max_paths} paths at a time; ask in several requests")


class RangeNotSatisfiable(GitdError):
    status = 416
    code = "RangeNotSatisfiable"


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end exclusive) of a single-range ``Range`` header; None to send everything."""
    if not header:
        return None
    m = _RANGE_RE.match(header.strip().replace(" ", ""))
    if m is None:
        return None  # multiple ranges or another unit: ignore it, as RFC 9110 allows
    first, last = m.group(1), m.group(2)
    if first == "" and last == "":
        return None
    if first == "":
        n = int(last)
        if n == 0:
            raise RangeNotSatisfiable("requested range not satisfiable")
        return max(0, size - n), size
    start = int(first)
    end = size if last == "" else min(size, int(last) + 1)
    if start >= size or end <= start:
        raise RangeNotSatisfiable("requested range not satisfiable")
    return start, end


class FileView:
    """How the Hub shows one tree entry: size, etag and lfs metadata. A Git LFS pointer whose
    object the repository holds is shown, sized and streamed as the file it stands for; any
    other pointer is served as the small text file it is, consistently in info, tree and
    resolve."""

    def __init__(self, lfs: LfsService, *, url_ttl: int = 3600):
        self.lfs = lfs
        self.url_ttl = url_ttl

    def held_size(self, repo_id: int, oid: str) -> int | None:
        """The size of LFS object ``oid`` if the repository holds it, else None."""
        return self.lfs.size(repo_id, oid)

    def lfs_size(self, repo_id: int, entry: Entry) -> int | None:
        if entry.pointer is None:
            return None
        return self.held_size(repo_id, entry.pointer.oid)

    def download_url(self, repo_id: int, oid: str) -> str | None:
        """A presigned URL on storage clients can reach (resolve redirects there), or None."""
        return self.lfs.download_url(repo_id, oid, self.url_ttl)

    def local_path(self, repo_id: int, oid: str) -> Path | None:
        """The local file of a held object (resolve sends it with sendfile), or None."""
        return self.lfs.local_path(repo_id, oid)

    async def open(self, repo_id: int, oid: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes ``start`` to ``end`` (exclusive) of a held object, streamed."""
        reader = await self.lfs.open(repo_id, oid, start, end)
        try:
            async for chunk in reader:
                yield chunk
        finally:
            await reader.aclose()

    def tree_json(self, repo_id: int, entry: Entry) -> dict[str, Any]:
        if entry.kind == "directory":
            return {"type": "directory", "oid": entry.oid, "size": 0, "path": entry.path}
        out: dict[str, Any] = {"type": "file", "oid": entry.oid, "size": entry.size, "path": entry.path}
        held = self.lfs_size(repo_id, entry)
        if held is not None and entry.pointer is not None:
            out["size"] = held
            out["lfs"] = {"oid": entry.pointer.oid, "size": held, "pointerSize": entry.size}
        return out

    def sibling_json(self, repo_id: int, entry: Entry) -> dict[str, Any]:
        out: dict[str, Any] = {"rfilename": entry.path, "blobId": entry.oid, "size": entry.size}
        held = self.lfs_size(repo_id, entry)
        if held is not None and entry.pointer is not None:
            out["size"] = held
            out["lfs"] = {"sha256": entry.pointer.oid, "size": held, "pointerSize": entry.size}
        return out


class HubFiles(HubBase):
    def __init__(self, repos: RepoService, access: Access, reader: RepoReader, view: FileView, *,
                 public_url: str = "",
                 redirects: Redirects | None = None, offload: Offload | None = None,
                 max_paths: int = 10_000):
        super().__init__(repos, access, public_url=public_url, redirects=redirects,
                         offload=offload)
        self.reader = reader
        self.view = view
        self.max_paths = max_paths

    def add_resolve_route(self, router: Router) -> None:
        """The hot path (every download starts with HEAD /resolve): registered first of all."""
        router.add("GET", "/{repo}/resolve/{rev}/{path*}", self.resolve, style="hub", name="hub-resolve")

    def add_routes(self, router: Router) -> None:
        router.add("GET", api_patterns("/resolve/{rev}/{path*}"), self.resolve_api, style="hub",
                   name="hub-api-resolve")
        router.add("GET", api_patterns("/tree/{rev}/{path*}"), self.tree, style="hub", name="hub-tree")
        router.add("POST", api_patterns("/paths-info/{rev}"), self.paths_info, style="hub", name="hub-paths-info")

    # -- resolve ---------------------------------------------------------------------------------
    async def resolve(self, request: web.Request, m: Match) -> web.StreamResponse:
        return await self._resolve(request, self.web_repo(request, m), m.params["rev"], m.params["path"])

    async def resolve_api(self, request: web.Request, m: Match) -> web.StreamResponse:
        return await self._resolve(request, self.api_repo(request, m), m.params["rev"], m.params["path"])

    async def _resolve(self, request: web.Request, ctx: RepoCtx, rev: str, file_path: str) -> web.StreamResponse:
        commit = self.reader.resolve(ctx.path, rev)
        entry = self.reader.entry(ctx.path, commit, file_path) if file_path else None
        if entry is None or entry.kind != "file":
            exc = EntryNotFound(f"{file_path} does not exist on {rev!r}", commit=commit)
            response = error_response(exc, "hub")
            response.headers["X-Repo-Commit"] = commit
            return response
        held = self.view.lfs_size(ctx.repo.id, entry)
        size = held if held is not None else entry.size
        etag = entry.pointer.oid if held is not None and entry.pointer is not None else entry.oid
        headers = {
            "X-Repo-Commit": commit,
            "ETag": f'"{etag}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f'inline; filename="{os.path.basename(file_path)}";'.replace("\n", ""),
            "Cache-Control": "private, max-age=0, must-revalidate" if ctx.repo.private
            else "public, max-age=0, must-revalidate",
        }
        if held is not None and entry.pointer is not None:
            headers["X-Linked-Size"] = str(held)
            headers["X-Linked-Etag"] = f'"{etag}"'
            url = self.view.download_url(ctx.repo.id, entry.pointer.oid)
            if url is not None:
                # Storage serves the bytes. The client stops at this cross-origin redirect and
                # reads the file's metadata from it, then GETs the presigned URL without auth.
                headers["Location"] = url
                for name in ("Accept-Ranges", "Content-Type", "Content-Disposition"):
                    del headers[name]
                return web.Response(status=302, headers=headers)
        try:
            span = parse_range(request.headers.get("Range"), size)
        except RangeNotSatisfiable as exc:
            response = error_response(exc, "hub")
            response.headers.update({"Content-Range": f"bytes */{size}", "X-Repo-Commit": commit})
            return response
        start, end = span if span is not None else (0, size)
        response = web.StreamResponse(status=206 if span is not None else 200, headers=headers)
        if span is not None:
            response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        response.content_length = end - start
        if request.method == "HEAD":
            await response.prepare(request)
            await response.write_eof()
            return response
        if held is not None and entry.pointer is not None:
            path = self.view.local_path(ctx.repo.id, entry.pointer.oid)
            if path is not None and await send_local(request, response, path, start, end):
                return response
            await response.prepare(request)
            async for chunk in self.view.open(ctx.repo.id, entry.pointer.oid, start, end):
                await response.write(chunk)
        elif entry.size <= IN_MEMORY_BLOB:
            data = self.reader.read_blob(ctx.path, entry.oid) if entry.size <= CHUNK else \
                await asyncio.to_thread(self._read_fresh, ctx, entry.oid)
            await response.prepare(request)
            await response.write(data[start:end])
        else:
            await response.prepare(request)
            await self._stream_blob(ctx, entry.oid, start, end, response)
        await response.write_eof()
        return response

    def _read_fresh(self, ctx: RepoCtx, oid: str) -> bytes:
        return self.reader.read_blob(ctx.path, oid)

    async def _stream_blob(self, ctx: RepoCtx, oid: str, start: int, end: int,
                           response: web.StreamResponse) -> None:
        """Stream a big blob through ``git cat-file`` so it is never held in memory."""
        proc = await GitProcess.spawn(["git", "cat-file", "blob", oid], git_env(git_dir=ctx.path),
                                      stdin=False, limit=4 * CHUNK)
        pos = 0
        try:
            while pos < end and (chunks := await proc.read()):
                for chunk in chunks:
                    lo, hi = max(start - pos, 0), min(len(chunk), end - pos)
                    if lo < hi:
                        await response.write(chunk[lo:hi])
                    pos += len(chunk)
                    if pos >= end:
                        break
        finally:
            await proc.terminate(graceful=False)
            proc.close()

    # -- tree --------------------------------------------------------------------------------------
    async def tree(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self.api_repo(request, m, show_gated=True)  # a gated repository's file list is public, as on the Hub
        rev, under = m.params["rev"], m.params["path"].strip("/")
        if not under and self._unborn_default(ctx, rev):
            return json_response([])
        commit = self.reader.resolve(ctx.path, rev)
        if under:
            entry = self.reader.entry(ctx.path, commit, under)
            if entry is None or entry.kind != "directory":
                raise EntryNotFound(f"{under} is not a directory on {rev!r}", commit=commit)
        recursive = bool_param(request, "recursive")
        expand = bool_param(request, "expand")
        cursor = request.query.get("cursor") or None
        page = TREE_PAGE_EXPAND if expand else TREE_PAGE

        def listing() -> tuple[str, str | None]:
            # A page at a time: the walk resumes after the previous page's last entry and stops after
            # this page's, so no request walks more of a tree than it answers with (trees are client data).
            walk = self.reader.walk(ctx.path, commit, under, recursive=recursive, limit=page, after=cursor)
            out = [self.view.tree_json(ctx.repo.id, e) for e in walk.entries]
            if expand:
                self._expand(ctx, commit, out)
            return dumps(out), walk.resume if walk.more else None

        text, resume = await self.offload.run(listing, what="the tree listing")
        headers = {}
        if resume is not None:
            headers["Link"] = next_link(self.base(request), request, cursor=resume)
        return web.Response(text=text, content_type="application/json", headers=headers)

    def _unborn_default(self, ctx: RepoCtx, rev: str) -> bool:
        """An empty repository's default branch lists as empty (on the Hub a new repo is never empty)."""
        return rev in (ctx.repo.default_branch, f"refs/heads/{ctx.repo.default_branch}") and \
            self.reader.try_resolve(ctx.path, rev) is None and not self.reader.refs(ctx.path, "refs/heads/")

    def _expand(self, ctx: RepoCtx, commit: str, out: list[dict[str, Any]]) -> None:
        last = self.reader.last_commits(ctx.path, commit, [e["path"] for e in out])
        for e in out:
            c = last.get(e["path"])
            if c is not None:
                e["lastCommit"] = {"id": str(c.id), "title": c.message.split("\n", 1)[0],
                                   "date": iso(c.commit_time)}

    # -- paths-info ----------------------------------------------------------------------------------
    async def paths_info(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self.api_repo(request, m, AccessLevel.READ, show_gated=True)  # names, sizes, oids: public when gated
        if request.content_type == "application/json":
            body = await read_json(request, offload=self.offload, max_size=2 * JSON_MAX)
            raw_paths, expand = body.get("paths", []), bool(body.get("expand", False))
            if not isinstance(raw_paths, list):
                raise BadRequest("expected a JSON object with a list of paths")
            paths = raw_paths
        else:  # a form, as huggingface_hub sends it: parsed off the loop, with a bound on its fields
            raw = await read_limited(request, FORM_MAX, "the paths-info form")
            fields = await self.offload.run(_parse_form, raw, self.max_paths, what="paths-info")
            paths = [v for k, v in fields if k == "paths"]
            expand = any(k == "expand" and v.lower() in ("1", "true") for k, v in fields)
        if len(paths) > self.max_paths:
            raise BadRequest(f"paths-info takes at most {self.max_paths} paths at a time; ask in several requests")
        if not all(isinstance(p, str) for p in paths):
            raise BadRequest("paths must be strings")
        if self._unborn_default(ctx, m.params["rev"]):
            return json_response([])
        commit = self.reader.resolve(ctx.path, m.params["rev"])

        def info() -> str:
            out = []
            seen = set()
            for n, p in enumerate(paths):
                if n % 256 == 0:
                    check_deadline()
                p = p.strip("/")
                if p in seen or len(p) > MAX_PATH:
                    continue
                seen.add(p)
                entry = self.reader.entry(ctx.path, commit, p) if p else None
                if entry is not None:
                    out.append(self.view.tree_json(ctx.repo.id, entry))
            if expand and out:
                self._expand(ctx, commit, out)
            return dumps_in_pieces(out)

        text = await self.offload.run(info, what="paths-info")
        return web.Response(text=text, content_type="application/json")
