"""Collections: an account's curated, ordered lists of repositories, public or private."""

from __future__ import annotations

from dataclasses import dataclass

from gitd.store.db import Store, utcnow


@dataclass(frozen=True)
class Collection:
    id: int
    owner_id: int
    slug: str
    title: str
    description: str
    private: bool
    theme: str
    position: int
    updated_at: str


@dataclass(frozen=True)
class CollectionItem:
    id: int
    collection_id: int
    repo_id: int
    note: str | None
    position: int


_COLS = "id, owner_id, slug, title, description, private, theme, position, updated_at"


def _collection(row: tuple) -> Collection:
    return Collection(row[0], row[1], row[2], row[3], row[4], bool(row[5]), row[6], row[7], row[8])


class Collections:
    def __init__(self, store: Store):
        self.store = store

    def by_slug(self, slug: str) -> Collection | None:
        row = self.store.db.execute(f"SELECT {_COLS} FROM collections WHERE slug = ?", [slug]).fetchone()
        return _collection(row) if row else None

    def by_title(self, owner_id: int, title: str) -> Collection | None:
        row = self.store.db.execute(f"SELECT {_COLS} FROM collections WHERE owner_id = ? AND title = ?",
                                    [owner_id, title]).fetchone()
        return _collection(row) if row else None

    def listed(self, *, owner_ids: list[int] | None = None, repo_id: int | None = None, query: str | None = None,
               limit: int = 100) -> list[Collection]:
        where, args = [], []
        if owner_ids is not None:
            where.append(f"owner_id IN ({','.join('?' * len(owner_ids))})" if owner_ids else "0")
            args += owner_ids
        if repo_id is not None:
            where.append("id IN (SELECT collection_id FROM collection_items WHERE repo_id = ?)")
            args.append(repo_id)
        if query:
            where.append("title LIKE ? ESCAPE '\\'")
            args.append("%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
        sql = f"SELECT {_COLS} FROM collections" + (" WHERE " + " AND ".join(where) if where else "")
        rows = self.store.db.execute(sql + " ORDER BY updated_at DESC, id DESC LIMIT ?", [*args, limit]).fetchall()
        return [_collection(r) for r in rows]

    def create(self, owner_id: int, slug: str, title: str, description: str, private: bool) -> Collection:
        now = utcnow()
        with self.store.transaction() as db:
            row = db.execute("SELECT COALESCE(MAX(position), -1) + 1 FROM collections WHERE owner_id = ?",
                             [owner_id]).fetchone()
            db.execute("INSERT INTO collections (owner_id, slug, title, description, private, position, created_at, "
                       "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       [owner_id, slug, title, description, int(private), int(row[0]), now, now])
        found = self.by_slug(slug)
        assert found is not None
        return found

    def update(self, collection_id: int, **values: object) -> None:
        values = {k: v for k, v in values.items() if v is not None}
        if "private" in values:
            values["private"] = int(bool(values["private"]))
        sets = [f"{k} = ?" for k in values] + ["updated_at = ?"]
        self.store.db.execute(f"UPDATE collections SET {', '.join(sets)} WHERE id = ?",
                              [*values.values(), utcnow(), collection_id])

    def delete(self, collection_id: int) -> None:
        self.store.db.execute("DELETE FROM collections WHERE id = ?", [collection_id])

    # -- items ---------------------------------------------------------------------------------------
    def items(self, collection_id: int) -> list[CollectionItem]:
        rows = self.store.db.execute("SELECT id, collection_id, repo_id, note, position FROM collection_items "
                                     "WHERE collection_id = ? ORDER BY position, id", [collection_id]).fetchall()
        return [CollectionItem(*r) for r in rows]

    def item(self, collection_id: int, item_id: int) -> CollectionItem | None:
        row = self.store.db.execute("SELECT id, collection_id, repo_id, note, position FROM collection_items "
                                    "WHERE collection_id = ? AND id = ?", [collection_id, item_id]).fetchone()
        return CollectionItem(*row) if row else None

    def add_item(self, collection_id: int, repo_id: int, note: str | None) -> bool:
        """False when the repository is in the collection already."""
        with self.store.transaction() as db:
            if db.execute("SELECT 1 FROM collection_items WHERE collection_id = ? AND repo_id = ?",
                          [collection_id, repo_id]).fetchone():
                return False
            row = db.execute("SELECT COALESCE(MAX(position), -1) + 1 FROM collection_items WHERE collection_id = ?",
                             [collection_id]).fetchone()
            db.execute("INSERT INTO collection_items (collection_id, repo_id, note, position, created_at) "
                       "VALUES (?, ?, ?, ?, ?)", [collection_id, repo_id, note, int(row[0]), utcnow()])
            db.execute("UPDATE collections SET updated_at = ? WHERE id = ?", [utcnow(), collection_id])
        return True

    def update_item(self, item_id: int, *, note: str | None = None, position: int | None = None) -> None:
        if note is not None:
            self.store.db.execute("UPDATE collection_items SET note = ? WHERE id = ?", [note, item_id])
        if position is not None:  # move it there; the others keep their order around it
            with self.store.transaction() as db:
                row = db.execute("SELECT collection_id FROM collection_items WHERE id = ?", [item_id]).fetchone()
                if row is None:
                    return
                ids = [r[0] for r in db.execute("SELECT id FROM collection_items WHERE collection_id = ? AND id != ? "
                                                "ORDER BY position, id", [row[0], item_id]).fetchall()]
                ids.insert(min(position, len(ids)), item_id)
                for index, one in enumerate(ids):
                    db.execute("UPDATE collection_items SET position = ? WHERE id = ?", [index, one])

    def delete_item(self, item_id: int) -> None:
        self.store.db.execute("DELETE FROM collection_items WHERE id = ?", [item_id])
