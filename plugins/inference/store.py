"""Endpoints as the daemon and the ``gitd`` command both know them: one row per endpoint in
the plugin's storage (what it serves, its status and why, its engine's port)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from gitd.plugin_api import PluginStorage

PENDING, LOADING, RUNNING, FAILED, STOPPED, SLEEPING = "pending", "loading", "running", "failed", "stopped", "sleeping"
# Statuses in which a request wakes the endpoint (scale to zero); "stopped" waits for a start.
WAKEABLE = (SLEEPING,)
LIVE = (PENDING, LOADING, RUNNING)
# CSGHub's words for them (csghub-cli prints these).
CSGHUB_STATUS = {PENDING: "Pending", LOADING: "Deploying", RUNNING: "Running", FAILED: "DeployFailed",
                 STOPPED: "Stopped", SLEEPING: "Sleeping"}

MIGRATIONS = [
    """CREATE TABLE {prefix}endpoints (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        owner TEXT NOT NULL,
        repo_id INTEGER NOT NULL,
        repo TEXT NOT NULL,
        revision TEXT NOT NULL,
        commit_id TEXT NOT NULL,
        engine TEXT NOT NULL,
        resources TEXT NOT NULL DEFAULT '{}',
        private INTEGER NOT NULL DEFAULT 1,
        rate_limit REAL,
        sleep_time REAL,
        status TEXT NOT NULL,
        reason TEXT,
        token TEXT,
        runtime TEXT NOT NULL DEFAULT 'local',
        port INTEGER,
        pid INTEGER,
        timings TEXT NOT NULL DEFAULT '{}',
        created REAL NOT NULL,
        updated REAL NOT NULL,
        UNIQUE (owner, name)
    )""",
    "CREATE INDEX {prefix}endpoints_by_repo ON {prefix}endpoints (repo_id)",
]


@dataclass
class Endpoint:
    id: int
    name: str
    owner: str
    repo_id: int
    repo: str
    revision: str
    commit_id: str
    engine: str
    status: str
    resources: dict[str, Any] = field(default_factory=dict)
    private: bool = True
    rate_limit: float | None = None
    sleep_time: float | None = None
    reason: str | None = None
    token: str | None = None
    runtime: str = "local"
    port: int | None = None
    pid: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    created: float = 0.0
    updated: float = 0.0

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Endpoint:
        data = dict(row)
        data["resources"] = json.loads(data.get("resources") or "{}")
        data["timings"] = json.loads(data.get("timings") or "{}")
        data["private"] = bool(data["private"])
        return cls(**data)

    def public(self, base_url: str = "") -> dict[str, Any]:
        """The API's answer (never the token)."""
        return {"id": self.id, "name": self.name, "owner": self.owner, "model": self.repo,
                "revision": self.revision, "commit": self.commit_id, "engine": self.engine,
                "resources": self.resources, "private": self.private, "rate_limit": self.rate_limit,
                "sleep_time": self.sleep_time, "status": self.status, "reason": self.reason, "runtime": self.runtime,
                "url": f"{base_url}/api/plugins/inference/endpoints/{self.id}/v1", "timings": self.timings,
                "created": self.created, "updated": self.updated}

    def csghub(self, base_url: str = "") -> dict[str, Any]:
        """CSGHub's instance form (csghub-cli inference list)."""
        return {"deploy_id": self.id, "deploy_name": self.name, "model_id": self.repo, "repo_id": self.repo_id,
                "status": CSGHUB_STATUS.get(self.status, self.status), "git_branch": self.revision,
                "commit": self.commit_id, "runtime_framework": self.engine, "private": self.private,
                "endpoint": f"{base_url}/api/plugins/inference/endpoints/{self.id}/v1", "message": self.reason}


class Endpoints:
    """The table, with the rows the proxy reads on every request kept in memory for ``CACHED``
    seconds (writes through this object drop them at once; another process's, such as a
    ``gitd endpoints`` command's, are seen within that time)."""

    CACHED = 1.0

    def __init__(self, storage: PluginStorage):
        self.storage = storage
        storage.migrate(MIGRATIONS)
        self._cache: dict[int, tuple[float, Endpoint | None]] = {}

    def cached(self, endpoint_id: int) -> Endpoint | None:
        hit = self._cache.get(endpoint_id)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self.CACHED:
            return hit[1]
        found = self.get(endpoint_id)
        self._cache[endpoint_id] = (now, found)
        if len(self._cache) > 4096:
            self._cache.clear()
        return found

    def add(self, **fields: Any) -> Endpoint:
        now = time.time()
        values = {**fields, "resources": json.dumps(fields.get("resources") or {}), "created": now, "updated": now,
                  "private": int(bool(fields.get("private", True)))}
        cols = list(values)
        with self.storage.transaction() as db:
            cur = db.execute(f"INSERT INTO {{prefix}}endpoints ({', '.join(cols)}) "
                             f"VALUES ({', '.join('?' for _ in cols)})", [values[c] for c in cols])
            new_id = cur.lastrowid
        found = self.get(int(new_id))
        assert found is not None
        return found

    def get(self, endpoint_id: int) -> Endpoint | None:
        rows = self.storage.query("SELECT * FROM {prefix}endpoints WHERE id = ?", [endpoint_id])
        return Endpoint.from_row(rows[0]) if rows else None

    def by_name(self, owner: str, name: str) -> Endpoint | None:
        rows = self.storage.query("SELECT * FROM {prefix}endpoints WHERE owner = ? AND name = ?", [owner, name])
        return Endpoint.from_row(rows[0]) if rows else None

    def all(self, owner: str | None = None) -> list[Endpoint]:
        if owner is None:
            rows = self.storage.query("SELECT * FROM {prefix}endpoints ORDER BY id")
        else:
            rows = self.storage.query("SELECT * FROM {prefix}endpoints WHERE owner = ? ORDER BY id", [owner])
        return [Endpoint.from_row(r) for r in rows]

    def of_repo(self, repo_id: int) -> list[Endpoint]:
        rows = self.storage.query("SELECT * FROM {prefix}endpoints WHERE repo_id = ? ORDER BY id", [repo_id])
        return [Endpoint.from_row(r) for r in rows]

    def set(self, endpoint_id: int, **fields: Any) -> Endpoint | None:
        if not fields:
            return self.get(endpoint_id)
        for key in ("resources", "timings"):
            if key in fields:
                fields[key] = json.dumps(fields[key])
        if "private" in fields:
            fields["private"] = int(bool(fields["private"]))
        fields["updated"] = time.time()
        self._cache.pop(endpoint_id, None)
        cols = list(fields)
        self.storage.execute(f"UPDATE {{prefix}}endpoints SET {', '.join(f'{c} = ?' for c in cols)} WHERE id = ?",
                             [*(fields[c] for c in cols), endpoint_id])
        return self.get(endpoint_id)

    def delete(self, endpoint_id: int) -> None:
        self._cache.pop(endpoint_id, None)
        self.storage.execute("DELETE FROM {prefix}endpoints WHERE id = ?", [endpoint_id])
