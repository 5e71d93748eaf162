"""Minimal discussions and pull requests: PR N is the ref refs/pr/N, as on the Hub."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gitd.access.rules import Access, AccessLevel
from gitd.errors import BadRequest, NotFound
from gitd.hooks.chain import HookChain
from gitd.http.context import read_json
from gitd.http.offload import Offload
from gitd.http.routing import Match, Router
from gitd.hub.common import HubBase, RepoCtx, api_patterns, int_param, json_response
from gitd.hub.gitread import RepoReader, ref_for
from gitd.plugins.events import ZERO_OID, RefUpdate
from gitd.repos import RepoService
from gitd.store.discussions import Discussion, Discussions
from gitd.store.redirects import Redirects

PAGE = 50


class PullRequests(HubBase):
    def __init__(self, repos: RepoService, access: Access, discussions: Discussions, reader: RepoReader,
                 chain: HookChain, *, public_url: str = "",
                 redirects: Redirects | None = None, offload: Offload | None = None):
        super().__init__(repos, access, public_url=public_url, redirects=redirects,
                         offload=offload)
        self.discussions = discussions
        self.reader = reader
        self.chain = chain

    def add_routes(self, router: Router) -> None:
        router.add("GET", api_patterns("/discussions"), self.list, style="hub", name="hub-discussions")
        router.add("POST", api_patterns("/discussions"), self.create, style="hub", name="hub-discussion-create")
        router.add("GET", api_patterns("/discussions/{num}"), self.details, style="hub", name="hub-discussion")

    async def open(self, ctx: RepoCtx, title: str, description: str, *, base: str, start_point: str | None,
                   create_ref: bool) -> Discussion:
        """A new pull request; with ``create_ref`` its ref starts at ``start_point``."""
        author_id = ctx.principal.account.id if ctx.principal.account else None
        pr = self.discussions.create(ctx.repo.id, title, description, author_id, pull_request=True)
        if create_ref and start_point is not None:
            await self.chain.apply_updates(self.repos.info(ctx.repo),
                                           [RefUpdate(f"refs/pr/{pr.num}", ZERO_OID, start_point)], via="api",
                                           pusher=ctx.principal.name)
        return pr

    def _json(self, ctx: RepoCtx, d: Discussion) -> dict[str, Any]:
        return {
            "num": d.num, "title": d.title, "status": d.status, "createdAt": d.created_at,
            "isPullRequest": d.is_pull_request, "pinned": False, "numComments": 1,
            "author": {"name": d.author or "deleted", "type": "user"},
            "repo": {"name": ctx.repo.full_name, "type": ctx.repo.type},
        }

    async def list(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self.api_repo(request, m)
        items = self.discussions.list(ctx.repo.id)
        status = request.query.get("status")
        if status in ("open", "closed"):
            items = [d for d in items if (d.status == "open") == (status == "open")]
        kind = request.query.get("type")
        if kind in ("discussion", "pull_request"):
            items = [d for d in items if d.is_pull_request == (kind == "pull_request")]
        if request.query.get("author"):
            items = [d for d in items if d.author == request.query["author"]]
        page = int_param(request, "p", 0)
        chunk = items[page * PAGE:(page + 1) * PAGE]
        return json_response({"discussions": [self._json(ctx, d) for d in chunk], "count": len(items),
                              "start": page * PAGE, "numClosedDiscussions": sum(d.status != "open" for d in items)})

    async def create(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self.api_repo(request, m, AccessLevel.WRITE)
        body = await read_json(request, offload=self.offload)
        try:
            title = body["title"]
            description = body.get("description") or ""
            pull_request = bool(body.get("pullRequest", False))
        except (ValueError, KeyError, AttributeError):
            raise BadRequest('expected JSON {"title", "description", "pullRequest"}')
        if not isinstance(title, str) or not title.strip():
            raise BadRequest("a discussion needs a title")
        if pull_request:
            base = self.reader.resolve(ctx.path, ctx.repo.default_branch)
            d = await self.open(ctx, title.strip(), str(description), base=ctx.repo.default_branch,
                                start_point=base, create_ref=True)
        else:
            author_id = ctx.principal.account.id if ctx.principal.account else None
            d = self.discussions.create(ctx.repo.id, title.strip(), str(description), author_id, pull_request=False)
        return json_response({**self._json(ctx, d), "url": f"{self.repo_url(request, ctx.repo)}/discussions/{d.num}"})

    async def details(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self.api_repo(request, m)
        try:
            num = int(m.params["num"])
        except ValueError:
            raise NotFound("no such discussion")
        d = self.discussions.get(ctx.repo.id, num)
        if d is None:
            raise NotFound(f"discussion {num} does not exist", code="EntryNotFound")
        out = self._json(ctx, d)
        out["events"] = [{
            "id": f"{d.id:024x}", "type": "comment", "createdAt": d.created_at,
            "author": {"name": d.author or "deleted"},
            "data": {"edited": False, "hidden": False,
                     "latest": {"raw": d.description, "html": "", "updatedAt": d.created_at,
                                "author": {"name": d.author or "deleted"}}},
        }]
        if d.is_pull_request:
            out["changes"] = {"base": ref_for(ctx.repo.default_branch)}
            out["filesWithConflicts"] = []
            head = self.reader.head(ctx.path, f"refs/pr/{d.num}")
            if head is not None:
                out["changes"]["headCommit"] = head
        return json_response(out)
