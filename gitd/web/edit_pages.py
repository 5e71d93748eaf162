"""Changing a repository from the browser, as real commits through the hook chain: uploading
files (Git LFS for big ones), editing or creating a text file."""

from __future__ import annotations

import asyncio
import posixpath
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from gitd.access.rules import AccessLevel
from gitd.errors import BadRequest, NotFound
from gitd.http.routing import Match, Router
from gitd.hub.commits import AddFile, CommitWriter, DeleteFile, Op, check_path
from gitd.hub.gitread import RevisionNotFound, ref_for
from gitd.lfs.service import LfsService
from gitd.web.blobs import decode
from gitd.web.core import RepoPage, WebCore, page_handler
from gitd.web.highlight import is_binary
from gitd.web.repo_pages import rev_url
from gitd.web.uploads import (
    cleanup,
    file_chunks,
    file_chunks_async,
    pointer_for,
    read_upload_form,
    with_lfs_attributes,
)


class EditPages:
    def __init__(self, core: WebCore, writer: CommitWriter, lfs: LfsService, tmp: Path, *, max_object_size: int = 0):
        self.core = core
        self.writer = writer
        self.lfs = lfs
        self.tmp = tmp
        self.max_object_size = max_object_size

    def add_routes(self, router: Router) -> None:
        router.add(("GET", "POST"), "/{repo}/upload/{rev}", self.upload, name="web-upload")
        router.add(("GET", "POST"), "/{repo}/edit/{rev}/{path*}", self.edit, name="web-edit")
        router.add(("GET", "POST"), "/{repo}/new/{rev}", self.edit, name="web-new-file")

    def _base(self, request: web.Request, page: RepoPage, **values: Any) -> dict[str, Any]:
        return {"page": page, "repo": page.repo, "tabs": self.core.repo_tabs(request, page, "files"), **values}

    def _branch(self, page: RepoPage, rev: str) -> str:
        """``rev`` as a branch that commits may go to (an empty repository's default branch too)."""
        head = self.core.reader.head(page.path, ref_for(rev))
        if head is None and not (rev == page.repo.default_branch and
                                 not self.core.reader.refs(page.path, "refs/heads/")):
            raise RevisionNotFound(f"{rev[:100]!r} is not a branch of {page.repo.full_name}: "
                                   "commits go to a branch")
        return rev

    async def _commit(self, page: RepoPage, rev: str, ops: list[Op], message: str, q) -> str:
        author = page.principal.name or "anonymous"
        return await self.writer.commit_to_branch(q, page.info, rev, ops, author=author,
                                                  message=message.strip().replace("\r\n", "\n") + "\n")

    # -- upload ----------------------------------------------------------------------------------
    @page_handler
    async def upload(self, request: web.Request, m: Match) -> web.StreamResponse:
        page = self.core.repo(request, m, AccessLevel.WRITE)
        rev = self._branch(page, m.params["rev"])
        if request.method == "GET":
            directory = request.query.get("dir", "").strip("/")
            return await self.core.page(request, "repo/upload.html",
                                        lambda: self._base(request, page, rev=rev, directory=directory,
                                                           lfs_over=self.core.settings.regular_upload_max))
        if not request.content_type.startswith("multipart/"):
            raise BadRequest("expected a multipart form")
        self.tmp.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="web-upload-", dir=self.tmp))
        try:
            form = await read_upload_form(await request.multipart(), request, self.core.sessions, work,
                                          max_files=self.core.settings.max_upload_files,
                                          max_size=self.max_object_size)
            if not form.files:
                raise BadRequest("choose at least one file to upload")
            directory = form.fields.get("dir", "").strip().strip("/")
            message = form.fields.get("message", "").strip() or (
                f"Upload {posixpath.basename(form.files[0].name)}" if len(form.files) == 1
                else f"Upload {len(form.files)} files")
            async with self.writer.quarantine(page.path) as q:
                ops: list[Op] = []
                lfs_paths: list[str] = []
                for f in form.files:
                    path = check_path(posixpath.join(directory, f.name) if directory else f.name)
                    if f.size > self.core.settings.regular_upload_max:
                        await self.lfs.receive(page.repo.id, f.sha256, f.size, file_chunks_async(f.file))
                        blob = await self.writer.write_blob(q, pointer_for(f))
                        lfs_paths.append(path)
                    else:
                        blob = await asyncio.to_thread(q.write_blob_chunks, f.size, file_chunks(f.file))
                    ops.append(AddFile(path, blob))
                if lfs_paths:
                    ops += await self._attributes(page, rev, lfs_paths, q)
                commit = await self._commit(page, rev, ops, message, q)
        finally:
            await asyncio.to_thread(cleanup, work)
        raise web.HTTPSeeOther(f"{page.url}/commit/{commit}")

    async def _attributes(self, page: RepoPage, rev: str, paths: list[str], q) -> list[Op]:
        reader = self.core.reader
        head = reader.head(page.path, ref_for(rev))
        current = ""
        if head is not None:
            entry = reader.entry(page.path, head, ".gitattributes")
            if entry is not None and entry.kind == "file" and entry.size <= 1024 * 1024:
                current = decode(reader.read_blob(page.path, entry.oid), cut=False)
        updated = with_lfs_attributes(current, paths)
        if updated is None:
            return []
        return [AddFile(".gitattributes", await self.writer.write_blob(q, updated.encode()))]

    # -- edit or create a text file --------------------------------------------------------------
    @page_handler
    async def edit(self, request: web.Request, m: Match) -> web.StreamResponse:
        page = self.core.repo(request, m, AccessLevel.WRITE)
        rev = self._branch(page, m.params["rev"])
        original = m.params.get("path", "").strip("/")
        settings = self.core.settings
        reader = self.core.reader
        head = reader.head(page.path, ref_for(rev))
        content, crlf = "", False
        if original:
            entry = reader.entry(page.path, head, original) if head is not None else None
            if entry is None or entry.kind != "file":
                raise NotFound(f"no file {original[:200]!r} on {rev[:100]!r}")
            if entry.pointer is not None or entry.size > settings.max_edit:
                raise BadRequest("this file is stored with Git LFS or too large to edit in the browser")
            data = await asyncio.to_thread(reader.read_blob, page.path, entry.oid)
            if is_binary(data):
                raise BadRequest("binary files cannot be edited in the browser")
            content = decode(data, cut=False)
            crlf = "\r\n" in content
        if request.method == "GET":
            path = original or request.query.get("path", "")
            return await self.core.page(request, "repo/edit.html", lambda: self._base(
                request, page, rev=rev, original=original, path=path, content=content, message=""))
        form = await self.core.form(request, limit=3 * settings.max_edit + 64 * 1024)
        path = check_path(form.get("path", "").strip().strip("/") or original)
        text = form.get("content", "")
        if not crlf:
            text = text.replace("\r\n", "\n")  # browsers send a textarea's lines with CRLF
        data = text.encode()
        if len(data) > settings.max_edit:
            raise BadRequest("the file is too large to edit in the browser; push it with git")
        if not original and head is not None and reader.entry(page.path, head, path) is not None:
            raise BadRequest(f"{path} already exists; edit it instead")
        verb = "Update" if original else "Create"
        message = form.get("message", "").strip() or f"{verb} {path}"
        async with self.writer.quarantine(page.path) as q:
            ops: list[Op] = [AddFile(path, await self.writer.write_blob(q, data))]
            if original and path != original:
                ops.insert(0, DeleteFile(original))
            await self._commit(page, rev, ops, message, q)
        raise web.HTTPSeeOther(f"{page.url}/blob/{rev_url(rev)}/{quote(path)}")
