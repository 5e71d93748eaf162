"""Uploads: preupload (upload modes) and the NDJSON commit, including create_pr."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from typing import Any

from aiohttp import web

from gitd.access.rules import Access, AccessLevel
from gitd.errors import BadRequest, Forbidden
from gitd.git.quarantine import ObjectQuarantine
from gitd.git.refname import check_revision
from gitd.http.context import JSON_MAX, read_json
from gitd.http.offload import Offload, check_deadline
from gitd.http.routing import Match, Router
from gitd.hub.attributes import SAMPLE_SIZE, LfsAttributes, looks_binary
from gitd.hub.commit_request import (
    CommitHeader,
    CommitParser,
    InlineFile,
    LfsFile,
    ParsedOp,
    StreamedFile,
    ndjson_lines,
    store_file,
)
from gitd.hub.commits import MAX_PATH, AddFile, CommitWriter, Op
from gitd.hub.common import HubBase, RepoCtx, api_patterns, bool_param, dumps_in_pieces, json_response
from gitd.hub.discussions import PullRequests, participant
from gitd.hub.files import FileView
from gitd.hub.gitread import SHA_RE, RepoReader
from gitd.hub.ignore import GitIgnore
from gitd.hub.pr_uploads import OPEN, PullRequestUploads, pr_number
from gitd.lfs.pointer import format_pointer
from gitd.repos import RepoService
from gitd.store.redirects import Redirects

log = logging.getLogger("gitd.hub")

# Largest .gitignore read from the repository for preupload's shouldIgnore, and .gitattributes
# for its upload modes.
IGNORE_MAX = 64 * 1024
ATTRIBUTES_MAX = 64 * 1024


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
                 prs: PullRequests, view: FileView, planner: UploadPlanner, pr_uploads: PullRequestUploads, *,
                 max_inline_file: int,
                 public_url: str = "", redirects: Redirects | None = None, offload: Offload | None = None,
                 max_commit_size: int = 1 << 30, inline_decodes: int = 2):
        super().__init__(repos, access, public_url=public_url, redirects=redirects,
                         offload=offload)
        self.reader = reader
        self.writer = writer
        self.prs = prs
        self.view = view
        self.planner = planner
        self.pr_uploads = pr_uploads
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
    def _committer(self, request: web.Request, m: Match, rev: str, create_pr: bool) -> RepoCtx:
        """The repository, for a caller who may commit to ``rev``: its writers anywhere; any
        participant (gitd.hub.discussions) when opening a pull request or adding to their own."""
        ctx = self.api_repo(request, m)
        if ctx.level >= AccessLevel.WRITE:
            return ctx
        num = pr_number(rev)
        if not create_pr and num is None:
            self.access.require(ctx.principal, ctx.repo, AccessLevel.WRITE)
        participant(ctx)
        if num is not None:
            d = self.pr_uploads.pull_request(ctx.principal, ctx.repo, num)
            if d is None:
                raise Forbidden("only the pull request's author and the repository's writers can commit to it")
            if d.status not in OPEN:
                raise Forbidden(f"the pull request is {d.status}")
        return ctx

    async def preupload(self, request: web.Request, m: Match) -> web.StreamResponse:
        create_pr = bool_param(request, "create_pr")
        ctx = self._committer(request, m, m.params["rev"], create_pr)
        body = await read_json(request, allow_empty=False, offload=self.offload, max_size=2 * JSON_MAX)
        files = body.get("files")
        if not isinstance(files, list):
            raise BadRequest('expected a JSON body {"files": [{"path", "size", "sample"}, ...]}')
        commit = self.reader.try_resolve(ctx.path, check_revision(m.params["rev"]))
        # The gitignore patterns are client data (the body's or the repository's): off the loop.
        plans = await self.offload.run(self.planner.plan, ctx, commit, files, body.get("gitIgnore"),
                                       what="preupload")
        out = [{k: v for k, v in plan.items() if k != "isDir" and (k != "oid" or v)} for plan in plans]
        if create_pr and ctx.level < AccessLevel.WRITE:  # a reader's new pull request may carry these LFS files
            self.pr_uploads.announce(ctx.principal, ctx.repo, (f["size"] for f, plan in zip(files, plans, strict=True)
                                                               if plan["uploadMode"] == "lfs"))
        return web.Response(text=dumps_in_pieces({"files": out, "commitOid": commit}), content_type="application/json")

    # -- commit ------------------------------------------------------------------------------------
    async def commit(self, request: web.Request, m: Match) -> web.StreamResponse:
        rev = check_revision(m.params["rev"])
        if SHA_RE.match(rev):
            raise BadRequest("commits go to a branch, not to a commit sha")
        create_pr = bool_param(request, "create_pr")
        ctx = self._committer(request, m, rev, create_pr)
        # The objects of the commit wait in a quarantine: a refused commit leaves nothing behind.
        async with self.writer.quarantine(ctx.path) as q:
            head, ops = await self._read_ops(request, ctx, q)
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
                    oid = await self.writer.commit(q, info, ref, ops, author=author, message=message,
                                                   parent_commit=parent, may_create=True, start_point=base)
                except BaseException:
                    self.prs.discussions.set_status(ctx.repo.id, pr.num, "closed")
                    raise
                pr_url = f"{self.repo_url(request, ctx.repo)}/discussions/{pr.num}"
                await self.prs.notify(ctx, pr, "create")
            else:
                oid = await self.writer.commit_to_branch(q, info, rev, ops, author=author, message=message,
                                                         parent_commit=parent)
        return json_response({"success": True, "commitOid": oid,
                              "commitUrl": f"{self.repo_url(request, ctx.repo)}/commit/{oid}",
                              "commitMessage": message.strip(), "hookOutput": "",
                              "pullRequestUrl": pr_url})

    async def _read_ops(self, request: web.Request, ctx: RepoCtx, q: ObjectQuarantine
                        ) -> tuple[CommitHeader, list[Op]]:
        """The header and the operations of an NDJSON commit body, streamed (gitd.hub.commit_request):
        big lines are parsed on a thread, one of ``hub.inline_decodes`` at a time, and their content
        decoded straight into a blob in the quarantine."""
        parser = CommitParser(max_inline_file=self.max_inline_file)
        ops: list[Op] = []
        async with contextlib.aclosing(ndjson_lines(request.content, parser.max_line, self.max_commit_size,
                                                    self.turns)) as lines:
            async for box in lines:
                op: ParsedOp | AddFile | None
                if parser.is_big(box):
                    op = await asyncio.to_thread(self._big_line, parser, q, box)
                else:
                    op = parser.line(box)
                if op is not None:
                    ops.append(await self._op(ctx, q, op))
        return parser.finish(), ops

    @staticmethod
    def _big_line(parser: CommitParser, q: ObjectQuarantine, box: list[bytearray]) -> ParsedOp | AddFile | None:
        """A big commit line (on a thread): the header, or a file, whose blob is written here."""
        op = parser.line(box)
        if isinstance(op, (InlineFile, StreamedFile)):
            return store_file(q, op)
        return op

    async def _op(self, ctx: RepoCtx, q: ObjectQuarantine, op: ParsedOp | AddFile) -> Op:
        """Carry out one parsed operation: write its blob, or check the LFS object it names."""
        if isinstance(op, (InlineFile, StreamedFile)):
            return await asyncio.to_thread(store_file, q, op)
        if isinstance(op, LfsFile):
            held = self.view.held_size(ctx.repo.id, op.oid)
            if held is None:
                raise BadRequest(f"lfsFile {op.path:.200}: this repository holds no LFS object {op.oid}; upload it "
                                 "first through the repository's Git LFS batch API (huggingface_hub does so with "
                                 "HF_HUB_DISABLE_XET=1)",
                                 code="LfsObjectNotFound")
            if op.size is not None and op.size != held:
                raise BadRequest(f"lfsFile {op.path:.200}: size {op.size!s:.40} does not match the stored LFS "
                                 f"object {op.oid} ({held} bytes)", code="LfsSizeMismatch")
            return AddFile(op.path, await self.writer.write_blob(q, format_pointer(op.oid, held)))
        return op  # AddFile (written already), DeleteFile, DeleteFolder
