"""Freeing a repository's space, as the Hub offers it: ``super_squash_history`` (a branch
becomes one commit holding its current files) and ``list_lfs_files`` /
``permanently_delete_lfs_files`` (the Git LFS objects the repository holds, and letting go of
some: their content is no longer served from this repository, and ``gitd lfs gc`` deletes an
object no repository holds any more once its grace period is over). The Hub can also rewrite
history to drop the pointers (``rewriteHistory``); gitd refuses that by name rather than
ignoring it: squash the branches first, then delete without rewriting."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pygit2
from aiohttp import web

from gitd.access.rules import Access, AccessLevel
from gitd.errors import BadRequest, Conflict, Forbidden, PushRejected
from gitd.git.quarantine import ObjectQuarantine
from gitd.git.refname import check_revision
from gitd.git.refs import RefConflict
from gitd.git.runner import GitRunner
from gitd.hooks.chain import HookChain
from gitd.http.context import read_json
from gitd.http.routing import Match, Router
from gitd.hub.common import HubBase, RepoCtx, api_patterns, int_param, json_response, next_link
from gitd.hub.gitread import DEFAULT_WALK, RepoReader, ref_for
from gitd.plugins.events import RefUpdate
from gitd.repos import RepoService
from gitd.store import Store

MAX_MESSAGE = 64 * 1024
MAX_DELETIONS = 1000


class HubUpkeep(HubBase):
    def __init__(self, repos: RepoService, access: Access, reader: RepoReader, chain: HookChain, store: Store, *,
                 git: GitRunner | None, email_domain: str, **common: Any):
        super().__init__(repos, access, **common)
        self.reader = reader
        self.chain = chain
        self.store = store
        self.git = git
        self.email_domain = email_domain

    def add_routes(self, router: Router) -> None:
        router.add("POST", api_patterns("/super-squash/{rev}"), self.super_squash, style="hub",
                   name="hub-super-squash")
        router.add("GET", api_patterns("/lfs-files"), self.lfs_files, style="hub", name="hub-lfs-files")
        router.add("POST", api_patterns("/lfs-files/batch"), self.lfs_delete, style="hub", name="hub-lfs-files-batch")

    # -- super-squash ------------------------------------------------------------------------------
    async def super_squash(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self.api_repo(request, m, AccessLevel.WRITE)
        branch = check_revision(m.params["rev"])
        ref = ref_for(branch)
        if not ref.startswith("refs/heads/"):
            raise BadRequest(f"{branch!r} is not a branch: only a branch can be squashed", code="RevisionNotFound")
        head = self.reader.head(ctx.path, ref)
        if head is None:
            raise BadRequest(f"branch {branch!r} does not exist", code="RevisionNotFound")
        body = await read_json(request, offload=self.offload)
        message = body.get("message") or f"Super-squash branch '{branch}'"
        if not isinstance(message, str) or len(message) > MAX_MESSAGE:
            raise BadRequest(f"message must be text of at most {MAX_MESSAGE} characters")
        me = ctx.principal.name or "gitd"
        info = self.repos.info(ctx.repo)
        q = await asyncio.to_thread(ObjectQuarantine, info.path)
        try:
            def squash() -> str:
                repo = q.repository()
                tree = repo[head].peel(pygit2.Tree)
                sig = pygit2.Signature(me, f"{me}@{self.email_domain}", int(time.time()), 0)
                new = str(repo.create_commit(None, sig, sig, message, tree.id, []))
                if self.git is not None:
                    q.check(self.git)
                return new

            new = await asyncio.to_thread(squash)
            try:
                await self.chain.apply_updates(info, [RefUpdate(ref, head, new)], via="api", pusher=me, quarantine=q)
            except RefConflict:
                raise Conflict("the branch moved while squashing; try again")
            except PushRejected as exc:
                raise Forbidden(exc.message, code="PushRejected")
        finally:
            await asyncio.to_thread(q.discard)
        return json_response({"commitOid": new})

    # -- LFS files -----------------------------------------------------------------------------------
    def _names(self, ctx: RepoCtx) -> dict[str, str]:
        """A path in the default branch for each LFS object it points to (a bounded walk)."""
        head = self.reader.head(ctx.path, ref_for(ctx.repo.default_branch))
        if head is None:
            return {}
        walk = self.reader.walk(ctx.path, head, recursive=True, limit=DEFAULT_WALK, files_only=True)
        return {e.pointer.oid: e.path for e in walk.entries if e.pointer is not None}

    async def lfs_files(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self.api_repo(request, m, AccessLevel.WRITE)
        limit = int_param(request, "limit", 1000, lo=1, hi=1000)
        after = request.query.get("cursor", "")
        rows = self.store.db.execute(
            "SELECT r.oid, o.size, r.created_at FROM lfs_repo_objects r JOIN lfs_objects o ON o.oid = r.oid "
            "WHERE r.repo_id = ? AND r.oid > ? ORDER BY r.oid LIMIT ?", [ctx.repo.id, after[:64], limit + 1]).fetchall()
        names = await self.offload.run(self._names, ctx, what="naming LFS files") if rows else {}
        out = [{"fileOid": oid, "oid": oid, "size": size, "pushedAt": when, "filename": names.get(oid, ""),
                "ref": None} for oid, size, when in rows[:limit]]
        headers = {"Link": next_link(self.base(request), request, cursor=rows[limit - 1][0])} \
            if len(rows) > limit else None
        return json_response(out, headers=headers)

    async def lfs_delete(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self.api_repo(request, m, AccessLevel.WRITE)
        body = await read_json(request, allow_empty=False, offload=self.offload)
        deletions = body.get("deletions")
        shas = deletions.get("sha") if isinstance(deletions, dict) else None
        if not isinstance(shas, list) or not all(isinstance(s, str) and len(s) == 64 for s in shas) \
                or len(shas) > MAX_DELETIONS:
            raise BadRequest(f'expected JSON {{"deletions": {{"sha": [up to {MAX_DELETIONS} LFS oids], '
                             '"rewriteHistory": false}}')
        if deletions.get("rewriteHistory", True):
            raise BadRequest("rewriting history to drop the LFS pointers is not supported by this server; squash "
                             "the branches (super_squash_history) and call again with rewrite_history=False",
                             code="RewriteHistoryNotSupported")
        with self.store.transaction() as db:
            for sha in shas:
                db.execute("DELETE FROM lfs_repo_objects WHERE repo_id = ? AND oid = ?", [ctx.repo.id, sha.lower()])
        return json_response({})
