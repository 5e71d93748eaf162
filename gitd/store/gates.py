"""Gated repositories: a public repository whose files only the users it let in may download
(the Hub's ``gated="auto"|"manual"``), and the access requests of those users."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from gitd.store.db import Store, utcnow

MODES = ("auto", "manual")
STATUSES = ("pending", "accepted", "rejected")


@dataclass(frozen=True)
class AccessRequest:
    id: int
    repo_id: int
    account_id: int
    user: str
    email: str | None
    status: str
    fields: dict[str, Any] | None
    rejection_reason: str | None
    created_at: str
    updated_at: str


_SELECT = ("SELECT r.id, r.repo_id, r.account_id, a.name, a.email, r.status, r.fields, r.rejection_reason, "
           "r.created_at, r.updated_at FROM access_requests r JOIN accounts a ON a.id = r.account_id")


def _request(row: Any) -> AccessRequest:
    return AccessRequest(row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]) if row[6] else None,
                         row[7], row[8], row[9])


class RepoGates:
    """``mode`` is asked on every read of a public repository (gitd.access.rules), so the gates
    are held in memory: read again after a change made through this object (at once) and at
    most ``ttl`` seconds after one made by another process."""

    def __init__(self, store: Store, *, ttl: float = 1.0):
        self.store = store
        self.ttl = ttl
        self._modes: tuple[float, dict[int, str]] | None = None
        self._changes = 0  # bumped by every change made here: a read that raced one is not kept

    def mode(self, repo_id: int) -> str | None:
        """"auto" or "manual" for a gated repository, None for an open one."""
        cached = self._modes
        now = time.monotonic()
        if cached is None or now - cached[0] > self.ttl:
            changes = self._changes
            rows = self.store.db.execute("SELECT repo_id, mode FROM repo_gates").fetchall()
            cached = (now, {r[0]: r[1] for r in rows})
            if changes == self._changes:
                self._modes = cached
        return cached[1].get(repo_id)

    def set_mode(self, repo_id: int, mode: str | None) -> None:
        try:
            if mode is None:
                self.store.db.execute("DELETE FROM repo_gates WHERE repo_id = ?", [repo_id])
                return
            assert mode in MODES
            self.store.db.execute("INSERT INTO repo_gates (repo_id, mode, updated_at) VALUES (?, ?, ?) "
                                  "ON CONFLICT (repo_id) DO UPDATE SET mode = excluded.mode, "
                                  "updated_at = excluded.updated_at", [repo_id, mode, utcnow()])
        finally:
            self._changes += 1
            self._modes = None

    def granted(self, repo_id: int, account_id: int) -> bool:
        row = self.store.db.execute("SELECT 1 FROM access_requests WHERE repo_id = ? AND account_id = ? "
                                    "AND status = 'accepted'", [repo_id, account_id]).fetchone()
        return row is not None

    def of_user(self, repo_id: int, account_id: int) -> AccessRequest | None:
        row = self.store.db.execute(f"{_SELECT} WHERE r.repo_id = ? AND r.account_id = ?",
                                    [repo_id, account_id]).fetchone()
        return _request(row) if row else None

    def by_id(self, repo_id: int, request_id: int) -> AccessRequest | None:
        row = self.store.db.execute(f"{_SELECT} WHERE r.repo_id = ? AND r.id = ?", [repo_id, request_id]).fetchone()
        return _request(row) if row else None

    def listed(self, repo_id: int, status: str, *, after: int = 0, limit: int = 100) -> list[AccessRequest]:
        rows = self.store.db.execute(f"{_SELECT} WHERE r.repo_id = ? AND r.status = ? AND r.id > ? "
                                     "ORDER BY r.id LIMIT ?", [repo_id, status, after, limit]).fetchall()
        return [_request(r) for r in rows]

    def put(self, repo_id: int, account_id: int, status: str, *, fields: dict[str, Any] | None = None,
            rejection_reason: str | None = None) -> AccessRequest:
        """The user's request, created or moved to ``status``."""
        assert status in STATUSES
        now = utcnow()
        self.store.db.execute(
            "INSERT INTO access_requests (repo_id, account_id, status, fields, rejection_reason, created_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (repo_id, account_id) DO UPDATE SET "
            "status = excluded.status, rejection_reason = excluded.rejection_reason, "
            "fields = COALESCE(excluded.fields, access_requests.fields), updated_at = excluded.updated_at",
            [repo_id, account_id, status, json.dumps(fields) if fields else None, rejection_reason, now, now])
        found = self.of_user(repo_id, account_id)
        assert found is not None
        return found
