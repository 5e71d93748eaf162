"""Likes as the Hub serves them: like (``POST .../like``; huggingface_hub 2.4 has no call for it
any more), ``unlike``, ``list_liked_repos`` (``/api/users/{user}/likes``) and
``list_repo_likers`` (``.../likers``). Liking needs read access; a like list shows each viewer
only the repositories that viewer may read."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gitd.access.rules import Access, AccessLevel
from gitd.errors import Forbidden, NotFound, Unauthorized
from gitd.http.context import principal
from gitd.http.routing import Match, Router
from gitd.hub.common import HubBase, RepoCtx, api_patterns, json_response
from gitd.names import is_valid_name
from gitd.repos import RepoService
from gitd.store import Accounts, Repos
from gitd.store.likes import Likes


class HubLikes(HubBase):
    shows_gated = True  # a gated repository's likes are public, as its info is

    def __init__(self, repos: RepoService, access: Access, accounts: Accounts, repo_rows: Repos, likes: Likes,
                 **common: Any):
        super().__init__(repos, access, **common)
        self.accounts = accounts
        self.repo_rows = repo_rows
        self.likes = likes

    def add_routes(self, router: Router) -> None:
        router.add("POST", api_patterns("/like"), self.like, style="hub", name="hub-like")
        router.add("DELETE", api_patterns("/like"), self.unlike, style="hub", name="hub-unlike")
        router.add("GET", api_patterns("/likers"), self.likers, style="hub", name="hub-likers")
        router.add("GET", "/api/users/{user}/likes", self.liked, style="hub", name="hub-user-likes")

    def _liker(self, request: web.Request, m: Match) -> RepoCtx:
        ctx = self.api_repo(request, m)
        if ctx.principal.account is None:
            raise Unauthorized("sign in to like a repository")
        if ctx.principal.cap < AccessLevel.WRITE:
            raise Forbidden("this token is read-only: liking needs a write token")
        return ctx

    async def like(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self._liker(request, m)
        assert ctx.principal.account is not None
        self.likes.like(ctx.repo.id, ctx.principal.account.id)
        return json_response({"likes": self.likes.count(ctx.repo.id)})

    async def unlike(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self._liker(request, m)
        assert ctx.principal.account is not None
        self.likes.unlike(ctx.repo.id, ctx.principal.account.id)
        return json_response({"likes": self.likes.count(ctx.repo.id)})

    async def likers(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self.api_repo(request, m)
        return json_response([{"user": name, "fullname": name, "avatarUrl": "", "type": "user"}
                              for name in self.likes.likers(ctx.repo.id)])

    async def liked(self, request: web.Request, m: Match) -> web.StreamResponse:
        name = m.params["user"]
        account = self.accounts.find(name) if is_valid_name(name) else None
        if account is None or account.kind != "user":
            raise NotFound(f"no user {name[:100]!r}", code="UserNotFound")
        who = principal(request)
        out = []
        for repo_id, when in self.likes.liked(account.id):
            repo = self.repo_rows.by_id(repo_id)
            if repo is None or self.access.level(who, repo, gate=False) < AccessLevel.READ:
                continue
            out.append({"createdAt": when, "repo": {"name": repo.full_name, "type": repo.type}})
        return json_response(out)
