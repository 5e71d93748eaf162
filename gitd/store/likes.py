"""Likes: which accounts like which repositories."""

from __future__ import annotations

from gitd.store.db import Store, utcnow


class Likes:
    def __init__(self, store: Store):
        self.store = store

    def like(self, repo_id: int, account_id: int) -> None:
        self.store.db.execute("INSERT OR IGNORE INTO repo_likes (repo_id, account_id, created_at) VALUES (?, ?, ?)",
                              [repo_id, account_id, utcnow()])

    def unlike(self, repo_id: int, account_id: int) -> None:
        self.store.db.execute("DELETE FROM repo_likes WHERE repo_id = ? AND account_id = ?", [repo_id, account_id])

    def count(self, repo_id: int) -> int:
        return int(self.store.db.execute("SELECT COUNT(*) FROM repo_likes WHERE repo_id = ?", [repo_id]).fetchone()[0])

    def likers(self, repo_id: int, *, limit: int = 10_000) -> list[str]:
        rows = self.store.db.execute("SELECT a.name FROM repo_likes l JOIN accounts a ON a.id = l.account_id "
                                     "WHERE l.repo_id = ? ORDER BY l.created_at, a.name LIMIT ?",
                                     [repo_id, limit]).fetchall()
        return [r[0] for r in rows]

    def liked(self, account_id: int, *, limit: int = 10_000) -> list[tuple[int, str]]:
        """(repository id, when) of the account's likes, newest first."""
        rows = self.store.db.execute("SELECT repo_id, created_at FROM repo_likes WHERE account_id = ? "
                                     "ORDER BY created_at DESC LIMIT ?", [account_id, limit]).fetchall()
        return [(r[0], r[1]) for r in rows]
