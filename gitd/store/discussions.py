"""Discussions and pull requests of a repository (the Hub's ``/discussions/N``; PR N is ref refs/pr/N)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gitd.store.db import Store, utcnow


@dataclass(frozen=True)
class Discussion:
    id: int
    repo_id: int
    num: int
    title: str
    description: str
    author: str | None
    is_pull_request: bool
    status: str
    created_at: str
    merge_commit: str | None = None
    edited_at: str | None = None
    hidden: bool = False

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Discussion:
        return cls(id=row["id"], repo_id=row["repo_id"], num=row["num"], title=row["title"],
                   description=row["description"], author=row["author"],
                   is_pull_request=bool(row["is_pull_request"]), status=row["status"],
                   created_at=row["created_at"], merge_commit=row.get("merge_commit"),
                   edited_at=row.get("edited_at"), hidden=bool(row.get("hidden")))


_SELECT = "SELECT d.*, a.name AS author FROM discussions d LEFT JOIN accounts a ON a.id = d.author_id"


class Discussions:
    def __init__(self, store: Store):
        self.store = store

    def create(self, repo_id: int, title: str, description: str, author_id: int | None, *,
               pull_request: bool) -> Discussion:
        """A new discussion with the repository's next number (numbers are never reused)."""
        with self.store.transaction() as db:
            row = db.execute("SELECT COALESCE(MAX(num), 0) + 1 FROM discussions WHERE repo_id = ?",
                             [repo_id]).fetchone()
            num = int(row[0])
            db.execute(
                "INSERT INTO discussions (repo_id, num, title, description, author_id, is_pull_request, status, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, 'open', ?)",
                [repo_id, num, title, description, author_id, int(pull_request), utcnow()],
            )
        found = self.get(repo_id, num)
        assert found is not None
        return found

    def get(self, repo_id: int, num: int) -> Discussion | None:
        rows = list(self.store.db.query(f"{_SELECT} WHERE d.repo_id = ? AND d.num = ?", [repo_id, num]))
        return Discussion.from_row(rows[0]) if rows else None

    def list(self, repo_id: int) -> list[Discussion]:
        rows = self.store.db.query(f"{_SELECT} WHERE d.repo_id = ? ORDER BY d.num DESC", [repo_id])
        return [Discussion.from_row(r) for r in rows]

    def set_status(self, repo_id: int, num: int, status: str, *, merge_commit: str | None = None) -> None:
        if merge_commit is not None:
            self.store.db.execute("UPDATE discussions SET status = ?, merge_commit = ? WHERE repo_id = ? AND num = ?",
                                  [status, merge_commit, repo_id, num])
            return
        self.store.db.execute("UPDATE discussions SET status = ? WHERE repo_id = ? AND num = ?",
                              [status, repo_id, num])

    def rename(self, discussion_id: int, title: str) -> None:
        self.store.db.execute("UPDATE discussions SET title = ? WHERE id = ?", [title, discussion_id])

    def edit_description(self, discussion_id: int, text: str) -> None:
        self.store.db.execute("UPDATE discussions SET description = ?, edited_at = ? WHERE id = ?",
                              [text, utcnow(), discussion_id])

    def hide_description(self, discussion_id: int) -> None:
        self.store.db.execute("UPDATE discussions SET hidden = 1 WHERE id = ?", [discussion_id])
