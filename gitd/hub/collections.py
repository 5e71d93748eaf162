"""Collections through the Hub API (huggingface_hub's list_collections, get_collection,
create_collection, update_collection_metadata, delete_collection, add_collection_item,
update_collection_item, delete_collection_item).

A collection belongs to a user or an organisation: their writers change it. A private
collection is 404 to everyone outside its namespace and never listed to them; and a
collection shows each viewer only the repositories that viewer may read, so adding a
private repository to a public collection reveals nothing."""

from __future__ import annotations

import re
import secrets
from typing import Any

from aiohttp import web

from gitd.access.rules import Access, AccessLevel, Principal
from gitd.errors import BadRequest, Conflict, NotFound, Unauthorized
from gitd.http.context import principal, read_json
from gitd.http.errors import error_response
from gitd.http.routing import Match, Router
from gitd.hub.common import API_TYPES, int_param, json_response
from gitd.names import is_valid_name
from gitd.store import Account, Accounts, Repo, Repos
from gitd.store.collections import Collection, CollectionItem, Collections

MAX_TITLE = 60
MAX_DESCRIPTION = 150
MAX_NOTE = 500
MAX_ITEMS = 1000
ITEM_TYPES = ("model", "dataset", "space")
LISTED_ITEMS = 4  # as on the Hub: a listing shows each collection's first items only


def slugify(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:MAX_TITLE] or "collection"


