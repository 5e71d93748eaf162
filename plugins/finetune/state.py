"""Fine-tune jobs as the daemon and the ``gitd`` command both see them: one row per job in the
plugin's storage (what to train, its status, progress and outcome)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from gitd.plugin_api import PluginStorage

PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED = "pending", "running", "succeeded", "failed", "cancelled"
ACTIVE = (PENDING, RUNNING)
FINISHED = (SUCCEEDED, FAILED, CANCELLED)

MIGRATIONS = [
    """CREATE TABLE {prefix}jobs (
        id INTEGER PRIMARY KEY,
        owner TEXT NOT NULL,
        model TEXT NOT NULL,
        model_id INTEGER NOT NULL,
        model_revision TEXT NOT NULL,
        dataset TEXT NOT NULL,
        dataset_id INTEGER NOT NULL,
        dataset_revision TEXT NOT NULL,
        target TEXT NOT NULL,
        target_id INTEGER NOT NULL,
        config TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        phase TEXT,
        step INTEGER NOT NULL DEFAULT 0,
        total INTEGER NOT NULL DEFAULT 0,
        loss REAL,
        result_commit TEXT,
        runtime TEXT NOT NULL,
        pid INTEGER,
        cancel INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL,
        started REAL,
        finished REAL,
        updated REAL NOT NULL
    )""",
    "CREATE INDEX {prefix}jobs_by_owner ON {prefix}jobs (owner, id)",
    "CREATE INDEX {prefix}jobs_by_status ON {prefix}jobs (status, id)",
]


@dataclass
class Job:
    id: int
    owner: str
    model: str
    model_id: int
    model_revision: str
    dataset: str
    dataset_id: int
    dataset_revision: str
    target: str
    target_id: int
    config: dict[str, Any]
    endpoint: str
    status: str
    runtime: str
    created: float
    updated: float
    reason: str | None = None
    phase: str | None = None
    step: int = 0
    total: int = 0
    loss: float | None = None
    result_commit: str | None = None
    pid: int | None = None
    cancel: int = 0
    started: float | None = None
    finished: float | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        return cls(**{**row, "config": json.loads(row["config"])})

    def public(self) -> dict[str, Any]:
        """The job as the API answers it (no tokens: jobs never store any)."""
        out = asdict(self)
        out.pop("cancel")
        out.pop("endpoint")
        return out


class JobStore:
    def __init__(self, storage: PluginStorage):
        self.storage = storage
        storage.migrate(MIGRATIONS)

    def add(self, **fields: Any) -> Job:
        now = time.time()
        fields = {**fields, "config": json.dumps(fields["config"]), "created": now, "updated": now}
        cols = list(fields)
        with self.storage.transaction() as db:
            cur = db.execute(f"INSERT INTO {{prefix}}jobs ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
                             [fields[c] for c in cols])
            job_id = cur.lastrowid
        found = self.get(int(job_id))
        assert found is not None
        return found

    def get(self, job_id: int) -> Job | None:
        rows = self.storage.query("SELECT * FROM {prefix}jobs WHERE id = ?", [job_id])
        return Job.from_row(rows[0]) if rows else None

    def of_owner(self, owner: str, limit: int = 100) -> list[Job]:
        rows = self.storage.query("SELECT * FROM {prefix}jobs WHERE owner = ? ORDER BY id DESC LIMIT ?",
                                  [owner, limit])
        return [Job.from_row(r) for r in rows]

    def all(self, limit: int = 1000) -> list[Job]:
        return [Job.from_row(r) for r in self.storage.query("SELECT * FROM {prefix}jobs ORDER BY id DESC LIMIT ?",
                                                           [limit])]

    def with_status(self, *statuses: str) -> list[Job]:
        marks = ", ".join("?" for _ in statuses)
        rows = self.storage.query(f"SELECT * FROM {{prefix}}jobs WHERE status IN ({marks}) ORDER BY id", statuses)
        return [Job.from_row(r) for r in rows]

    def update(self, job_id: int, *, when: tuple[str, ...] | None = None, **fields: Any) -> bool:
        """Set ``fields``; with ``when``, only while the job's status is one of those (a
        compare-and-set: a cancel and a finish never both win). True when it changed."""
        fields["updated"] = time.time()
        sets = ", ".join(f"{k} = ?" for k in fields)
        params = [*fields.values(), job_id]
        where = "id = ?"
        if when:
            where += f" AND status IN ({', '.join('?' for _ in when)})"
            params += list(when)
        with self.storage.transaction() as db:
            return db.execute(f"UPDATE {{prefix}}jobs SET {sets} WHERE {where}", params).rowcount > 0
