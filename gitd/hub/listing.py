"""The repository listings' query (``list_models``, ``list_datasets``, ...): which rows, in
which order, one page of them.

Everything that decides which repositories a page holds is SQL (``Repos.listing``):
what the caller may read, the type, the author, ``search``, the order and the page, so
a page costs about the same over 100 or 100,000 repositories and nothing is done for a
row that is not shown. Tag filters (``filter=``, ``pipeline_tag=``, ``library=``, ...)
are answered by plugins that index repositories (the ``gitd_repo_filter`` hook); the
answers are intersected with the rest in SQL, or, when a plugin matches many, checked
batch by batch as the listing walks its order. Without such a plugin, the cards' tags
are checked row by row (``filter_by_cards``), as gitd did before plugins indexed tags.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

from gitd.access.rules import Readable
from gitd.plugins.filters import RepoFilters, RepoIds
from gitd.store import Account, Repo, Repos

# A plugin's matches up to this many are fetched whole and intersected in SQL; beyond,
# the listing walks its own order and asks the plugin about each batch it might show
# (batches grow from about the page's size to BATCH * 4).
SMALL_MATCH = RepoIds.MANY
BATCH = 500
# sort= values -> Repos.LIST_ORDERS keys. gitd counts no downloads and keeps no trending
# score (every repository's is 0): those sort by id, as ties would. Any other sort= is refused.
SORTS = {"lastModified": "updated", "last_modified": "updated", "createdAt": "created", "created_at": "created",
         "id": "name", "likes": "likes", "downloads": "id", "trendingScore": "id", "trending_score": "id"}
# Query keys that filter by tags, besides filter= and tags= (both "tags").
TAG_KEYS = ("pipeline_tag", "library", "language", "license")


def tag_filters(query: Any) -> dict[str, list[str]]:
    """The tag filters of a listing's query string (a MultiDict): {"tags": [...], "pipeline_tag": [...]}."""
    out: dict[str, list[str]] = {}
    tags = [v for key in ("filter", "tags") for v in query.getall(key, []) if v]
    if tags:
        out["tags"] = tags
    for key in TAG_KEYS:
        values = [v for v in query.getall(key, []) if v]
        if values:
            out[key] = values
    return out


def card_match(described: dict[str, Any], full_name: str, filters: dict[str, list[str]]) -> bool:
    """Whether a described repository (its card's tags and fields) matches every filter."""
    tags = described.get("tags") or []
    checks = {
        "tags": lambda v: v in tags or v == full_name,
        "pipeline_tag": lambda v: described.get("pipeline_tag") == v,
        "library": lambda v: described.get("library_name") == v or v in tags,
        "language": lambda v: v in tags or f"language:{v}" in tags,
        "license": lambda v: f"license:{v}" in tags,
    }
    return all(checks.get(key, lambda v: False)(v) for key, values in filters.items() for v in values)


@dataclass
class ListingQuery:
    readable: Readable
    repo_type: str
    owner: Account | None = None
    searches: list[str] = field(default_factory=list)
    filters: dict[str, list[str]] = field(default_factory=dict)
    order: str = "id"
    descending: bool = False
    offset: int = 0
    limit: int = 1000
    # More narrowing, as plugins' filter answers are (the daemon's own: gated repositories)
    narrow: list[RepoIds] = field(default_factory=list)

    def where(self) -> dict[str, Any]:
        return {"repo_type": self.repo_type, "owner": self.owner, "search": self.searches, "order": self.order,
                "descending": self.descending}


class RepoListing:
    def __init__(self, repo_rows: Repos, filters: RepoFilters | None = None):
        self.repo_rows = repo_rows
        self.filters = filters

    def page(self, q: ListingQuery, describe: Callable[[Repo], dict[str, Any]]) -> tuple[list[Repo], bool]:
        """The rows of the page ``q`` asks for, and whether a next page exists (blocking).
        ``describe`` is used only when no plugin answers the tag filters."""
        if not q.filters:
            rows = (self._by_plugins(q, q.narrow) if q.narrow else
                    self.repo_rows.listing(q.readable, **q.where(), offset=q.offset, limit=q.limit + 1))
        else:
            matches = self.filters.match(q.repo_type, q.filters) if self.filters is not None else None
            rows = self._by_cards(q, describe) if matches is None else self._by_plugins(q, matches + q.narrow)
        return rows[:q.limit], len(rows) > q.limit

    def _by_plugins(self, q: ListingQuery, matches: list[RepoIds]) -> list[Repo]:
        smallest = min(matches, key=lambda m: m.count)
        if smallest.count <= SMALL_MATCH:
            ids = sorted({int(i) for i in smallest.all()})
            for other in matches:
                if other is not smallest and ids:
                    ids = sorted({int(i) for i in other.among(ids)})
            return self.repo_rows.listing(q.readable, **q.where(), ids=ids, offset=q.offset, limit=q.limit + 1)
        wanted = q.offset + q.limit + 1
        found: list[int] = []
        # a first batch about the page's size (enough when most repositories match), then more
        first = min(BATCH, max(64, 2 * wanted))
        with closing(self.repo_rows.listing_ids(q.readable, **q.where(), batch=first, max_batch=BATCH * 4)) as batches:
            for batch in batches:
                found.extend(_among(matches, batch))
                if len(found) >= wanted:
                    break
        page = found[q.offset:wanted]
        return self.repo_rows.listing(q.readable, **q.where(), ids=page, limit=len(page)) if page else []

    def _by_cards(self, q: ListingQuery, describe: Callable[[Repo], dict[str, Any]]) -> list[Repo]:
        wanted = q.offset + q.limit + 1
        found: list[Repo] = []
        start = 0
        while len(found) < wanted:
            rows = self.repo_rows.listing(q.readable, **q.where(), offset=start, limit=BATCH)
            kept = set(_among(q.narrow, [r.id for r in rows])) if q.narrow else None
            found.extend(r for r in rows if (kept is None or r.id in kept)
                         and card_match(describe(r), r.full_name, q.filters))
            if len(rows) < BATCH:
                break
            start += BATCH
        return found[q.offset:wanted]


def _among(matches: list[RepoIds], batch: Sequence[int]) -> list[int]:
    keep = list(batch)
    for m in matches:
        if not keep:
            break
        hit = {int(i) for i in m.among(keep)}
        keep = [i for i in keep if i in hit]
    return keep
