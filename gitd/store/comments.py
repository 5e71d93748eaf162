"""Comments on discussions and pull requests (the first post is the discussion's description)."""

from __future__ import annotations

from dataclasses import dataclass

from gitd.store.db import Store, utcnow


@dataclass(frozen=True)
class Comment:
    id: int
    author: str | None
    body: str
    created_at: str


class Comments:
    def __init__(self, store: Store):
        self.store = store

    def add(self, discussion_id: int, author_id: int | None, body: str) -> None:
        self.store.db.execute("INSERT INTO discussion_comments (discussion_id, author_id, body, created_at) "
                              "VALUES (?, ?, ?, ?)", [discussion_id, author_id, body, utcnow()])

    def of(self, discussion_id: int, *, limit: int = 1000) -> list[Comment]:
        rows = self.store.db.execute(
            "SELECT c.id, a.name, c.body, c.created_at FROM discussion_comments c "
            "LEFT JOIN accounts a ON a.id = c.author_id WHERE c.discussion_id = ? ORDER BY c.id LIMIT ?",
            [discussion_id, limit]).fetchall()
        return [Comment(*row) for row in rows]
