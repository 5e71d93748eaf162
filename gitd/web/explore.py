"""The home page, search and the listings of models, datasets, spaces and code (filtered by
the metadata plugin's tags where it is installed, sorted, a page at a time), and the
pages of users and organisations."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from gitd.errors import NotFound
from gitd.http.routing import Match, Router
from gitd.hub.card import card_tags
from gitd.hub.info import CardCache
from gitd.hub.listing import ListingQuery, RepoListing
from gitd.names import REPO_TYPES
from gitd.plugins.fields import InfoFields
from gitd.store import Account, Repo, Repos
from gitd.web.core import LIST_PATH, WebCore, page_handler

PATH_TYPE = {v: k for k, v in LIST_PATH.items()}
SORTS = {"updated": ("updated", True), "created": ("created", True), "name": ("name", False)}
# The listing's filter fields and the Hub listing filter each one becomes.
FILTERS = (("task", "pipeline_tag", "Task"), ("library", "library", "Library"), ("language", "language", "Language"),
           ("license", "license", "License"), ("tag", "tags", "Tag"))
MAX_SEARCH = 200


class Explore:
    def __init__(self, core: WebCore, repo_rows: Repos, cards: CardCache, fields: InfoFields | None,
                 listing: RepoListing):
        self.core = core
        self.repo_rows = repo_rows
        self.cards = cards
        self.fields = fields
        self.listing_rows = listing

    def add_routes(self, router: Router) -> None:
        router.add("GET", "/", self.home, name="web-home")
        router.add("GET", "/search", self.search, name="web-search")
        for path in LIST_PATH.values():
            router.add("GET", f"/{path}", self.listing, name=f"web-list-{path}")
        router.add("GET", "/{ns}", self.profile, name="web-profile")

    # -- what a listing shows of a repository ---------------------------------------------------
    def card_facts(self, repo: Repo) -> dict[str, Any]:
        """Tags and fields of a repository's card at its default branch (cached per commit)."""
        path = self.core.repos.path(repo)
        try:
            commit = self.core.reader.default_head(path, repo.default_branch)
        except NotFound:
            commit = None
        card = self.cards.card(path, commit, repo.full_name) or {}
        out: dict[str, Any] = {"tags": card_tags(card), "commit": commit}
        for key in ("pipeline_tag", "library_name"):
            if isinstance(card.get(key), str):
                out[key] = card[key]
        return out

    def summary(self, repo: Repo) -> dict[str, Any]:
        facts = self.card_facts(repo)
        if self.fields is not None and self.fields.active():
            facts = self.fields.add(self.core.repos.info(repo), facts.get("commit"), facts)
        tags = [t for t in facts.get("tags", []) if isinstance(t, str)]
        return {"repo": repo, "url": "/" + repo.url_path, "tags": tags[:6],
                "task": facts.get("pipeline_tag") if isinstance(facts.get("pipeline_tag"), str) else None}

    def _page(self, request: web.Request, repo_type: str, *, owner: Account | None = None, search: str = "",
              filters: dict[str, list[str]] | None = None, sort: str = "updated", page: int = 0,
              size: int | None = None) -> tuple[list[dict[str, Any]], bool]:
        order, descending = SORTS.get(sort, SORTS["updated"])
        size = size or self.core.settings.list_page
        q = ListingQuery(self.core.access.readable(self.core.who(request)), repo_type, owner,
                         searches=[search] if search else [], filters=filters or {}, order=order,
                         descending=descending, offset=page * size, limit=size)
        rows, more = self.listing_rows.page(q, self.card_facts)
        return [self.summary(r) for r in rows], more

    # -- pages ---------------------------------------------------------------------------------
    @page_handler
    async def home(self, request: web.Request, m: Match) -> web.StreamResponse:
        def build() -> dict[str, Any]:
            sections = [{"type": t, "path": LIST_PATH[t], "items": self._page(request, t, size=6)[0]}
                        for t in REPO_TYPES]
            return {"sections": sections}

        return await self.core.page(request, "home.html", build)

    @page_handler
    async def search(self, request: web.Request, m: Match) -> web.StreamResponse:
        text = request.query.get("q", "").strip()[:MAX_SEARCH]

        def build() -> dict[str, Any]:
            sections = []
            for t in REPO_TYPES:
                items, more = self._page(request, t, search=text, size=10) if text else ([], False)
                sections.append({"type": t, "path": LIST_PATH[t], "items": items, "more": more})
            return {"query": text, "sections": sections, "search_query": urlencode({"search": text})}

        return await self.core.page(request, "search.html", build)

    @page_handler
    async def listing(self, request: web.Request, m: Match) -> web.StreamResponse:
        repo_type = PATH_TYPE[request.path.strip("/")]
        query = request.query
        text = query.get("search", "").strip()[:MAX_SEARCH]
        sort = query.get("sort", "updated") if query.get("sort") in SORTS else "updated"
        try:
            page = max(0, min(int(query.get("p", "0")), 10_000))
        except ValueError:
            page = 0
        values = {key: query.get(key, "").strip()[:100] for key, _, _ in FILTERS}
        filters = {hub: [values[key]] for key, hub, _ in FILTERS if values[key]}
        owner = None
        author = query.get("author", "").strip()[:100]
        if author:
            owner = self.core.accounts.find(author)

        def build() -> dict[str, Any]:
            items, more = self._page(request, repo_type, owner=owner, search=text, filters=filters, sort=sort,
                                     page=page) if owner is not None or not author else ([], False)
            keep = {k: v for k, v in {"search": text, "sort": sort, "author": author, **values}.items() if v}

            def link(p: int) -> str:
                return f"{request.path}?{urlencode({**keep, 'p': p})}"

            return {"repo_type": repo_type, "items": items, "search": text, "sort": sort, "sorts": list(SORTS),
                    "filters": [{"key": k, "label": label, "value": values[k]} for k, _, label in FILTERS],
                    "author": author, "page": page, "prev": link(page - 1) if page > 0 else None,
                    "next": link(page + 1) if more else None}

        return await self.core.page(request, "list.html", build)

    @page_handler
    async def profile(self, request: web.Request, m: Match) -> web.StreamResponse:
        account = self.core.accounts.find(m.params["ns"])
        if account is None:
            raise NotFound("no such user or organisation")

        def build() -> dict[str, Any]:
            sections = []
            for t in REPO_TYPES:
                items, more = self._page(request, t, owner=account, size=30)
                if items:
                    sections.append({"type": t, "path": LIST_PATH[t], "items": items, "more": more})
            members = self.core.accounts.members(account) if account.kind == "org" else []
            return {"account": account, "sections": sections, "members": members}

        return await self.core.page(request, "profile.html", build)
