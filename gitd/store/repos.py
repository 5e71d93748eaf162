"""Repository rows. The on-disk side lives in gitd.repos."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from gitd.errors import Conflict, NotFound
from gitd.store.db import StampedCache, Store, utcnow
from gitd.store.models import Account, Repo

if TYPE_CHECKING:
    from gitd.access.rules import Readable

# Listing orders: a column each, so that ORDER BY ... LIMIT walks an index (migration 5).
LIST_ORDERS = {"id": "r.id", "updated": "r.updated_at", "created": "r.created_at", "likes": "r.likes",
               "name": "(a.name || '/' || r.name) COLLATE NOCASE"}
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
        clauses, args = self._list_clauses(repo_type, owner, search)
        return self._query(" AND ".join(clauses), args, order=order, limit=limit)

    @staticmethod
    def _list_clauses(repo_type: str | None, owner: Account | None,
                      search: str | Sequence[str] | None) -> tuple[list[str], list[Any]]:
        clauses, args = ["1 = 1"], []
        if repo_type:
            clauses.append("r.type = ?")
            args.append(repo_type)
        if owner is not None:
            clauses.append("r.owner_id = ?")
            args.append(owner.id)
        for text in [search] if isinstance(search, str) else search or []:
            if not text:
                continue
            clauses.append("(a.name || '/' || r.name) LIKE ? ESCAPE '\\'")
            escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            args.append(f"%{escaped}%")
        return clauses, args

    # -- listings: visibility, filters, order and paging in SQL ---------------------------------
    def _listing_where(self, readable: Readable, repo_type: str | None, owner: Account | None,
                       search: str | Sequence[str] | None,
                       ids: Collection[int] | None) -> tuple[str, list[Any]]:
        clauses, args = self._list_clauses(repo_type, owner, search)
        if readable.repo_id is not None:
            clauses.append("r.id = ?")
            args.append(readable.repo_id)
        if not readable.everything:
            seen = ["r.private = 0"] if readable.public else []
            if readable.owners:
                seen.append(f"r.owner_id IN ({','.join('?' * len(readable.owners))})")
                args.extend(sorted(readable.owners))
            clauses.append("(" + " OR ".join(seen or ["0"]) + ")")
        if ids is not None:
            clauses.append("r.id IN (SELECT value FROM json_each(?))")
            args.append(json.dumps(sorted(ids)))
        return " AND ".join(clauses), args

    @staticmethod
    def _order(order: str, descending: bool, *, by_index: bool = True) -> str:
        """ORDER BY for ``order``; ``by_index=False`` keeps SQLite from walking the order's index
        (for a short list of ids it is cheaper to look them up and sort them)."""
        direction = " DESC" if descending else ""
        column = LIST_ORDERS[order] if by_index else f"+{LIST_ORDERS[order]}"
        return f"{column}{direction}, r.id{direction}"

    def listing(self, readable: Readable, *, repo_type: str | None = None, owner: Account | None = None,
                search: str | Sequence[str] | None = None, ids: Collection[int] | None = None, order: str = "id",
                descending: bool = False, offset: int = 0, limit: int = 1000) -> list[Repo]:
        """One page of the repositories ``readable`` allows, in ``order`` (a key of
        LIST_ORDERS), optionally only those in ``ids``: visibility, filters, order, offset and
        limit are all SQL, so a page costs the same with 100 or 100,000 repositories."""
        if readable.nothing or (ids is not None and not ids):
            return []
        where, args = self._listing_where(readable, repo_type, owner, search, ids)
        order_by = self._order(order, descending, by_index=ids is None)
        sql = f"{_SELECT} WHERE {where} ORDER BY {order_by} LIMIT ? OFFSET ?"
        return [Repo.from_row(row) for row in self.store.db.query(sql, [*args, int(limit), int(offset)])]

    def listing_ids(self, readable: Readable, *, repo_type: str | None = None, owner: Account | None = None,
                    search: str | Sequence[str] | None = None, order: str = "id", descending: bool = False,
                    batch: int = 500, max_batch: int | None = None) -> Iterator[list[int]]:
        """The ids ``listing`` would answer, all of them, in batches read lazily from one
        cursor: ``batch`` first, each next one twice as many, up to ``max_batch``."""
        if readable.nothing:
            return
        where, args = self._listing_where(readable, repo_type, owner, search, None)
        sql = (f"SELECT r.id FROM repos r JOIN accounts a ON a.id = r.owner_id WHERE {where} "
               f"ORDER BY {self._order(order, descending)}")
        cursor = self.store.db.conn.execute(sql, args)
        size, most = batch, max(batch, max_batch or batch)
        try:
            while rows := cursor.fetchmany(size):
                yield [row[0] for row in rows]
                size = min(size * 2, most)
        finally:
            cursor.close()

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
