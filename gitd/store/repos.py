"""Repository rows. The on-disk side lives in gitd.repos."""

from __future__ import annotations

import sqlite3
from typing import Any

from gitd.errors import Conflict, NotFound
from gitd.store.db import StampedCache, Store, utcnow
from gitd.store.models import Account, Repo

_SELECT = (
    "SELECT r.*, a.name AS namespace FROM repos r JOIN accounts a ON a.id = r.owner_id"
)


class Repos:
    def __init__(self, store: Store):
        self.store = store
        # find() answers: the hot path of every request that names a repository.
        self._found = StampedCache(store)

    def _one(self, where: str, args: list[Any]) -> Repo | None:
        rows = self._query(where, args)
        return rows[0] if rows else None

    def _query(self, where: str, args: list[Any], order: str = "r.id", limit: int | None = None) -> list[Repo]:
        sql = f"{_SELECT} WHERE {where} ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [Repo.from_row(row) for row in self.store.db.query(sql, args)]

    def insert(self, owner: Account, name: str, repo_type: str, *, private: bool, default_branch: str) -> Repo:
        now = utcnow()
        try:
            with self.store.transaction() as db:
                db["repos"].insert(
                    {"owner_id": owner.id, "name": name, "type": repo_type, "private": int(private),
                     "default_branch": default_branch, "description": "", "created_at": now, "updated_at": now}
                )
                repo_id = db.execute("SELECT last_insert_rowid()").fetchone()[0]
        except sqlite3.IntegrityError:
            raise Conflict(f"{repo_type} repository {owner.name}/{name} already exists")
        repo = self.by_id(repo_id)
        assert repo is not None
        return repo

    def by_id(self, repo_id: int) -> Repo | None:
        return self._one("r.id = ?", [repo_id])

    def find(self, repo_type: str, namespace: str, name: str) -> Repo | None:
        known = self._found.current()
        key = (repo_type, namespace.lower(), name.lower())
        if key in known:
            return known[key]
        repo = self._one(
            "r.type = ? AND a.name = ? COLLATE NOCASE AND r.name = ? COLLATE NOCASE",
            [repo_type, namespace, name],
        )
        self._found.remember(known, key, repo)
        return repo

    def get(self, repo_type: str, namespace: str, name: str) -> Repo:
        repo = self.find(repo_type, namespace, name)
        if repo is None:
            raise NotFound(f"no {repo_type} repository {namespace}/{name}")
        return repo

    def list(
        self, *, repo_type: str | None = None, owner: Account | None = None, search: str | None = None,
        order: str = "r.id", limit: int | None = None,
    ) -> list[Repo]:
        clauses, args = ["1 = 1"], []
        if repo_type:
            clauses.append("r.type = ?")
            args.append(repo_type)
        if owner is not None:
            clauses.append("r.owner_id = ?")
            args.append(owner.id)
        if search:
            clauses.append("(a.name || '/' || r.name) LIKE ? ESCAPE '\\'")
            escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            args.append(f"%{escaped}%")
        return self._query(" AND ".join(clauses), args, order=order, limit=limit)

    def update(self, repo: Repo, **fields: Any) -> Repo:
        if "private" in fields:
            fields["private"] = int(fields["private"])
        fields["updated_at"] = utcnow()
        try:
            self.store.db["repos"].update(repo.id, fields)
        except sqlite3.IntegrityError:
            raise Conflict("a repository with that name already exists")
        updated = self.by_id(repo.id)
        assert updated is not None
        return updated

    def touch_id(self, repo_id: int) -> bool:
        """Mark the repository as just updated; False if there is no such repository."""
        return self.store.db.conn.execute("UPDATE repos SET updated_at = ? WHERE id = ?",
                                          [utcnow(), repo_id]).rowcount > 0

    def delete(self, repo: Repo) -> None:
        self.store.db.execute("DELETE FROM repos WHERE id = ?", [repo.id])
