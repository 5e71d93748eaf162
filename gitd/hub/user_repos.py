"""The repositories of an account with the storage each takes (``/api/settings/repositories``
and ``/api/organizations/{org}/settings/repositories``: huggingface_hub's list_user_repos,
which ``hf repos ls`` uses). Storage is the repository's git directory on disk plus the
Git LFS objects it holds; an organisation's list is for its members only."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from aiohttp import web

from gitd.access.rules import Access, AccessLevel
from gitd.errors import NotFound, Unauthorized
from gitd.http.context import principal
from gitd.http.routing import Match, Router
from gitd.hub.common import json_response
from gitd.names import is_valid_name
from gitd.repos import RepoService
from gitd.store import Account, Accounts, Repos, Store

MAX_LISTED = 10_000


def tree_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


class HubUserRepos:
    def __init__(self, repos: RepoService, repo_rows: Repos, accounts: Accounts, access: Access, store: Store):
        self.repos = repos
        self.repo_rows = repo_rows
        self.accounts = accounts
        self.access = access
        self.store = store

    def add_routes(self, router: Router) -> None:
        router.add("GET", "/api/settings/repositories", self.mine, style="hub", name="hub-settings-repos")
        router.add("GET", "/api/organizations/{org}/settings/repositories", self.org, style="hub",
                   name="hub-org-settings-repos")

    def _lfs_bytes(self, repo_id: int) -> int:
        row = self.store.db.execute("SELECT COALESCE(SUM(o.size), 0) FROM lfs_repo_objects r JOIN lfs_objects o "
                                    "ON o.oid = r.oid WHERE r.repo_id = ? AND o.state = 'stored'",
                                    [repo_id]).fetchone()
        return int(row[0])

    def _listing(self, owner: Account) -> list[dict[str, Any]]:
        repos = self.repo_rows.list(owner=owner, order="r.updated_at DESC", limit=MAX_LISTED)
        sizes = [tree_size(self.repos.path(r)) + self._lfs_bytes(r.id) for r in repos]
        total = sum(sizes) or 1
        return [{"id": r.full_name, "type": r.type, "updatedAt": r.updated_at,
                 "visibility": "private" if r.private else "public", "storage": size,
                 "storagePercent": round(100.0 * size / total, 2)} for r, size in zip(repos, sizes, strict=True)]

    async def mine(self, request: web.Request, m: Match) -> web.StreamResponse:
        who = principal(request)
        if who.account is None:
            raise Unauthorized("sign in to list your repositories")
        if who.repo_id is not None:
            raise NotFound("this credential is limited to one repository")
        return json_response(await asyncio.to_thread(self._listing, who.account))

    async def org(self, request: web.Request, m: Match) -> web.StreamResponse:
        who = principal(request)
        name = m.params["org"]
        org = self.accounts.find(name) if is_valid_name(name) else None
        if org is None or org.kind != "org" or self.access.namespace_level(who, org) < AccessLevel.READ:
            if who.account is None:
                raise Unauthorized("authentication required")
            raise NotFound(f"no organisation {name[:100]!r} of yours")
        return json_response(await asyncio.to_thread(self._listing, org))
