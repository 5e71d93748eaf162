"""The mirror plugin's tables: pull mirrors (one per repository), push mirrors (any number
per repository), and what the Hub file API mode remembers of the upstream commits.

Credentials are stored encrypted (``context.secrets``); no row, status answer or log
line carries them in the clear.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from gitd import PluginStorage

# Numbered by position: append new ones, never edit these.
MIGRATIONS = [
    """CREATE TABLE {prefix}pull (
        repo_id INTEGER PRIMARY KEY,
        repo TEXT NOT NULL,
        type TEXT NOT NULL,
        url TEXT NOT NULL,
        hub_url TEXT,
        hub_repo_id TEXT,
        hub_mode TEXT,
        lfs INTEGER NOT NULL,
        lfs_url TEXT,
        refs TEXT NOT NULL,
        interval REAL NOT NULL,
        follow_force INTEGER NOT NULL,
        prune INTEGER NOT NULL,
        read_only INTEGER NOT NULL,
        credentials TEXT,
        known_hosts TEXT,
        generation INTEGER NOT NULL DEFAULT 0,
        next_run REAL,
        state TEXT NOT NULL DEFAULT 'idle',
        phase TEXT,
        progress TEXT,
        last_attempt REAL,
        last_success REAL,
        last_error TEXT,
        last_result TEXT,
        failures INTEGER NOT NULL DEFAULT 0,
        restricted INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    )""",
    """CREATE TABLE {prefix}push (
        id TEXT PRIMARY KEY,
        repo_id INTEGER NOT NULL,
        url TEXT NOT NULL,
        lfs INTEGER NOT NULL,
        lfs_url TEXT,
        refs TEXT NOT NULL,
        prune INTEGER NOT NULL,
        credentials TEXT,
        known_hosts TEXT,
        queued INTEGER NOT NULL DEFAULT 0,
        started INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL DEFAULT 'idle',
        last_attempt REAL,
        last_success REAL,
        last_error TEXT,
        last_result TEXT,
        restricted INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    )""",
    "CREATE INDEX {prefix}push_by_repo ON {prefix}push (repo_id)",
    """CREATE TABLE {prefix}hub_refs (
        repo_id INTEGER NOT NULL,
        ref TEXT NOT NULL,
        upstream TEXT NOT NULL,
        local TEXT NOT NULL,
        PRIMARY KEY (repo_id, ref)
    )""",
]

DEFAULT_REFS = ("refs/heads/", "refs/tags/")


@dataclass(frozen=True)
class PullMirror:
    repo_id: int
    repo: str
    type: str
    url: str
    lfs: bool
    refs: tuple[str, ...]
    interval: float
    follow_force: bool
    prune: bool
    read_only: bool
    hub_url: str | None = None
    hub_repo_id: str | None = None
    hub_mode: str | None = None  # None (not detected yet), "git" or "api"
    lfs_url: str | None = None
    credentials: str | None = field(default=None, repr=False)  # encrypted
    known_hosts: str | None = None
    generation: int = 0
    next_run: float | None = None
    state: str = "idle"
    phase: str | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    last_attempt: float | None = None
    last_success: float | None = None
    last_error: str | None = None
    last_result: dict[str, Any] = field(default_factory=dict)
    failures: int = 0
    restricted: bool = False  # configured through the API: no local networks, no redirects
    created_at: float = 0.0

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> PullMirror:
        data = dict(row)
        for key in ("lfs", "follow_force", "prune", "read_only", "restricted"):
            data[key] = bool(data[key])
        data["refs"] = tuple(json.loads(data["refs"]))
        data["progress"] = json.loads(data["progress"] or "{}")
        data["last_result"] = json.loads(data["last_result"] or "{}")
        return cls(**data)

    @property
    def is_hub(self) -> bool:
        return self.hub_repo_id is not None


@dataclass(frozen=True)
class PushMirror:
    id: str
    repo_id: int
    url: str
    lfs: bool
    refs: tuple[str, ...]
    prune: bool
    lfs_url: str | None = None
    credentials: str | None = field(default=None, repr=False)
    known_hosts: str | None = None
    queued: int = 0
    started: int = 0
    state: str = "idle"
    last_attempt: float | None = None
    last_success: float | None = None
    last_error: str | None = None
    last_result: dict[str, Any] = field(default_factory=dict)
    restricted: bool = False
    created_at: float = 0.0

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> PushMirror:
        data = dict(row)
        data["lfs"], data["prune"], data["restricted"] = bool(data["lfs"]), bool(data["prune"]), bool(
            data["restricted"])
        data["refs"] = tuple(json.loads(data["refs"]))
        data["last_result"] = json.loads(data["last_result"] or "{}")
        return cls(**data)


class Records:
    def __init__(self, storage: PluginStorage):
        self.storage = storage
        storage.migrate(MIGRATIONS)

    # -- pull mirrors ----------------------------------------------------------------------------
    def pull(self, repo_id: int) -> PullMirror | None:
        rows = self.storage.query("SELECT * FROM {prefix}pull WHERE repo_id = ?", [repo_id])
        return PullMirror.from_row(rows[0]) if rows else None

    def is_read_only(self, repo_id: int) -> str | None:
        """The upstream URL when ``repo_id`` is a read-only pull mirror (the pre-receive check)."""
        rows = self.storage.conn.execute(
            f"SELECT url FROM {self.storage.prefix}pull WHERE repo_id = ? AND read_only", [repo_id]).fetchall()
        return rows[0][0] if rows else None

    def pulls(self) -> list[PullMirror]:
        return [PullMirror.from_row(r) for r in self.storage.query("SELECT * FROM {prefix}pull ORDER BY repo")]

    def add_pull(self, mirror: PullMirror) -> None:
        self.storage.execute(
            "INSERT INTO {prefix}pull (repo_id, repo, type, url, hub_url, hub_repo_id, hub_mode, lfs, lfs_url, refs, "
            "interval, follow_force, prune, read_only, credentials, known_hosts, restricted, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [mirror.repo_id, mirror.repo, mirror.type, mirror.url, mirror.hub_url, mirror.hub_repo_id, mirror.hub_mode,
             int(mirror.lfs), mirror.lfs_url, json.dumps(list(mirror.refs)), mirror.interval,
             int(mirror.follow_force), int(mirror.prune), int(mirror.read_only), mirror.credentials,
             mirror.known_hosts, int(mirror.restricted), time.time()])

    _PULL_SETTABLE = ("url", "lfs", "lfs_url", "refs", "interval", "follow_force", "prune", "read_only",
                      "credentials", "known_hosts", "hub_mode", "repo", "type")

    def set_pull(self, repo_id: int, **values: Any) -> None:
        self._set("pull", "repo_id", repo_id, self._PULL_SETTABLE, values)

    def delete_pull(self, repo_id: int) -> bool:
        with self.storage.transaction():
            self.storage.execute("DELETE FROM {prefix}hub_refs WHERE repo_id = ?", [repo_id])
            return self.storage.execute("DELETE FROM {prefix}pull WHERE repo_id = ?", [repo_id]).rowcount > 0

    def _set(self, table: str, key: str, value: Any, allowed: tuple[str, ...], values: dict[str, Any]) -> None:
        unknown = set(values) - set(allowed)
        if unknown:
            raise ValueError(f"cannot set {sorted(unknown)}")
        if not values:
            return
        cols = ", ".join(f"{k} = ?" for k in values)
        args = [json.dumps(list(v)) if k == "refs" else int(v) if isinstance(v, bool) else v
                for k, v in values.items()]
        self.storage.execute(f"UPDATE {{prefix}}{table} SET {cols} WHERE {key} = ?", [*args, value])

    # -- the schedule --------------------------------------------------------------------------
    def advance(self, repo_id: int, generation: int, next_run: float | None) -> None:
        """The scheduled chain reached ``generation`` (never goes back)."""
        self.storage.execute(
            "UPDATE {prefix}pull SET generation = max(generation, ?), next_run = ? WHERE repo_id = ?",
            [generation, next_run, repo_id])

    # -- status ----------------------------------------------------------------------------------
    def started(self, repo_id: int) -> None:
        self.storage.execute(
            "UPDATE {prefix}pull SET state = 'running', phase = 'starting', progress = '{}', last_attempt = ? "
            "WHERE repo_id = ?", [time.time(), repo_id])

    def progress(self, repo_id: int, phase: str, progress: dict[str, Any]) -> None:
        self.storage.execute("UPDATE {prefix}pull SET phase = ?, progress = ? WHERE repo_id = ?",
                             [phase, json.dumps(progress), repo_id])

    def finished(self, repo_id: int, *, error: str | None, result: dict[str, Any]) -> None:
        if error is None:
            self.storage.execute(
                "UPDATE {prefix}pull SET state = 'idle', phase = NULL, last_success = ?, last_error = NULL, "
                "last_result = ?, failures = 0 WHERE repo_id = ?", [time.time(), json.dumps(result), repo_id])
        else:
            self.storage.execute(
                "UPDATE {prefix}pull SET state = 'idle', phase = NULL, last_error = ?, last_result = ?, "
                "failures = failures + 1 WHERE repo_id = ?", [error, json.dumps(result), repo_id])

    # -- push mirrors ----------------------------------------------------------------------------
    def push(self, mirror_id: str) -> PushMirror | None:
        rows = self.storage.query("SELECT * FROM {prefix}push WHERE id = ?", [mirror_id])
        return PushMirror.from_row(rows[0]) if rows else None

    def pushes(self, repo_id: int | None = None) -> list[PushMirror]:
        if repo_id is None:
            rows = self.storage.query("SELECT * FROM {prefix}push ORDER BY repo_id, created_at")
        else:
            rows = self.storage.query("SELECT * FROM {prefix}push WHERE repo_id = ? ORDER BY created_at", [repo_id])
        return [PushMirror.from_row(r) for r in rows]

    def add_push(self, repo_id: int, url: str, *, lfs: bool, lfs_url: str | None, refs: tuple[str, ...], prune: bool,
                 credentials: str | None, restricted: bool, known_hosts: str | None = None) -> str:
        mirror_id = secrets.token_hex(4)
        self.storage.execute(
            "INSERT INTO {prefix}push (id, repo_id, url, lfs, lfs_url, refs, prune, credentials, known_hosts, "
            "restricted, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [mirror_id, repo_id, url, int(lfs), lfs_url, json.dumps(list(refs)), int(prune), credentials,
             known_hosts, int(restricted), time.time()])
        return mirror_id

    def set_push(self, mirror_id: str, **values: Any) -> None:
        self._set("push", "id", mirror_id, ("known_hosts", "credentials"), values)

    def delete_push(self, mirror_id: str) -> bool:
        return self.storage.execute("DELETE FROM {prefix}push WHERE id = ?", [mirror_id]).rowcount > 0

    def want_push(self, mirror_id: str) -> int | None:
        """A push is needed: the generation to queue, or None when one is queued and has not
        started yet (it will see this change)."""
        with self.storage.transaction():
            rows = self.storage.query("SELECT queued, started FROM {prefix}push WHERE id = ?", [mirror_id])
            if not rows or rows[0]["queued"] > rows[0]["started"]:
                return None
            generation = rows[0]["queued"] + 1
            self.storage.execute("UPDATE {prefix}push SET queued = ? WHERE id = ?", [generation, mirror_id])
            return generation

    def push_started(self, mirror_id: str, generation: int) -> None:
        self.storage.execute(
            "UPDATE {prefix}push SET started = max(started, ?), state = 'running', last_attempt = ? WHERE id = ?",
            [generation, time.time(), mirror_id])

    def push_finished(self, mirror_id: str, *, error: str | None, result: dict[str, Any]) -> None:
        if error is None:
            self.storage.execute(
                "UPDATE {prefix}push SET state = 'idle', last_success = ?, last_error = NULL, last_result = ? "
                "WHERE id = ?", [time.time(), json.dumps(result), mirror_id])
        else:
            self.storage.execute("UPDATE {prefix}push SET state = 'idle', last_error = ?, last_result = ? WHERE id = ?",
                                 [error, json.dumps(result), mirror_id])

    # -- the Hub file API mode -------------------------------------------------------------------
    def hub_refs(self, repo_id: int) -> dict[str, tuple[str, str]]:
        rows = self.storage.query("SELECT ref, upstream, local FROM {prefix}hub_refs WHERE repo_id = ?", [repo_id])
        return {r["ref"]: (r["upstream"], r["local"]) for r in rows}

    def set_hub_refs(self, repo_id: int, refs: dict[str, tuple[str, str] | None]) -> None:
        with self.storage.transaction():
            for ref, pair in refs.items():
                if pair is None:
                    self.storage.execute("DELETE FROM {prefix}hub_refs WHERE repo_id = ? AND ref = ?", [repo_id, ref])
                else:
                    self.storage.execute(
                        "INSERT INTO {prefix}hub_refs (repo_id, ref, upstream, local) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (repo_id, ref) DO UPDATE SET upstream = excluded.upstream, local = excluded.local",
                        [repo_id, ref, *pair])

    # -- lifecycle -------------------------------------------------------------------------------
    def forget_repo(self, repo_id: int) -> None:
        with self.storage.transaction():
            self.delete_pull(repo_id)
            self.storage.execute("DELETE FROM {prefix}push WHERE repo_id = ?", [repo_id])

    def renamed(self, repo_id: int, full_name: str) -> None:
        self.storage.execute("UPDATE {prefix}pull SET repo = ? WHERE repo_id = ?", [full_name, repo_id])
