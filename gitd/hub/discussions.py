"""Discussions and pull requests as the Hub serves them: PR N is the ref refs/pr/N.

Anyone who can read a repository and is signed in with a write-capable credential may open a
discussion or a pull request and comment (the Hub's community workflow); the actions on one
(gitd.hub.discussion_actions) say who may do what else. A discussion's timeline is its
description, its comments and its status and title changes, each an event with a 24-hex id:
the first digit says which table it lives in (0 description, 1 comment, 2 change)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gitd.access.rules import Access, AccessLevel
from gitd.errors import BadRequest, Forbidden, NotFound, Unauthorized
from gitd.hooks.chain import HookChain
from gitd.http.context import read_json
from gitd.http.offload import Offload
from gitd.http.routing import Match, Router
from gitd.hub.common import HubBase, RepoCtx, api_patterns, bool_param, int_param, json_response
from gitd.hub.gitread import RepoReader, ref_for
from gitd.plugins.events import ZERO_OID, RefUpdate
from gitd.repos import RepoService
from gitd.store.comments import Comment, Comments
from gitd.store.discussion_events import DiscussionEvent, DiscussionEvents
from gitd.store.discussions import Discussion, Discussions
from gitd.store.redirects import Redirects

log = logging.getLogger("gitd.hub")

PAGE = 50
MAX_TITLE = 300
MAX_TEXT = 64 * 1024
MAX_DIFF = 1 << 20
DESCRIPTION, COMMENT, CHANGE = "0", "1", "2"


DiscussionListener = Callable[["RepoCtx", Discussion, str, "dict[str, Any] | None"], Awaitable[None]]


def event_id(kind: str, row_id: int) -> str:
    return f"{kind}{row_id:023x}"


def parse_event_id(raw: str) -> tuple[str, int]:
    """(kind, row id) of an event id; NotFound for anything else."""
    raw = raw.lower()
    if len(raw) != 24 or raw[0] not in (DESCRIPTION, COMMENT, CHANGE):
        raise NotFound(f"comment {raw[:40]!r} does not exist")
    try:
        return raw[0], int(raw[1:], 16)
    except ValueError:
        raise NotFound(f"comment {raw[:40]!r} does not exist")


def participant(ctx: RepoCtx) -> None:
    """Taking part in a discussion needs an account and a credential that may write (a read
    token reads only); the repository itself needs only to be readable (looked up already)."""
    if ctx.principal.account is None:
        raise Unauthorized("sign in to take part in discussions")
    if ctx.principal.cap < AccessLevel.WRITE:
        raise Forbidden("this token is read-only: taking part in discussions needs a write token")


def check_text(value: Any, what: str, *, limit: int = MAX_TEXT, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise BadRequest(f"{what} must be non-empty text")
    if len(value) > limit:
        raise BadRequest(f"{what} is too long (at most {limit} characters)")
    return value.strip()


def check_title(value: Any) -> str:
    title = check_text(value, "the title", limit=MAX_TITLE)
    if len(title) < 3:
        raise BadRequest("a title needs at least 3 characters")
    return title


def comment_event(eid: str, author: str | None, raw: str, created: str, edited: str | None,
                  hidden: bool) -> dict[str, Any]:
    who = {"name": author or "deleted", "type": "user"}
    return {"id": eid, "type": "comment", "createdAt": created, "author": who,
            "data": {"edited": edited is not None, "hidden": hidden,
                     "latest": {"raw": "" if hidden else raw, "html": "", "updatedAt": edited or created,
                                "author": who}}}


def description_json(d: Discussion) -> dict[str, Any]:
    return comment_event(event_id(DESCRIPTION, d.id), d.author, d.description, d.created_at, d.edited_at, d.hidden)


def comment_json(c: Comment) -> dict[str, Any]:
    return comment_event(event_id(COMMENT, c.id), c.author, c.body, c.created_at, c.edited_at, c.hidden)


def change_json(e: DiscussionEvent) -> dict[str, Any]:
    return {"id": event_id(CHANGE, e.id), "type": e.kind, "createdAt": e.created_at,
            "author": {"name": e.author or "deleted", "type": "user"}, "data": e.data}


class PullRequests(HubBase):
    shows_gated = True  # what the Hub shows of a gated repository to all

    def __init__(self, repos: RepoService, access: Access, discussions: Discussions, reader: RepoReader,
                 chain: HookChain, *, comments: Comments, events: DiscussionEvents, public_url: str = "",
                 redirects: Redirects | None = None, offload: Offload | None = None):
        super().__init__(repos, access, public_url=public_url, redirects=redirects,
                         offload=offload)
        self.discussions = discussions
        self.comments = comments
        self.events = events
        self.reader = reader
        self.chain = chain
        # Told of each new discussion, comment and change (webhooks): repository, discussion,
        # action ("create", "update"), and the comment event for a comment.
        self.listeners: list[DiscussionListener] = []

    async def notify(self, ctx: RepoCtx, d: Discussion, action: str, comment: dict[str, Any] | None = None) -> None:
        for listener in self.listeners:
            try:
                await listener(ctx, d, action, comment)
            except Exception:  # the change is made: a listener's failure is logged, never the caller's
                log.exception("discussion listener failed for %s #%d", ctx.repo.full_name, d.num)

    def add_routes(self, router: Router) -> None:
        router.add("GET", api_patterns("/discussions"), self.list, style="hub", name="hub-discussions")
        router.add("POST", api_patterns("/discussions"), self.create, style="hub", name="hub-discussion-create")
        router.add("GET", api_patterns("/discussions/{num}"), self.details, style="hub", name="hub-discussion")

    def discussion(self, ctx: RepoCtx, raw: str) -> Discussion:
        try:
            num = int(raw)
        except ValueError:
            num = 0
        d = self.discussions.get(ctx.repo.id, num) if num > 0 else None
        if d is None:
            raise NotFound(f"discussion {raw[:20]} does not exist", code="EntryNotFound")
        return d

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
            "isPullRequest": d.is_pull_request, "pinned": False, "numComments": 1 + self.comments.count(d.id),
            "author": {"name": d.author or "deleted", "type": "user"},
            "repo": {"name": ctx.repo.full_name, "type": ctx.repo.type},
        }

    async def list(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self.api_repo(request, m)
        items = self.discussions.list(ctx.repo.id)
        status = request.query.get("status")
        if status in ("open", "closed"):  # as on the Hub: closed takes merged ones in
            items = [d for d in items if (d.status in ("open", "draft")) == (status == "open")]
        elif status in ("merged", "draft"):
            items = [d for d in items if d.status == status]
        elif status not in (None, "", "all"):
            raise BadRequest("status must be open, closed, merged, draft or all")
        kind = request.query.get("type")
        if kind in ("discussion", "pull_request"):
            items = [d for d in items if d.is_pull_request == (kind == "pull_request")]
        elif kind not in (None, "", "all"):
            raise BadRequest("type must be discussion, pull_request or all")
        if request.query.get("author"):
            items = [d for d in items if d.author == request.query["author"]]
        page = int_param(request, "p", 0)
        chunk = items[page * PAGE:(page + 1) * PAGE]
        closed = sum(d.status in ("closed", "merged") for d in items)
        return json_response({"discussions": [self._json(ctx, d) for d in chunk], "count": len(items),
                              "start": page * PAGE, "numClosedDiscussions": closed})

    async def create(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self.api_repo(request, m)
        participant(ctx)
        body = await read_json(request, offload=self.offload)
        if not isinstance(body, dict):
            raise BadRequest('expected JSON {"title", "description", "pullRequest"}')
        title = check_title(body.get("title"))
        description = check_text(body.get("description"), "the description", required=False)
        pull_request = body.get("pullRequest", False)
        if not isinstance(pull_request, bool):
            raise BadRequest("pullRequest must be true or false")
        if pull_request:
            base = self.reader.resolve(ctx.path, ctx.repo.default_branch)
            d = await self.open(ctx, title, description, base=ctx.repo.default_branch,
                                start_point=base, create_ref=True)
        else:
            author_id = ctx.principal.account.id if ctx.principal.account else None
            d = self.discussions.create(ctx.repo.id, title, description, author_id, pull_request=False)
        await self.notify(ctx, d, "create")
        return json_response({**self._json(ctx, d), "url": f"{self.repo_url(request, ctx.repo)}/discussions/{d.num}"})

    def timeline(self, d: Discussion) -> list[dict[str, Any]]:
        """Description, comments and changes in the order they happened."""
        # One sequence per discussion orders comments and changes alike (store migration 13):
        # their millisecond timestamps can tie.
        rest = [(c.seq, comment_json(c)) for c in self.comments.of(d.id)]
        rest += [(e.seq, change_json(e)) for e in self.events.of(d.id)]
        rest.sort(key=lambda pair: pair[0])
        return [description_json(d), *(event for _, event in rest)]

    async def details(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self.api_repo(request, m)
        d = self.discussion(ctx, m.params["num"])
        out = self._json(ctx, d)
        out["events"] = self.timeline(d)
        if d.is_pull_request:
            out["changes"] = {"base": ref_for(ctx.repo.default_branch)}
            if d.merge_commit:
                out["changes"]["mergeCommitId"] = d.merge_commit
            out["filesWithConflicts"] = []
            head = self.reader.head(ctx.path, f"refs/pr/{d.num}")
            if head is not None:
                out["changes"]["headCommit"] = head
                if bool_param(request, "diff"):
                    base = self.reader.head(ctx.path, ref_for(ctx.repo.default_branch))
                    out["diff"] = await self.offload.run(self._diff, ctx, base, head, what="the pull request's diff")
        return json_response(out)

    def _diff(self, ctx: RepoCtx, base: str | None, head: str) -> str:
        """The pull request's changes against the branch, as a git patch (cut at MAX_DIFF)."""
        repo = self.reader.open(ctx.path)
        merge_base = repo.merge_base(base, head) if base else None
        old = repo[merge_base] if merge_base else None
        new = repo[head]
        diff = repo.diff(old, new) if old is not None else new.tree.diff_to_tree(swap=True)
        text = diff.patch or ""
        return text if len(text) <= MAX_DIFF else text[:MAX_DIFF] + "\n[diff cut short]\n"
