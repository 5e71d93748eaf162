"""History pages: commits of a revision (a page at a time), one commit with its diff, and
the repository's branches and tags (created and deleted through the hook chain)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from gitd.access.rules import AccessLevel
from gitd.errors import BadRequest, Conflict, Forbidden, NotFound, PushRejected
from gitd.git.refname import check_branch_name, check_ref_component_rules
from gitd.git.refs import RefConflict
from gitd.hooks.chain import HookChain
from gitd.http.routing import Match, Router
from gitd.hub.gitread import SHA_RE, RevisionNotFound
from gitd.plugins.events import ZERO_OID, RefUpdate
from gitd.plugins.view import RepoViews
from gitd.web.core import RepoPage, WebCore, page_handler
from gitd.web.diffs import diff_commit
from gitd.web.repo_pages import rev_url

MAX_PAGE = 2000  # deepest page of a history shown (each page walks the history up to it)


async def move_ref(chain: HookChain, page: RepoPage, update: RefUpdate) -> None:
    """One ref update through the hook chain, as the signed-in user (pre-receive may refuse it)."""
    try:
        await chain.apply_updates(page.info, [update], via="api", pusher=page.principal.name)
    except RefConflict:
        raise Conflict(f"{update.ref} changed meanwhile; reload the page and try again")
    except PushRejected as exc:
        raise Forbidden(exc.message, code="PushRejected")


class HistoryPages:
    def __init__(self, core: WebCore, views: RepoViews, chain: HookChain):
        self.core = core
        self.views = views
        self.chain = chain

    def add_routes(self, router: Router) -> None:
        router.add("GET", "/{repo}/commits/{rev}", self.commits, name="web-commits")
        router.add("GET", "/{repo}/commit/{rev}", self.commit, name="web-commit")
        router.add(("GET", "POST"), "/{repo}/refs", self.refs, name="web-refs")

    def _base(self, request: web.Request, page: RepoPage, **values: Any) -> dict[str, Any]:
        return {"page": page, "repo": page.repo, "tabs": self.core.repo_tabs(request, page, "commits"), **values}

    def _resolve(self, page: RepoPage, rev: str) -> str:
        try:
            return self.core.reader.resolve(page.path, rev)
        except RevisionNotFound:
            raise NotFound(f"{page.repo.full_name} has no branch, tag or commit {rev[:100]!r}")

    @page_handler
    async def commits(self, request: web.Request, m: Match) -> web.StreamResponse:
        page = self.core.repo(request, m)
        rev = m.params["rev"]
        try:
            p = max(0, min(int(request.query.get("p", "0")), MAX_PAGE))
        except ValueError:
            p = 0
        size = self.core.settings.commits_page

        def build() -> dict[str, Any]:
            commit = self._resolve(page, rev)
            items, more = [], False
            for n, c in enumerate(self.core.reader.log(page.path, commit)):
                if n < p * size:
                    continue
                if len(items) == size:
                    more = True
                    break
                title, _, body = c.message.partition("\n")
                items.append({"id": str(c.id), "title": title, "body": body.strip(), "author": c.author.name,
                              "time": c.commit_time})
            base = f"{page.url}/commits/{rev_url(rev)}"
            return self._base(request, page, rev=rev, items=items, prev=f"{base}?p={p - 1}" if p > 0 else None,
                              next=f"{base}?p={p + 1}" if more else None, page_number=p)

        return await self.core.page(request, "repo/commits.html", build)

    @page_handler
    async def commit(self, request: web.Request, m: Match) -> web.StreamResponse:
        page = self.core.repo(request, m)
        rev = m.params["rev"]
        s = self.core.settings

        def build() -> dict[str, Any]:
            sha = self._resolve(page, rev)
            c = self.core.reader.commit(page.path, sha)
            parent = str(c.parent_ids[0]) if c.parent_ids else None
            view = self.views.open(page.info, repository=self.core.reader.open(page.path))
            diff = diff_commit(view, parent, sha, max_files=s.diff_files, max_lines=s.diff_lines, max_blob=s.diff_blob)
            title, _, body = c.message.partition("\n")
            return self._base(request, page, sha=sha, title=title, body=body.strip(), author=c.author.name,
                              email=c.author.email, time=c.commit_time, parents=[str(x) for x in c.parent_ids],
                              diff=diff, tree=f"{page.url}/tree/{sha}")

        return await self.core.page(request, "repo/commit.html", build)

    # -- branches and tags -----------------------------------------------------------------------
    @page_handler
    async def refs(self, request: web.Request, m: Match) -> web.StreamResponse:
        page = self.core.repo(request, m, AccessLevel.WRITE if request.method == "POST" else AccessLevel.READ)
        message = None
        if request.method == "POST":
            form = await self.core.form(request)
            message = await self._change(page, form)
        reader = self.core.reader

        def build() -> dict[str, Any]:
            branches = [{"name": n[len("refs/heads/"):], "sha": sha}
                        for n, sha in reader.refs(page.path, "refs/heads/")]
            tags = [{"name": n[len("refs/tags/"):], "sha": sha} for n, sha in reader.refs(page.path, "refs/tags/")]
            for ref in branches + tags:
                ref["url"] = f"{page.url}/tree/{quote(ref['name'], safe='')}"
            return {"page": page, "repo": page.repo, "tabs": self.core.repo_tabs(request, page, "files"),
                    "branches": branches[:2000], "tags": tags[:2000], "message": message}

        return await self.core.page(request, "repo/refs.html", build)

    async def _change(self, page: RepoPage, form: dict[str, str]) -> str:
        action, kind = form.get("action", ""), form.get("kind", "branch")
        if kind not in ("branch", "tag"):
            raise BadRequest("kind must be branch or tag")
        prefix = "refs/heads/" if kind == "branch" else "refs/tags/"
        name = form.get("name", "").strip()
        if action == "create":
            check_branch_name(name, kind)
            if SHA_RE.match(name):
                raise BadRequest(f"a {kind} cannot be named like a commit id")
            start = form.get("from", "").strip() or page.repo.default_branch
            target = self.core.reader.try_resolve(page.path, start)
            if target is None:
                raise BadRequest(f"no branch, tag or commit {start[:100]!r} to start from")
            if self.core.reader.head(page.path, prefix + name) is not None:
                raise Conflict(f"{kind} {name!r} already exists")
            await move_ref(self.chain, page, RefUpdate(prefix + name, ZERO_OID, target))
            return f"Created {kind} {name}."
        if action == "delete":
            if not check_ref_component_rules(name):
                raise BadRequest(f"invalid {kind} name")
            if kind == "branch" and name == page.repo.default_branch:
                raise BadRequest("the default branch cannot be deleted")
            ref = self.core.reader.open(page.path).references.get(prefix + name)
            if ref is None:
                raise NotFound(f"{kind} {name!r} does not exist")
            await move_ref(self.chain, page, RefUpdate(prefix + name, str(ref.target), ZERO_OID))
            return f"Deleted {kind} {name}."
        raise BadRequest("unknown action")
