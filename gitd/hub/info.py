"""Repo info (model_info / dataset_info / space_info) and the repo listings with search."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from gitd.access.rules import Access, AccessLevel
from gitd.errors import BadRequest, NotFound
from gitd.http.context import principal
from gitd.http.offload import Offload
from gitd.http.routing import Match, Router
from gitd.hub.bounded_cache import BoundedCache
from gitd.hub.card import CARD_YAML_MAX, README_MAX, CardError, card_tags, parse_card
from gitd.hub.common import (
    API_TYPES,
    HubBase,
    RepoCtx,
    api_patterns,
    bool_param,
    dumps,
    dumps_in_pieces,
    int_param,
    next_link,
    refuse_params,
)
from gitd.hub.files import FileView
from gitd.hub.gitread import DEFAULT_WALK, RepoReader, Walk, iso
from gitd.hub.listing import SORTS, ListingQuery, RepoListing, tag_filters
from gitd.plugins.fields import InfoFields
from gitd.plugins.filters import RepoFilters, RepoIds
from gitd.repos import RepoService
from gitd.store import Repo, Repos
from gitd.store.likes import Likes
from gitd.store.redirects import Redirects

LIST_PAGE = 1000
LIST_PAGE_FULL = 100
LIST_SIBLINGS = 1000
log = logging.getLogger("gitd.hub")


class CardCache:
    """Card metadata per (repository path, commit): a commit's README never changes. Bounded by
    the total size of the cards it holds; a card that cannot be parsed is remembered as such."""

    def __init__(self, reader: RepoReader, *, max_yaml: int = CARD_YAML_MAX, max_bytes: int = 32 * 1024 * 1024):
        self.reader = reader
        self.max_yaml = max_yaml
        self._cards: BoundedCache[dict[str, Any] | CardError] = BoundedCache(max_bytes)

    def card(self, path: Path, commit: str | None, full_name: str = "") -> dict[str, Any] | None:
        """The card of ``commit`` ({} without one); None, with a warning in the log, when it is invalid."""
        if commit is None:
            return {}
        key = (str(path), commit)
        found = self._cards.get(key)
        if found is None:
            weight = 64
            found = {}
            entry = self.reader.entry(path, commit, "README.md")
            if entry is not None and entry.kind == "file" and entry.size <= README_MAX:
                weight += entry.size
                try:
                    found = parse_card(self.reader.read_blob(path, entry.oid).decode("utf-8", "replace"),
                                       max_yaml=self.max_yaml)
                except CardError as exc:
                    log.warning("the card of %s at %s is left out: %s", full_name or path, commit, exc)
                    found = exc
            self._cards.put(key, found, weight)
        return None if isinstance(found, CardError) else found


# list_models/list_datasets/list_spaces parameters gitd cannot filter on or add (huggingface_hub sends
# each only when set): inference, apps, parameter counts, spaces' linked models and datasets.
UNSUPPORTED_LISTING_FILTERS = ("inference", "inference_provider", "apps", "num_parameters", "linked",
                               "models", "datasets")
# model_info/dataset_info/space_info parameters gitd does not serve: no security scans.
UNSUPPORTED_INFO_PARAMS = ("securityStatus",)
# The properties the Hub takes in ``expand``, per repository type (as huggingface_hub 2.4 lists them). A
# value outside these is refused, as on the Hub; those gitd has no value for are left out of the answer.
_COMMON_EXPAND = frozenset(("author", "cardData", "createdAt", "disabled", "lastModified", "likes", "private",
                           "resourceGroup", "sha", "siblings", "tags", "trendingScore", "usedStorage"))
HUB_EXPAND = {
    "model": _COMMON_EXPAND | frozenset((
        "baseModels", "childrenModelCount", "config", "downloads", "downloadsAllTime", "evalResults", "gated",
        "gguf", "inference", "inferenceProviderMapping", "library_name", "mask_token", "model-index",
        "pipeline_tag", "safetensors", "spaces", "transformersInfo", "widgetData")),
    "dataset": _COMMON_EXPAND | frozenset((
        "citation", "description", "downloads", "downloadsAllTime", "gated", "mainSize", "paperswithcode_id")),
    "space": _COMMON_EXPAND | frozenset(("datasets", "models", "region", "runtime", "sdk", "subdomain")),
}


def expand_of(request: web.Request, repo_type: str) -> list[str]:
    """The ``expand`` values of a request; 400 ``UnsupportedParameter`` naming any the Hub does not take."""
    values = [e for e in request.query.getall("expand", []) if e]
    known = HUB_EXPAND.get(repo_type) or frozenset().union(*HUB_EXPAND.values())
    unknown = sorted({e[:40] for e in values if e not in known})
    if unknown:
        raise BadRequest(f"expand value(s) not supported: {', '.join(unknown)}; the {repo_type} properties are "
                         f"{', '.join(sorted(known))}", code="UnsupportedParameter")
    return values


class HubInfo(HubBase):
    shows_gated = True  # what the Hub shows of a gated repository to all

    def __init__(self, repos: RepoService, access: Access, repo_rows: Repos, reader: RepoReader, view: FileView,
                 *, fields: InfoFields | None = None, public_url: str = "",
                 redirects: Redirects | None = None, offload: Offload | None = None,
                 max_listed_files: int = DEFAULT_WALK, listing_cache_entries: int = 200_000,
                 max_card_size: int = CARD_YAML_MAX, filters: RepoFilters | None = None,
                 likes: Likes | None = None):
        super().__init__(repos, access, public_url=public_url, redirects=redirects,
                         offload=offload)
        self.fields = fields
        self.likes = likes
        self.repo_rows = repo_rows
        self.listing_rows = RepoListing(repo_rows, filters)
        self.reader = reader
        self.view = view
        self.cards = CardCache(reader, max_yaml=max_card_size)
        self.max_listed_files = max_listed_files
        self._file_lists: BoundedCache[Walk] = BoundedCache(listing_cache_entries)

    def add_routes(self, router: Router) -> None:
        router.add("GET", "/api/{types}", self.listing, style="hub", name="hub-list")
        router.add("GET", api_patterns(""), self.info, style="hub", name="hub-info")
        router.add("GET", api_patterns("/revision/{rev}"), self.info, style="hub", name="hub-info-revision")

    # -- one repository ------------------------------------------------------------------------------
    async def info(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self.api_repo(request, m)
        refuse_params(request, UNSUPPORTED_INFO_PARAMS, "repository info parameter(s)")
        expand_of(request, ctx.repo.type)  # checked; the answer carries every property gitd has
        rev = m.params.get("rev")
        if rev is not None:
            commit: str | None = self.reader.resolve(ctx.path, rev)
        else:
            commit = self.reader.default_head(ctx.path, ctx.repo.default_branch)
        # The card, the file list and the answer's JSON all come from client data: off the loop.
        info = self.repos.info(ctx.repo)

        def answer() -> str:
            data = self.describe(ctx, commit, self.max_listed_files)
            if self.fields is not None and self.fields.active():
                data = self.fields.add(info, commit, data)  # plugins' fields (gitd_repo_info)
            return dumps_in_pieces(data)

        text = await self.offload.run(answer, what="the repository info")
        return web.Response(text=text, content_type="application/json")

    def describe(self, ctx: RepoCtx, commit: str | None, siblings: int) -> dict[str, Any]:
        """The repository's info; ``siblings`` > 0 lists up to that many of its files."""
        repo = ctx.repo
        card = self.cards.card(ctx.path, commit, repo.full_name)
        out: dict[str, Any] = {
            "_id": f"{repo.id:024x}",
            "id": repo.full_name,
            "author": repo.namespace,
            "sha": commit,
            "lastModified": iso(self.reader.commit(ctx.path, commit).commit_time) if commit else repo.updated_at,
            "createdAt": repo.created_at,
            "private": repo.private,
            "disabled": False,
            "gated": (self.access.gates.mode(repo.id) if self.access.gates else None) or False,
            "downloads": 0,
            "likes": self.likes.count(repo.id) if self.likes is not None else 0,
            "tags": card_tags(card or {}),
            "description": repo.description,
        }
        if card is not None:  # an invalid card is left out (the log says why)
            out["cardData"] = card
        card = card or {}
        if repo.type == "model":
            out["modelId"] = repo.full_name
            for key in ("pipeline_tag", "library_name"):
                if isinstance(card.get(key), str):
                    out[key] = card[key]
        if repo.type == "space":
            out["sdk"] = card.get("sdk") if isinstance(card.get("sdk"), str) else None
        if siblings > 0:
            walk = self._files(ctx.path, commit, siblings) if commit is not None else Walk()
            files = [self.view.sibling_json(repo.id, e) for e in walk.entries]
            out["siblings"] = files
            out["usedStorage"] = sum(f.get("size", 0) for f in files)
            if walk.truncated:
                out["siblingsTruncated"] = True
        return out

    def _files(self, path: Path, commit: str, limit: int) -> Walk:
        """Up to ``limit`` files of a commit (cached by commit, within a bound on the entries all
        cached lists hold together)."""
        key = (str(path), commit, limit)
        found = self._file_lists.get(key)
        if found is None:
            # Up to ``limit`` files; folders count towards the walk's budget too, within bounds.
            found = self.reader.walk(path, commit, recursive=True, limit=4 * limit, max_entries=limit,
                                     files_only=True)
            self._file_lists.put(key, found, len(found.entries))
        return found

    # -- listings --------------------------------------------------------------------------------------
    async def listing(self, request: web.Request, m: Match) -> web.StreamResponse:
        repo_type = API_TYPES.get(m.params["types"])
        if repo_type is None:
            raise NotFound(f"no such listing {m.params['types']!r}")
        text, headers = await self.offload.run(self._listing, request, repo_type, what="the repository listing")
        return web.Response(text=text, content_type="application/json", headers=headers)

    def _listing(self, request: web.Request, repo_type: str) -> tuple[str, dict[str, str]]:
        query = request.query
        # refused by name: a filter ignored would list what the caller asked to leave out
        refuse_params(request, UNSUPPORTED_LISTING_FILTERS, "listing filter(s)")
        owner = None
        if query.get("author"):
            owner = self.repos.accounts.find(query["author"])
            if owner is None:
                return "[]", {}
        sort = query.get("sort")
        if sort and sort not in SORTS:
            raise BadRequest(f"sort={sort[:50]!r} is not supported by this server; it sorts by "
                             f"{', '.join(sorted(SORTS))}", code="UnsupportedParameter")
        full = bool_param(request, "full") or bool_param(request, "cardData")
        # Full descriptions list files: fewer repositories per page, and fewer files per repository
        # than model_info does (clients follow the Link header to the next page).
        most = LIST_PAGE_FULL if full else LIST_PAGE
        q = ListingQuery(self.access.readable(principal(request)), repo_type, owner,
                         searches=[s for s in query.getall("search", []) if s], filters=tag_filters(query),
                         order=SORTS.get(sort or "", "id"), descending=sort in SORTS and query.get("direction") != "1",
                         offset=int_param(request, "cursor", 0), limit=int_param(request, "limit", most, lo=1, hi=most),
                         narrow=self._gated_filter(request))
        expand = expand_of(request, repo_type)
        # list_models(fetch_config=True): each model's config (what the metadata plugin read of its config.json)
        extra = ["config"] if bool_param(request, "config") and not full else []
        rows, more = self.listing_rows.page(q, lambda r: self._brief(request, r, False, []))
        described = [self._brief(request, r, full, expand, extra) for r in rows]
        headers = {}
        if more:
            headers["Link"] = next_link(self.base(request), request, cursor=q.offset + q.limit)
        return dumps(described), headers

    def _gated_filter(self, request: web.Request) -> list[RepoIds]:
        """``gated=true|false`` (list_models/list_datasets(gated=...)): only gated, or only open, repositories."""
        raw = request.query.get("gated")
        if raw is None:
            return []
        wanted = {"true": True, "1": True, "false": False, "0": False}.get(raw.strip().lower())
        if wanted is None:
            raise BadRequest("gated must be true or false")
        gates = self.access.gates

        def among(batch: Sequence[int]) -> list[int]:
            return [i for i in batch if (gates is not None and gates.mode(i) is not None) == wanted]

        # Counted as many: the listing walks its own order and asks which of each batch are gated.
        return [RepoIds(RepoIds.MANY + 1, list, among)]

    def _brief(self, request: web.Request, repo: Repo, full: bool, expand: list[str],
               extra: list[str] | None = None) -> dict[str, Any]:
        """A listing's entry: what ``list_models`` shows by default (plugins' values for those
        keys merged in, and the ``extra`` keys asked for: ``config``), everything with ``full``,
        or ``id`` and the ``expand``ed keys."""
        path = self.repos.path(repo)
        try:
            commit = self.reader.default_head(path, repo.default_branch)
        except NotFound:
            commit = None
        ctx = RepoCtx(repo, path, AccessLevel.READ, principal(request))
        listed = min(LIST_SIBLINGS, self.max_listed_files) if full or "siblings" in expand else 0
        d = self.describe(ctx, commit, listed)
        shown = (set(d) | {"pipeline_tag", "library_name"}) - {"cardData", "siblings", "usedStorage",
                                                                "siblingsTruncated"} | set(extra or ())
        if self.fields is not None and self.fields.active():
            d = self.fields.add(self.repos.info(repo), commit, d)
        if expand:
            return {k: v for k, v in d.items() if k in expand or k in ("_id", "id")}
        return d if full else {k: v for k, v in d.items() if k in shown}
