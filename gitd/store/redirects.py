"""Where a moved repository went: old (type, namespace, name) -> repository id."""

from __future__ import annotations

from gitd.store.db import Store, utcnow


class Redirects:
    def __init__(self, store: Store):
        self.store = store

    def add(self, repo_type: str, namespace: str, name: str, repo_id: int) -> None:
        """Remember that ``namespace/name`` now lives in repository ``repo_id`` (latest move wins)."""
        self.store.db.execute(
            "INSERT INTO repo_redirects (type, namespace, name, repo_id, created_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (type, namespace, name) DO UPDATE SET repo_id = excluded.repo_id, "
            "created_at = excluded.created_at",
            [repo_type, namespace, name, repo_id, utcnow()],
        )

    def find(self, repo_type: str, namespace: str, name: str) -> int | None:
        row = self.store.db.execute(
            "SELECT repo_id FROM repo_redirects WHERE type = ? AND namespace = ? AND name = ?",
            [repo_type, namespace, name],
        ).fetchone()
        return int(row[0]) if row else None
