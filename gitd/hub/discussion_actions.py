"""What may be done to a discussion or pull request through the Hub API, and by whom:

- comment: anyone taking part (signed in, may read the repository, a write-capable token);
- edit a comment: its author; hide a comment: its author or the repository's writers;
- close, reopen, rename: the discussion's author or the repository's writers;
- merge a pull request (its ref refs/pr/N into the default branch): the repository's writers.

Each answers with the event it added, as the Hub does (``newMessage``, ``updatedComment``,
``newStatus``, ``newTitle``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gitd.access.rules import AccessLevel
from gitd.errors import BadRequest, Forbidden, NotFound
from gitd.git.runner import GitRunner
from gitd.http.context import read_json
from gitd.http.routing import Match, Router
from gitd.hub.common import RepoCtx, api_patterns, json_response
from gitd.hub.discussions import (
    COMMENT,
    DESCRIPTION,
    MAX_TEXT,
    PullRequests,
    change_json,
    check_text,
    check_title,
    comment_json,
    description_json,
    parse_event_id,
    participant,
)
from gitd.hub.gitread import ref_for
from gitd.store.discussions import Discussion
from gitd.web.merge import merge_into


class DiscussionActions:
    def __init__(self, prs: PullRequests, *, git: GitRunner | None, email_domain: str):
        self.prs = prs
        self.git = git
        self.email_domain = email_domain

    def add_routes(self, router: Router) -> None:
        base = "/discussions/{num}"
        for tail, handler, name in (
            ("/comment", self.comment, "comment"),
            ("/comment/{cid}/edit", self.edit, "comment-edit"),
            ("/comment/{cid}/hide", self.hide, "comment-hide"),
            ("/status", self.status, "status"),
            ("/title", self.title, "title"),
            ("/merge", self.merge, "merge"),
        ):
            router.add("POST", api_patterns(base + tail), handler, style="hub", name=f"hub-discussion-{name}")

    async def _tell(self, ctx: RepoCtx, d: Discussion, action: str, comment: dict[str, Any] | None = None) -> None:
        await self.prs.notify(ctx, d, action, comment)

    async def _start(self, request: web.Request, m: Match, *, body: bool = True
                     ) -> tuple[RepoCtx, Discussion, dict[str, Any]]:
        ctx = self.prs.api_repo(request, m)
        participant(ctx)
        d = self.prs.discussion(ctx, m.params["num"])
        data: Any = {}
        if body:
            data = await read_json(request, offload=self.prs.offload)
            if not isinstance(data, dict):
                raise BadRequest("expected a JSON object")
        return ctx, d, data

    @staticmethod
    def _author_or_writer(ctx: RepoCtx, d: Discussion, what: str) -> None:
        if ctx.level >= AccessLevel.WRITE or (ctx.principal.name is not None and d.author == ctx.principal.name):
            return
        raise Forbidden(f"only the discussion's author and the repository's writers can {what}")

    def _add_comment(self, ctx: RepoCtx, d: Discussion, text: str) -> dict[str, Any]:
        assert ctx.principal.account is not None
        return comment_json(self.prs.comments.add(d.id, ctx.principal.account.id, text))

    async def comment(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx, d, body = await self._start(request, m)
        event = self._add_comment(ctx, d, check_text(body.get("comment"), "the comment"))
        await self._tell(ctx, d, "create", event)
        return json_response({"newMessage": event})

    def _target(self, ctx: RepoCtx, d: Discussion, raw: str) -> tuple[str, int, str | None]:
        """(kind, row id, author) of the comment ``raw`` names in ``d``."""
        kind, row = parse_event_id(raw)
        if kind == DESCRIPTION and row == d.id:
            return kind, row, d.author
        if kind == COMMENT:
            c = self.prs.comments.get(d.id, row)
            if c is not None:
                return kind, row, c.author
        raise NotFound(f"comment {raw[:40]!r} does not exist in this discussion")

    async def edit(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx, d, body = await self._start(request, m)
        kind, row, author = self._target(ctx, d, m.params["cid"])
        if author is None or author != ctx.principal.name:
            raise Forbidden("only its author can edit a comment")
        text = check_text(body.get("content"), "the comment", limit=MAX_TEXT)
        if kind == DESCRIPTION:
            self.prs.discussions.edit_description(d.id, text)
            found = self.prs.discussions.get(ctx.repo.id, d.num)
            assert found is not None
            event = description_json(found)
        else:
            self.prs.comments.edit(row, text)
            c = self.prs.comments.get(d.id, row)
            assert c is not None
            event = comment_json(c)
        return json_response({"updatedComment": event})

    async def hide(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx, d, _ = await self._start(request, m, body=False)
        kind, row, author = self._target(ctx, d, m.params["cid"])
        if not (ctx.level >= AccessLevel.WRITE or (author is not None and author == ctx.principal.name)):
            raise Forbidden("only its author and the repository's writers can hide a comment")
        if kind == DESCRIPTION:
            self.prs.discussions.hide_description(d.id)
            found = self.prs.discussions.get(ctx.repo.id, d.num)
            assert found is not None
            event = description_json(found)
        else:
            self.prs.comments.hide(row)
            c = self.prs.comments.get(d.id, row)
            assert c is not None
            event = comment_json(c)
        return json_response({"updatedComment": event})

    async def status(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx, d, body = await self._start(request, m)
        new = body.get("status")
        if new not in ("open", "closed"):
            raise BadRequest('status must be "open" or "closed"')
        self._author_or_writer(ctx, d, "close or reopen it")
        if d.status == "merged":
            raise BadRequest("a merged pull request stays merged")
        if d.status == new:
            raise BadRequest(f"the discussion is {new} already")
        comment = check_text(body.get("comment"), "the comment", required=False)
        if comment:
            self._add_comment(ctx, d, comment)
        self.prs.discussions.set_status(ctx.repo.id, d.num, new)
        assert ctx.principal.account is not None
        event = self.prs.events.add(d.id, "status-change", ctx.principal.account.id, {"status": new})
        await self._tell(ctx, self.prs.discussion(ctx, str(d.num)), "update")
        return json_response({"newStatus": change_json(event)})

    async def title(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx, d, body = await self._start(request, m)
        title = check_title(body.get("title"))
        self._author_or_writer(ctx, d, "rename it")
        self.prs.discussions.rename(d.id, title)
        assert ctx.principal.account is not None
        event = self.prs.events.add(d.id, "title-change", ctx.principal.account.id, {"from": d.title, "to": title})
        await self._tell(ctx, self.prs.discussion(ctx, str(d.num)), "update")
        return json_response({"newTitle": change_json(event)})

    async def merge(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self.prs.api_repo(request, m)
        participant(ctx)
        d = self.prs.discussion(ctx, m.params["num"])
        if ctx.level < AccessLevel.WRITE:
            raise Forbidden("only the repository's writers can merge a pull request")
        body = await read_json(request, offload=self.prs.offload)
        if not d.is_pull_request:
            raise BadRequest("only a pull request can be merged, not a discussion")
        if d.status not in ("open", "draft"):
            raise BadRequest(f"only an open pull request can be merged (this one is {d.status})")
        me = ctx.principal.account
        assert me is not None
        head = self.prs.reader.head(ctx.path, f"refs/pr/{d.num}")
        base_ref = ref_for(ctx.repo.default_branch)
        base = self.prs.reader.head(ctx.path, base_ref)
        if head is None or base is None:
            raise BadRequest("the pull request or its target branch has no commits")
        new = await merge_into(self.prs.chain, self.prs.repos.info(ctx.repo), base_ref, base, head,
                               author=me.name, email=f"{me.name}@{self.email_domain}",
                               message=f"Merge pull request #{d.num}: {d.title}\n", git=self.git)
        if new is None:
            raise BadRequest("the pull request has no changes to merge: its commits are in the branch already")
        comment = check_text(body.get("comment"), "the comment", required=False)
        if comment:
            self._add_comment(ctx, d, comment)
        self.prs.discussions.set_status(ctx.repo.id, d.num, "merged", merge_commit=new)
        event = self.prs.events.add(d.id, "status-change", me.id, {"status": "merged"})
        await self._tell(ctx, self.prs.discussion(ctx, str(d.num)), "update")
        return json_response({"newStatus": change_json(event), "mergeCommitId": new})
