"""Discussions and pull requests: list, read, open, comment, close and reopen, and merge a
pull request (``refs/pr/N``) into the default branch."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gitd.errors import BadRequest, Forbidden, NotFound
from gitd.git.runner import GitRunner
from gitd.hooks.chain import HookChain
from gitd.http.routing import Match, Router
from gitd.hub.gitread import ref_for
from gitd.plugins.events import ZERO_OID, RefUpdate
from gitd.plugins.view import RepoViews
from gitd.store.comments import Comments
from gitd.store.discussions import Discussion, Discussions
from gitd.web.core import LoginRequired, RepoPage, WebCore, page_handler
from gitd.web.diffs import diff_commit
from gitd.web.history_pages import move_ref
from gitd.web.markdown import render_markdown
from gitd.web.merge import merge_into

MAX_TITLE = 300
MAX_BODY = 64 * 1024


class CommunityPages:
    def __init__(self, core: WebCore, discussions: Discussions, comments: Comments, chain: HookChain,
                 views: RepoViews, *, git: GitRunner | None, email_domain: str):
        self.core = core
        self.discussions = discussions
        self.comments = comments
        self.chain = chain
        self.views = views
        self.git = git
        self.email_domain = email_domain

    def add_routes(self, router: Router) -> None:
        router.add("GET", "/{repo}/discussions", self.list, name="web-discussions")
        router.add(("GET", "POST"), "/{repo}/discussions/new", self.new, name="web-discussion-new")
        router.add(("GET", "POST"), "/{repo}/discussions/{num}", self.show, name="web-discussion")

    def _base(self, request: web.Request, page: RepoPage, **values: Any) -> dict[str, Any]:
        return {"page": page, "repo": page.repo, "tabs": self.core.repo_tabs(request, page, "community"), **values}

    @page_handler
    async def list(self, request: web.Request, m: Match) -> web.StreamResponse:
        page = self.core.repo(request, m)
        status = request.query.get("status", "open")

        def build() -> dict[str, Any]:
            items = self.discussions.list(page.repo.id)
            shown = [d for d in items if status == "all" or (d.status == "open") == (status == "open")]
            return self._base(request, page, items=shown[:500], status=status,
                              open_count=sum(d.status == "open" for d in items),
                              closed_count=sum(d.status != "open" for d in items))

        return await self.core.page(request, "repo/discussions.html", build)

    @page_handler
    async def new(self, request: web.Request, m: Match) -> web.StreamResponse:
        page = self.core.repo(request, m)
        if page.principal.account is None or page.principal.method != "session":
            raise LoginRequired("sign in to open a discussion")
        branches = [n[len("refs/heads/"):] for n, _ in self.core.reader.refs(page.path, "refs/heads/")][:500]
        if request.method == "GET":
            return await self.core.page(request, "repo/new_discussion.html", lambda: self._base(
                request, page, branches=branches, pull=request.query.get("pr") == "1"))
        form = await self.core.form(request, limit=4 * MAX_BODY)
        title, body = form.get("title", "").strip(), form.get("description", "").strip()
        if not title or len(title) > MAX_TITLE:
            raise BadRequest(f"a discussion needs a title of at most {MAX_TITLE} characters")
        if len(body) > MAX_BODY:
            raise BadRequest("the description is too long")
        pull = form.get("kind") == "pull"
        start = None
        if pull:
            if not page.can_write:
                raise Forbidden("opening a pull request needs write access")
            source = form.get("source", "").strip()
            start = self.core.reader.head(page.path, ref_for(source)) if source else None
            if start is None:
                raise BadRequest("choose the branch the pull request proposes")
        account = page.principal.account
        d = self.discussions.create(page.repo.id, title, body, account.id, pull_request=pull)
        if start is not None:
            await move_ref(self.chain, page, RefUpdate(f"refs/pr/{d.num}", ZERO_OID, start))
        raise web.HTTPSeeOther(f"{page.url}/discussions/{d.num}")

    def _discussion(self, page: RepoPage, num: str) -> Discussion:
        try:
            d = self.discussions.get(page.repo.id, int(num))
        except ValueError:
            d = None
        if d is None:
            raise NotFound("no such discussion")
        return d

    @page_handler
    async def show(self, request: web.Request, m: Match) -> web.StreamResponse:
        page = self.core.repo(request, m)
        d = self._discussion(page, m.params["num"])
        message = None
        if request.method == "POST":
            form = await self.core.form(request, limit=4 * MAX_BODY)
            message = await self._act(page, d, form)
            d = self._discussion(page, m.params["num"])
        s = self.core.settings

        def build() -> dict[str, Any]:
            url = f"{page.url}/discussions/{d.num}"
            posts = [{"author": d.author, "time": d.created_at, "html": render_markdown(d.description)[0]}]
            posts += [{"author": c.author, "time": c.created_at, "html": render_markdown(c.body)[0]}
                      for c in self.comments.of(d.id)]
            pr = None
            if d.is_pull_request:
                head = self.core.reader.head(page.path, f"refs/pr/{d.num}")
                base = self.core.reader.head(page.path, ref_for(page.repo.default_branch))
                diff = None
                if head is not None:
                    view = self.views.open(page.info, repository=self.core.reader.open(page.path))
                    diff = diff_commit(view, base, head, max_files=s.diff_files, max_lines=s.diff_lines,
                                       max_blob=s.diff_blob)
                pr = {"head": head, "base": base, "diff": diff, "ref": f"refs/pr/{d.num}"}
            me = page.principal.account
            mine = me is not None and d.author == me.name
            return self._base(request, page, d=d, url=url, posts=posts, pr=pr, message=message,
                              can_comment=me is not None and page.principal.method == "session",
                              can_close=page.can_write or mine, can_merge=page.can_write)

        return await self.core.page(request, "repo/discussion.html", build)

    async def _act(self, page: RepoPage, d: Discussion, form: dict[str, str]) -> str:
        me = page.principal.account
        if me is None:
            raise LoginRequired("sign in to take part")
        action = form.get("action")
        if action == "comment":
            body = form.get("body", "").strip()
            if not body or len(body) > MAX_BODY:
                raise BadRequest("a comment needs some text (at most 64 KiB)")
            self.comments.add(d.id, me.id, body)
            return "Comment added."
        if action in ("close", "reopen"):
            if not (page.can_write or d.author == me.name):
                raise Forbidden("only the author and the repository's writers can do this")
            if d.status == "merged":
                raise BadRequest("a merged pull request stays merged")
            self.discussions.set_status(page.repo.id, d.num, "closed" if action == "close" else "open")
            return "Closed." if action == "close" else "Reopened."
        if action == "merge":
            if not page.can_write:
                raise Forbidden("merging needs write access")
            if not d.is_pull_request or d.status != "open":
                raise BadRequest("only an open pull request can be merged")
            head = self.core.reader.head(page.path, f"refs/pr/{d.num}")
            base_ref = ref_for(page.repo.default_branch)
            base = self.core.reader.head(page.path, base_ref)
            if head is None or base is None:
                raise BadRequest("the pull request or its branch has no commits")
            await merge_into(self.chain, page.info, base_ref, base, head, author=me.name,
                             email=f"{me.name}@{self.email_domain}",
                             message=f"Merge pull request #{d.num}: {d.title}\n", git=self.git)
            self.discussions.set_status(page.repo.id, d.num, "merged")
            return "Merged."
        raise BadRequest("unknown action")
