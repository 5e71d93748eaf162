"""Password hashes of users (the web UI's login; ``gitd.access.passwords`` hashes them)."""

from __future__ import annotations

from gitd.store.db import Store, utcnow


class PasswordRows:
    def __init__(self, store: Store):
        self.store = store

    def set(self, account_id: int, password_hash: str) -> None:
        with self.store.transaction() as db:
            db.execute("INSERT INTO passwords (account_id, hash, updated_at) VALUES (?, ?, ?) "
                       "ON CONFLICT (account_id) DO UPDATE SET hash = excluded.hash, updated_at = excluded.updated_at",
                       [account_id, password_hash, utcnow()])
            # A new password ends every browser session the old one opened.
            db.execute("DELETE FROM web_sessions WHERE account_id = ?", [account_id])

    def get(self, account_id: int) -> str | None:
        row = self.store.db.execute("SELECT hash FROM passwords WHERE account_id = ?", [account_id]).fetchone()
        return row[0] if row else None
