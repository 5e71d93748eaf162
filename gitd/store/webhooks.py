"""Webhooks: where an account wants to be told of events, and what it watches (repositories,
users, organisations)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from gitd.store.db import Store, utcnow

DOMAINS = ("repo", "discussion")
WATCH_KINDS = ("user", "org", "model", "dataset", "space", "code")


@dataclass(frozen=True)
class Webhook:
    id: int
    owner_id: int
    url: str
    secret: str | None
    domains: list[str]
    disabled: bool
    watched: list[tuple[str, str]]  # (kind, name)


class Webhooks:
    def __init__(self, store: Store):
        self.store = store

    def _load(self, rows: list[tuple]) -> list[Webhook]:
        out = []
        for r in rows:
            watched = self.store.db.execute("SELECT kind, name FROM webhook_watched WHERE webhook_id = ? "
                                            "ORDER BY rowid", [r[0]]).fetchall()
            out.append(Webhook(r[0], r[1], r[2], r[3], json.loads(r[4]), bool(r[5]), [(k, n) for k, n in watched]))
        return out

    _COLS = "id, owner_id, url, secret, domains, disabled"

    def get(self, webhook_id: int) -> Webhook | None:
        rows = self.store.db.execute(f"SELECT {self._COLS} FROM webhooks WHERE id = ?", [webhook_id]).fetchall()
        found = self._load(rows)
        return found[0] if found else None

    def of_owner(self, owner_id: int) -> list[Webhook]:
        rows = self.store.db.execute(f"SELECT {self._COLS} FROM webhooks WHERE owner_id = ? ORDER BY id",
                                     [owner_id]).fetchall()
        return self._load(rows)

    def exist(self) -> bool:
        return self.store.db.execute("SELECT 1 FROM webhooks LIMIT 1").fetchone() is not None

    def count_of(self, owner_id: int) -> int:
        return int(self.store.db.execute("SELECT COUNT(*) FROM webhooks WHERE owner_id = ?", [owner_id]).fetchone()[0])

    def watching(self, repo_type: str, full_name: str, namespace: str, domain: str) -> list[Webhook]:
        """The enabled webhooks watching the repository (by its name, or its namespace as a user or
        an organisation) for events of ``domain``."""
        rows = self.store.db.execute(
            f"SELECT DISTINCT {', '.join('w.' + c.strip() for c in self._COLS.split(','))} FROM webhooks w "
            "JOIN webhook_watched x ON x.webhook_id = w.id WHERE w.disabled = 0 AND "
            "((x.kind = ? AND x.name = ?) OR (x.kind IN ('user', 'org') AND x.name = ?)) ORDER BY w.id",
            [repo_type, full_name, namespace]).fetchall()
        return [w for w in self._load(rows) if domain in w.domains]

    def create(self, owner_id: int, url: str, secret: str | None, domains: list[str],
               watched: list[tuple[str, str]]) -> Webhook:
        now = utcnow()
        with self.store.transaction() as db:
            cur = db.execute("INSERT INTO webhooks (owner_id, url, secret, domains, disabled, created_at, updated_at) "
                             "VALUES (?, ?, ?, ?, 0, ?, ?)", [owner_id, url, secret, json.dumps(domains), now, now])
            webhook_id = int(cur.lastrowid or 0)
            self._watch(db, webhook_id, watched)
        found = self.get(webhook_id)
        assert found is not None
        return found

    @staticmethod
    def _watch(db, webhook_id: int, watched: list[tuple[str, str]]) -> None:  # type: ignore[no-untyped-def]
        db.execute("DELETE FROM webhook_watched WHERE webhook_id = ?", [webhook_id])
        for kind, name in dict.fromkeys(watched):
            db.execute("INSERT OR IGNORE INTO webhook_watched (webhook_id, kind, name) VALUES (?, ?, ?)",
                       [webhook_id, kind, name])

    def update(self, webhook_id: int, *, url: str | None = None, secret: str | None = None,
               domains: list[str] | None = None, watched: list[tuple[str, str]] | None = None,
               disabled: bool | None = None) -> None:
        with self.store.transaction() as db:
            sets, args = ["updated_at = ?"], [utcnow()]
            for column, value in (("url", url), ("secret", secret),
                                  ("domains", json.dumps(domains) if domains is not None else None),
                                  ("disabled", int(disabled) if disabled is not None else None)):
                if value is not None:
                    sets.append(f"{column} = ?")
                    args.append(value)
            db.execute(f"UPDATE webhooks SET {', '.join(sets)} WHERE id = ?", [*args, webhook_id])
            if watched is not None:
                self._watch(db, webhook_id, watched)

    def delete(self, webhook_id: int) -> None:
        self.store.db.execute("DELETE FROM webhooks WHERE id = ?", [webhook_id])
