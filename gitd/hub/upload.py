"""Uploads: preupload (upload modes) and the NDJSON commit, including create_pr."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gitd.access.rules import Access, AccessLevel
from gitd.errors import BadRequest
from gitd.http.routing import Match, Router
from gitd.hub.commit_request import CommitParser, InlineFile, LfsFile, ParsedOp, ndjson_lines
from gitd.hub.commits import AddFile, CommitWriter, Op
from gitd.hub.common import HubBase, RepoCtx, api_patterns, bool_param, json_response
from gitd.hub.discussions import PullRequests
from gitd.hub.gitread import SHA_RE, RepoReader, ref_for
from gitd.hub.ignore import GitIgnore
from gitd.hub.lfscontent import LfsContent
from gitd.lfs.pointer import format_pointer
from gitd.repos import RepoService
from gitd.store.redirects import Redirects


class HubUploads(HubBase):
    def __init__(self, repos: RepoService, access: Access, reader: RepoReader, writer: CommitWriter,
                 prs: PullRequests, lfs: LfsContent, *, regular_upload_max: int, max_inline_file: int,
                 lfs_uploads: bool = False, public_url: str = "",
                 redirects: Redirects | None = None):
        super().__init__(repos, access, public_url=public_url, redirects=redirects)
        self.reader = reader
        self.writer = writer
        self.prs = prs
        self.lfs = lfs
        self.regular_upload_max = regular_upload_max
        self.max_inline_file = max_inline_file
        self.lfs_uploads = lfs_uploads

    def add_routes(self, router: Router) -> None:
        router.add("POST", api_patterns("/preupload/{rev}"), self.preupload, style="hub", name="hub-preupload")
        router.add("POST", api_patterns("/commit/{rev}"), self.commit, style="hub", name="hub-commit")

    # -- preupload -------------------------------------------------------------------------------
    def upload_mode(self, size: int) -> str:
        """'regular' (inline in the commit) up to ``hub.regular_upload_max``, 'lfs' above it (the
        client then uploads through the LFS batch API and commits an ``lfsFile`` line). Empty files
        are always regular. huggingface_hub 2.4 sends 'lfs' files to Xet unless HF_HUB_DISABLE_XET=1."""
        if self.lfs_uploads and size > 0 and size > self.regular_upload_max:
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
                    held = entry.pointer is not None and self.lfs.stored_size(ctx.repo.id, entry.pointer.oid)
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
        parser = CommitParser(max_inline_file=self.max_inline_file)
        ops: list[Op] = []
        async for line in ndjson_lines(request.content, parser.max_line):
            op = parser.line(line)
            if op is not None:
                ops.append(await self._op(ctx, op))
        head = parser.finish()
        message, parent = head.message, head.parent
        author = ctx.principal.name or "anonymous"
        info = self.repos.info(ctx.repo)
        pr_url = None
        if create_pr:
            base = self.reader.resolve(ctx.path, rev)
            pr = await self.prs.open(ctx, head.summary, head.description, base=rev, start_point=base,
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

    async def _op(self, ctx: RepoCtx, op: ParsedOp) -> Op:
        """Carry out one parsed operation: write its blob, or check the LFS object it names."""
        if isinstance(op, InlineFile):
            return AddFile(op.path, await self.writer.write_blob(ctx.path, op.data))
        if isinstance(op, LfsFile):
            held = self.lfs.stored_size(ctx.repo.id, op.oid)
            if held is None:
                raise BadRequest(f"lfsFile {op.path:.200}: this repository holds no LFS object {op.oid}; upload it "
                                 "first through the repository's Git LFS batch API (huggingface_hub does so with "
                                 "HF_HUB_DISABLE_XET=1)",
                                 code="LfsObjectNotFound")
            if op.size is not None and op.size != held:
                raise BadRequest(f"lfsFile {op.path:.200}: size {op.size!s:.40} does not match the stored LFS object "
                                 f"{op.oid} ({held} bytes)", code="LfsSizeMismatch")
            return AddFile(op.path, await self.writer.write_blob(ctx.path, format_pointer(op.oid, held)))
        return op  # DeleteFile, DeleteFolder: nothing to do before the commit
