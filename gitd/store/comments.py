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
    edited_at: str | None = None
    hidden: bool = False
    seq: int = 0  # its place in the discussion's timeline, shared with DiscussionEvent.seq


_SELECT = ("SELECT c.id, a.name, c.body, c.created_at, c.edited_at, c.hidden, c.seq FROM discussion_comments c "
           "LEFT JOIN accounts a ON a.id = c.author_id")


class Comments:
    def __init__(self, store: Store):
        self.store = store

    def add(self, discussion_id: int, author_id: int | None, body: str) -> Comment:
        cur = self.store.db.execute("INSERT INTO discussion_comments (discussion_id, author_id, body, created_at) "
                                    "VALUES (?, ?, ?, ?)", [discussion_id, author_id, body, utcnow()])
        found = self.get(discussion_id, int(cur.lastrowid or 0))
        assert found is not None
        return found

    def get(self, discussion_id: int, comment_id: int) -> Comment | None:
        row = self.store.db.execute(f"{_SELECT} WHERE c.discussion_id = ? AND c.id = ?",
                                    [discussion_id, comment_id]).fetchone()
        return Comment(*row[:5], bool(row[5]), row[6]) if row else None

    def edit(self, comment_id: int, body: str) -> None:
        self.store.db.execute("UPDATE discussion_comments SET body = ?, edited_at = ? WHERE id = ?",
                              [body, utcnow(), comment_id])

    def hide(self, comment_id: int) -> None:
        self.store.db.execute("UPDATE discussion_comments SET hidden = 1 WHERE id = ?", [comment_id])

    def of(self, discussion_id: int, *, limit: int = 1000) -> list[Comment]:
        rows = self.store.db.execute(f"{_SELECT} WHERE c.discussion_id = ? ORDER BY c.id LIMIT ?",
                                     [discussion_id, limit]).fetchall()
        return [Comment(*row[:5], bool(row[5]), row[6]) for row in rows]

    def count(self, discussion_id: int) -> int:
        row = self.store.db.execute("SELECT COUNT(*) FROM discussion_comments WHERE discussion_id = ?",
                                    [discussion_id]).fetchone()
        return int(row[0])