class HubCollections:
    def __init__(self, collections: Collections, accounts: Accounts, repo_rows: Repos, access: Access):
        self.collections = collections
        self.accounts = accounts
        self.repo_rows = repo_rows
        self.access = access

    def add_routes(self, router: Router) -> None:
        one = "/api/collections/{ns}/{slug}"
        router.add("GET", "/api/collections", self.list, style="hub", name="hub-collections")
        router.add("POST", "/api/collections", self.create, style="hub", name="hub-collection-create")
        router.add("GET", one, self.get, style="hub", name="hub-collection")
        router.add("PATCH", one, self.update, style="hub", name="hub-collection-update")
        router.add("DELETE", one, self.delete, style="hub", name="hub-collection-delete")
        router.add("POST", one + "/items", self.add_item, style="hub", name="hub-collection-item-add")
        router.add("PATCH", one + "/items/{item}", self.update_item, style="hub", name="hub-collection-item")
        router.add("DELETE", one + "/items/{item}", self.delete_item, style="hub", name="hub-collection-item-delete")

    # -- who sees what ----------------------------------------------------------------------------
    def _sees(self, who: Principal, c: Collection) -> bool:
        return not c.private or self.access.namespace_level(who, self.accounts.by_id(c.owner_id)) >= AccessLevel.READ

    def _found(self, request: web.Request, m: Match, needed: AccessLevel = AccessLevel.READ
               ) -> tuple[Principal, Collection]:
        who = principal(request)
        slug = f"{m.params['ns']}/{m.params['slug']}"
        c = self.collections.by_slug(slug) if len(slug) < 300 else None
        if c is None or not self._sees(who, c):
            raise NotFound(f"collection {slug[:200]!r} does not exist", code="CollectionNotFound")
        if needed > AccessLevel.READ:
            self.access.require_namespace(who, self.accounts.by_id(c.owner_id), needed)
        return who, c

    def _readable(self, who: Principal, repo_id: int) -> Repo | None:
        repo = self.repo_rows.by_id(repo_id)
        return repo if repo is not None and self.access.level(who, repo, gate=False) >= AccessLevel.READ else None

    def _item_json(self, item: CollectionItem, repo: Repo) -> dict[str, Any]:
        out: dict[str, Any] = {"_id": f"{item.id:024x}", "id": repo.full_name, "type": repo.type,
                               "position": item.position, "private": repo.private,
                               "repoType": repo.type, "author": repo.namespace, "lastModified": repo.updated_at}
        if item.note:
            out["note"] = {"text": item.note, "html": ""}
        return out

    def _json(self, who: Principal, c: Collection, *, items: int | None = None) -> dict[str, Any]:
        owner = self.accounts.by_id(c.owner_id)
        shown = []
        for item in self.collections.items(c.id):
            repo = self._readable(who, item.repo_id)
            if repo is not None:
                shown.append(self._item_json(item, repo))
            if items is not None and len(shown) >= items:
                break
        return {"slug": c.slug, "title": c.title, "description": c.description,
                "owner": {"name": owner.name, "type": owner.kind}, "items": shown, "lastUpdated": c.updated_at,
                "position": c.position, "private": c.private, "theme": c.theme, "upvotes": 0,
                "isUpvotedByUser": False}

    # -- collections ---------------------------------------------------------------------------------
    async def list(self, request: web.Request, m: Match) -> web.StreamResponse:
        who = principal(request)
        sort = request.query.get("sort")
        if sort not in (None, "", "lastModified", "trending", "upvotes"):
            raise BadRequest("sort must be lastModified, trending or upvotes")
        owner_ids = None
        if request.query.get("owner"):
            owner = self.accounts.find(request.query["owner"]) if is_valid_name(request.query["owner"]) else None
            owner_ids = [owner.id] if owner is not None else []
        repo_id = None
        if request.query.get("item"):
            kind, _, full = request.query["item"].partition("/")
            ns, _, name = full.partition("/")
            repo = self.repo_rows.find(API_TYPES.get(kind, ""), ns, name) \
                if kind in API_TYPES and is_valid_name(ns) and is_valid_name(name) else None
            if repo is None or self.access.level(who, repo, gate=False) < AccessLevel.READ:
                return json_response([])
            repo_id = repo.id
        limit = int_param(request, "limit", 100, lo=1, hi=100)
        found = self.collections.listed(owner_ids=owner_ids, repo_id=repo_id, query=request.query.get("q"),
                                        limit=1000)
        shown = [c for c in found if self._sees(who, c)][:limit]
        # huggingface_hub passes each listed collection's position itself (its place in the list)
        return json_response([{k: v for k, v in self._json(who, c, items=LISTED_ITEMS).items() if k != "position"}
                              for c in shown])

    async def get(self, request: web.Request, m: Match) -> web.StreamResponse:
        who, c = self._found(request, m)
        return json_response(self._json(who, c))

    @staticmethod
    def _text(value: Any, what: str, limit: int, *, required: bool = False) -> str | None:
        if value is None and not required:
            return None
        if not isinstance(value, str) or (required and not value.strip()) or len(value) > limit:
            raise BadRequest(f"{what} must be text of 1 to {limit} characters" if required else
                             f"{what} must be text of at most {limit} characters")
        return value.strip()

    async def create(self, request: web.Request, m: Match) -> web.StreamResponse:
        who = principal(request)
        if who.account is None:
            raise Unauthorized("sign in to create a collection")
        body = await read_json(request, allow_empty=False)
        unknown = sorted(str(k)[:40] for k in body if k not in ("title", "namespace", "private", "description"))
        if unknown:  # resourceGroupId: the Hub's resource groups, which gitd does not have
            raise BadRequest(f"unsupported collection field(s): {', '.join(unknown)}")
        title = self._text(body.get("title"), "title", MAX_TITLE, required=True)
        assert title is not None
        namespace = body.get("namespace") or who.account.name
        owner: Account | None = self.accounts.find(namespace) if isinstance(namespace, str) and \
            is_valid_name(namespace) else None
        self.access.require_namespace(who, owner, AccessLevel.WRITE)
        assert owner is not None
        private = body.get("private", False)
        if not isinstance(private, bool):
            raise BadRequest("private must be true or false")
        existing = self.collections.by_title(owner.id, title)
        if existing is not None:
            return error_response(Conflict(f"{owner.name} has a collection titled {title!r} already"), "hub",
                                  slug=existing.slug)
        description = self._text(body.get("description"), "description", MAX_DESCRIPTION) or ""
        slug = f"{owner.name}/{slugify(title)}-{secrets.token_hex(12)}"
        return json_response(self._json(who, self.collections.create(owner.id, slug, title, description, private)))

    async def update(self, request: web.Request, m: Match) -> web.StreamResponse:
        who, c = self._found(request, m, AccessLevel.WRITE)
        body = await read_json(request, allow_empty=False)
        unknown = sorted(str(k)[:40] for k in body if k not in ("title", "description", "position", "private",
                                                                 "theme"))
        if unknown:
            raise BadRequest(f"unsupported collection field(s): {', '.join(unknown)}")
        private = body.get("private")
        if private is not None and not isinstance(private, bool):
            raise BadRequest("private must be true or false")
        position = body.get("position")
        if position is not None and (not isinstance(position, int) or isinstance(position, bool) or position < 0):
            raise BadRequest("position must be a non-negative integer")
        theme = body.get("theme")
        if theme is not None and theme not in ("default", "orange", "blue", "green", "purple", "pink", "indigo"):
            raise BadRequest("theme must be default, orange, blue, green, purple, pink or indigo")
        self.collections.update(c.id, title=self._text(body.get("title"), "title", MAX_TITLE),
                                description=self._text(body.get("description"), "description", MAX_DESCRIPTION),
                                private=private, position=position, theme=theme)
        updated = self.collections.by_slug(c.slug)
        assert updated is not None
        return json_response({"data": self._json(who, updated)})

    async def delete(self, request: web.Request, m: Match) -> web.StreamResponse:
        _, c = self._found(request, m, AccessLevel.WRITE)
        self.collections.delete(c.id)
        return json_response({})

    # -- items ---------------------------------------------------------------------------------------
    async def add_item(self, request: web.Request, m: Match) -> web.StreamResponse:
        who, c = self._found(request, m, AccessLevel.WRITE)
        body = await read_json(request, allow_empty=False)
        item = body.get("item")
        kind, full = (item.get("type"), item.get("id")) if isinstance(item, dict) else (None, None)
        if kind not in ITEM_TYPES:
            raise BadRequest(f"item type must be one of {', '.join(ITEM_TYPES)} (gitd has no papers, and "
                             "collections do not nest here)")
        ns, _, name = full.partition("/") if isinstance(full, str) else ("", "", "")
        repo = self.repo_rows.find(kind, ns, name) if is_valid_name(ns) and is_valid_name(name) else None
        if repo is None or self.access.level(who, repo, gate=False) < AccessLevel.READ:
            raise NotFound(f"no {kind} repository named {str(full)[:200]!r}", code="RepoNotFound")
        note = self._text(body.get("note"), "note", MAX_NOTE)
        if len(self.collections.items(c.id)) >= MAX_ITEMS:
            raise BadRequest(f"a collection holds at most {MAX_ITEMS} items")
        if not self.collections.add_item(c.id, repo.id, note):
            raise Conflict(f"{repo.full_name} is in the collection already")
        updated = self.collections.by_slug(c.slug)
        assert updated is not None
        return json_response(self._json(who, updated))

    def _item(self, who: Principal, c: Collection, raw: str) -> CollectionItem:
        try:
            item = self.collections.item(c.id, int(raw, 16)) if len(raw) <= 24 else None
        except ValueError:
            item = None
        if item is None or self._readable(who, item.repo_id) is None:
            raise NotFound(f"no item {raw[:30]!r} in this collection")
        return item

    async def update_item(self, request: web.Request, m: Match) -> web.StreamResponse:
        who, c = self._found(request, m, AccessLevel.WRITE)
        item = self._item(who, c, m.params["item"])
        body = await read_json(request, allow_empty=False)
        position = body.get("position")
        if position is not None and (not isinstance(position, int) or isinstance(position, bool) or position < 0):
            raise BadRequest("position must be a non-negative integer")
        self.collections.update_item(item.id, note=self._text(body.get("note"), "note", MAX_NOTE), position=position)
        return json_response({})

    async def delete_item(self, request: web.Request, m: Match) -> web.StreamResponse:
        who, c = self._found(request, m, AccessLevel.WRITE)
        self.collections.delete_item(self._item(who, c, m.params["item"]).id)
        return json_response({})
