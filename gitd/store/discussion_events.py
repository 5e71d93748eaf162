"""What happened to a discussion besides its comments: status and title changes (the Hub's
``status-change`` and ``title-change`` events), in the order they happened."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from gitd.store.db import Store, utcnow


@dataclass(frozen=True)
class DiscussionEvent:
    id: int
    kind: str  # status-change | title-change
    author: str | None
    data: dict[str, Any]
    created_at: str
    seq: int = 0  # its place in the discussion's timeline, shared with Comment.seq


class DiscussionEvents:
    def __init__(self, store: Store):
        self.store = store

    def add(self, discussion_id: int, kind: str, author_id: int | None, data: dict[str, Any]) -> DiscussionEvent:
        now = utcnow()
        cur = self.store.db.execute(
            "INSERT INTO discussion_events (discussion_id, kind, author_id, data, created_at) VALUES (?, ?, ?, ?, ?)",
            [discussion_id, kind, author_id, json.dumps(data), now])
        row = self.store.db.execute("SELECT name FROM accounts WHERE id = ?", [author_id]).fetchone() \
            if author_id is not None else None
        event_id = int(cur.lastrowid or 0)
        seq = self.store.db.execute("SELECT seq FROM discussion_events WHERE id = ?", [event_id]).fetchone()
        return DiscussionEvent(event_id, kind, row[0] if row else None, data, now, int(seq[0]) if seq else 0)

    def of(self, discussion_id: int, *, limit: int = 1000) -> list[DiscussionEvent]:
        rows = self.store.db.execute(
            "SELECT e.id, e.kind, a.name, e.data, e.created_at, e.seq FROM discussion_events e "
            "LEFT JOIN accounts a ON a.id = e.author_id WHERE e.discussion_id = ? ORDER BY e.id LIMIT ?",
            [discussion_id, limit]).fetchall()
        return [DiscussionEvent(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5]) for r in rows]
