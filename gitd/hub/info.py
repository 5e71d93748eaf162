"""Repo info (model_info / dataset_info / space_info) and the repo listings with search."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from aiohttp import web

from gitd.access.rules import Access, AccessLevel
from gitd.errors import NotFound
from gitd.http.context import principal
from gitd.http.routing import Match, Router
from gitd.hub.card import CardError, card_tags, parse_card
from gitd.hub.common import API_TYPES, HubBase, RepoCtx, api_patterns, bool_param, int_param, json_response, next_link
from gitd.hub.files import FileView
from gitd.hub.gitread import Entry, RepoReader, iso
from gitd.hub.listing import SORTS, ListingQuery, RepoListing, tag_filters
from gitd.plugins.fields import InfoFields
from gitd.plugins.filters import RepoFilters
from gitd.repos import RepoService
from gitd.store import Repo, Repos
from gitd.store.redirects import Redirects

LIST_PAGE = 1000


class CardCache:
    """Card metadata per (repository path, commit): a commit's README never changes."""

    def __init__(self, reader: RepoReader, size: int = 4096):
        self.reader = reader
        self.size = size
        self._cards: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def card(self, path: Path, commit: str | None) -> dict[str, Any]:
        if commit is None:
            return {}
        key = (str(path), commit)
        with self._lock:
            found = self._cards.get(key)
        if found is None:
            found = {}
            entry = self.reader.entry(path, commit, "README.md")
            if entry is not None and entry.kind == "file" and entry.size <= 1024 * 1024:
                try:
                    found = parse_card(self.reader.read_blob(path, entry.oid).decode("utf-8", "replace"))
                except CardError:
                    found = {}
            with self._lock:
                if len(self._cards) >= self.size:
                    self._cards.pop(next(iter(self._cards)))
                self._cards[key] = found
        return found


class HubInfo(HubBase):
    def __init__(self, repos: RepoService, access: Access, repo_rows: Repos, reader: RepoReader, view: FileView,
                 *, fields: InfoFields | None = None, public_url: str = "",
                 redirects: Redirects | None = None, filters: RepoFilters | None = None):
        super().__init__(repos, access, public_url=public_url, redirects=redirects)
        self.fields = fields
        self.repo_rows = repo_rows
        self.listing_rows = RepoListing(repo_rows, filters)
        self.reader = reader
        self.view = view
        self.cards = CardCache(reader)
        self._file_lists: dict[tuple[str, str], list[Entry]] = {}
        self._lock = threading.Lock()

    def add_routes(self, router: Router) -> None:
        router.add("GET", "/api/{types}", self.listing, style="hub", name="hub-list")
        router.add("GET", api_patterns(""), self.info, style="hub", name="hub-info")
        router.add("GET", api_patterns("/revision/{rev}"), self.info, style="hub", name="hub-info-revision")

    # -- one repository ------------------------------------------------------------------------------
    async def info(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self.api_repo(request, m)
        rev = m.params.get("rev")
        if rev is not None:
            commit: str | None = self.reader.resolve(ctx.path, rev)
        else:
            commit = self.reader.default_head(ctx.path, ctx.repo.default_branch)
        data = await asyncio.to_thread(self.describe, request, ctx, commit, True)
        if self.fields is not None and self.fields.active():
            data = await asyncio.to_thread(self.fields.add, self.repos.info(ctx.repo), commit, data)
        return json_response(data)

    def describe(self, request: web.Request, ctx: RepoCtx, commit: str | None, siblings: bool) -> dict[str, Any]:
        repo = ctx.repo
        card = self.cards.card(ctx.path, commit)
        out: dict[str, Any] = {
            "_id": f"{repo.id:024x}",
            "id": repo.full_name,
            "author": repo.namespace,
            "sha": commit,
            "lastModified": iso(self.reader.commit(ctx.path, commit).commit_time) if commit else repo.updated_at,
            "createdAt": repo.created_at,
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": card_tags(card),
            "cardData": card,
            "description": repo.description,
        }
        if repo.type == "model":
            out["modelId"] = repo.full_name
            for key in ("pipeline_tag", "library_name"):
                if isinstance(card.get(key), str):
                    out[key] = card[key]
        if repo.type == "space":
            out["sdk"] = card.get("sdk") if isinstance(card.get("sdk"), str) else None
        if siblings:
            files = [] if commit is None else [self.view.sibling_json(repo.id, e)
                                               for e in self._files(ctx.path, commit)]
            out["siblings"] = files
            out["usedStorage"] = sum(f.get("size", 0) for f in files)
        return out

    def _files(self, path: Path, commit: str) -> list[Entry]:
        """Every file of a commit (cached for the last few commits asked about)."""
        key = (str(path), commit)
        with self._lock:
            found = self._file_lists.get(key)
        if found is None:
            found = [e for e in self.reader.walk(path, commit, recursive=True) if e.kind == "file"]
            with self._lock:
                if len(self._file_lists) >= 64:
                    self._file_lists.pop(next(iter(self._file_lists)))
                self._file_lists[key] = found
        return found

    # -- listings --------------------------------------------------------------------------------------
    async def listing(self, request: web.Request, m: Match) -> web.StreamResponse:
        repo_type = API_TYPES.get(m.params["types"])
        if repo_type is None:
            raise NotFound(f"no such listing {m.params['types']!r}")
        data, headers = await asyncio.to_thread(self._listing, request, repo_type)
        return json_response(data, headers=headers)

    def _listing(self, request: web.Request, repo_type: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
        query = request.query
        owner = None
        if query.get("author"):
            owner = self.repos.accounts.find(query["author"])
            if owner is None:
                return [], {}
        sort = query.get("sort")
        q = ListingQuery(self.access.readable(principal(request)), repo_type, owner,
                         searches=[s for s in query.getall("search", []) if s], filters=tag_filters(query),
                         order=SORTS.get(sort or "", "id"), descending=sort in SORTS and query.get("direction") != "1",
                         offset=int_param(request, "cursor", 0), limit=int_param(request, "limit", LIST_PAGE, lo=1,
                                                                                  hi=LIST_PAGE))
        full = bool_param(request, "full") or bool_param(request, "cardData")
        expand = [e for e in query.getall("expand", []) if e]
        rows, more = self.listing_rows.page(q, lambda r: self._brief(request, r, False, []))
        described = [self._brief(request, r, full, expand) for r in rows]
        headers = {}
        if more:
            headers["Link"] = next_link(self.base(request), request, cursor=q.offset + q.limit)
        return described, headers

    def _brief(self, request: web.Request, repo: Repo, full: bool, expand: list[str]) -> dict[str, Any]:
        """A listing's entry: what ``list_models`` shows by default (plugins' values for those
        keys merged in), everything with ``full``, or ``id`` and the ``expand``ed keys."""
        path = self.repos.path(repo)
        try:
            commit = self.reader.default_head(path, repo.default_branch)
        except NotFound:
            commit = None
        ctx = RepoCtx(repo, path, AccessLevel.READ, principal(request))
        d = self.describe(request, ctx, commit, siblings=full or "siblings" in expand)
        shown = (set(d) | {"pipeline_tag", "library_name"}) - {"cardData", "siblings", "usedStorage"}
        if self.fields is not None and self.fields.active():
            d = self.fields.add(self.repos.info(repo), commit, d)
        if expand:
            return {k: v for k, v in d.items() if k in expand or k in ("_id", "id")}
        return d if full else {k: v for k, v in d.items() if k in shown}
