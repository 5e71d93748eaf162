"""Browser sessions of the web UI: one row per signed-in browser, found by the hash of its id."""

from __future__ import annotations

from dataclasses import dataclass

from gitd.store.db import Store
from gitd.store.models import Account


@dataclass(frozen=True)
class SessionRow:
    account: Account
    csrf: str
    expires_at: float


class SessionRows:
    def __init__(self, store: Store):
        self.store = store

    def add(self, id_hash: str, account_id: int, csrf: str, now: float, expires_at: float) -> None:
        with self.store.transaction() as db:
            db.execute("DELETE FROM web_sessions WHERE expires_at < ?", [now])  # expired ones go as new ones come
            db.execute("INSERT INTO web_sessions (id_hash, account_id, csrf, created_at, expires_at) "
                       "VALUES (?, ?, ?, ?, ?)", [id_hash, account_id, csrf, now, expires_at])

    def find(self, id_hash: str, now: float) -> SessionRow | None:
        """The session and its account; None when there is none, it expired, or its account is gone."""
        cur = self.store.db.execute(
            "SELECT a.*, s.csrf AS _csrf, s.expires_at AS _expires FROM web_sessions s "
            "JOIN accounts a ON a.id = s.account_id WHERE s.id_hash = ? AND s.expires_at >= ?", [id_hash, now])
        row = cur.fetchone()
        if row is None:
            return None
        values = dict(zip([c[0] for c in cur.description], row, strict=True))
        return SessionRow(Account.from_row(values), values["_csrf"], values["_expires"])

    def delete(self, id_hash: str) -> None:
        self.store.db.execute("DELETE FROM web_sessions WHERE id_hash = ?", [id_hash])

    def delete_for(self, account_id: int) -> None:
        self.store.db.execute("DELETE FROM web_sessions WHERE account_id = ?", [account_id])
