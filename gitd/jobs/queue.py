"""A durable job queue in SQLite (``gitd.jobs.workers`` drains it).

A job is recorded before the action that caused it returns (a push, a repository
created by the CLI), so it survives a crash: on start the daemon puts jobs that
were running back in the queue. Failed attempts are retried with exponential
backoff; after ``max_attempts`` the job is kept as failed, with its error, until
``gitd jobs retry ID``. Jobs are unique per ``dedup_key``, which makes enqueueing
idempotent.

A job names one plugin, or ``ALL_PLUGINS`` ("*"): such a job is expanded by the
daemon into one job per plugin that implements its hook. Processes that do not know
the daemon's plugins (the CLI) record those.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from gitd.errors import Conflict, NotFound
from gitd.store import Store, utcnow

log = logging.getLogger("gitd.jobs")

ALL_PLUGINS = "*"
STATES = ("queued", "running", "done", "failed")
MAX_PROGRESS = 500

# The job the current thread is running (set by ``JobQueue.running``), for progress reports.
_CURRENT_JOB: ContextVar[int | None] = ContextVar("gitd_current_job", default=None)


class PermanentJobError(Exception):
    """Raised by a job runner when retrying cannot help: the job is kept as failed at once."""


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): base * 2**(attempt-1), capped."""
    return min(cap, base * 2 ** max(0, attempt - 1))


@dataclass(frozen=True)
class Job:
    id: int
    hook: str
    plugin: str
    repo_id: int | None
    payload: dict[str, Any]
    dedup_key: str
    state: str
    attempts: int
    max_attempts: int
    run_after: float
    last_error: str | None
    created_at: str
    updated_at: str
    progress: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        return cls(**{**row, "payload": json.loads(row["payload"])})


class JobQueue:
    def __init__(self, store: Store, *, max_attempts: int = 5, backoff_base: float = 2.0,
                 backoff_max: float = 600.0):
        self.store = store
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.on_enqueue: Callable[[], None] | None = None

    def enqueue(self, hook: str, plugin: str, payload: dict[str, Any], *, dedup_key: str,
                repo_id: int | None = None, delay: float = 0.0) -> int | None:
        """Record a job (committed when this returns, or with the caller's open transaction);
        returns its id, or None if a job with this key already exists."""
        ids = self.enqueue_many(hook, [(plugin, dedup_key)], payload, repo_id=repo_id, delay=delay)
        return ids[0] if ids else None

    def enqueue_many(self, hook: str, jobs: Sequence[tuple[str, str]], payload: dict[str, Any], *,
                     repo_id: int | None = None, delay: float = 0.0) -> list[int]:
        """Record one job per (plugin, dedup key), all with the same payload, in one statement
        (atomic; committed when this returns, or with the caller's open transaction). Returns
        the ids of the jobs recorded; a key that already has a job is skipped."""
        if not jobs:
            return []
        now, data, run_after = utcnow(), json.dumps(payload), time.time() + delay
        rows = ", ".join(["(?, ?, ?, ?, ?, 'queued', 0, ?, ?, ?, ?)"] * len(jobs))
        args: list[Any] = []
        for plugin, dedup_key in jobs:
            args += [hook, plugin, repo_id, data, dedup_key, self.max_attempts, run_after, now, now]
        sql = ("INSERT OR IGNORE INTO jobs (hook, plugin, repo_id, payload, dedup_key, state, attempts, "
               f"max_attempts, run_after, created_at, updated_at) VALUES {rows}")
        ids = sorted(row[0] for row in self.store.db.conn.execute(sql + " RETURNING id", args).fetchall())
        if ids and self.on_enqueue is not None and delay <= 0:
            self.on_enqueue()
        return ids

    def enqueue_unless_queued(self, hook: str, plugin: str, payload: dict[str, Any], *, dedup_key: str,
                              repo_id: int | None = None, delay: float = 0.0) -> int | None:
        """Like ``enqueue``, but a finished, failed or running job with the key does not count:
        only one still waiting in the queue makes this return None."""
        with self.store.transaction() as db:
            db.execute("UPDATE jobs SET dedup_key = dedup_key || ':' || id WHERE dedup_key = ? AND state != 'queued'",
                       [dedup_key])
            return self.enqueue(hook, plugin, payload, dedup_key=dedup_key, repo_id=repo_id, delay=delay)

    def discard(self, job_id: int) -> bool:
        """Delete a job that is still waiting in the queue; False if it is running or gone."""
        cur = self.store.db.execute("DELETE FROM jobs WHERE id = ? AND state = 'queued'", [job_id])
        return cur.rowcount > 0

    def claim(self, *, due_by: float | None = None) -> Job | None:
        """Take the next job due by ``due_by`` (default: now), atomically, so several workers
        never share one."""
        with self.store.transaction() as db:
            rows = list(db.query(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, updated_at = ? "
                "WHERE id = (SELECT id FROM jobs WHERE state = 'queued' AND run_after <= ? "
                "ORDER BY run_after, id LIMIT 1) RETURNING *",
                [utcnow(), time.time() if due_by is None else due_by],
            ))
        return Job.from_row(rows[0]) if rows else None

    @contextmanager
    def running(self, job: Job) -> Iterator[None]:
        """While the block runs, ``report_progress`` on this thread records ``job``'s progress."""
        token = _CURRENT_JOB.set(job.id)
        try:
            yield
        finally:
            _CURRENT_JOB.reset(token)

    def report_progress(self, text: str) -> bool:
        """Record the progress of the job this thread runs (shown by ``gitd jobs list``; kept
        when the job ends). False outside a job."""
        job_id = _CURRENT_JOB.get()
        if job_id is None:
            return False
        line = " ".join(str(text).split())[:MAX_PROGRESS]
        self.store.db.execute("UPDATE jobs SET progress = ?, updated_at = ? WHERE id = ?", [line, utcnow(), job_id])
        return True

    def complete(self, job: Job) -> None:
        self.store.db.execute(
            "UPDATE jobs SET state = 'done', last_error = NULL, updated_at = ? WHERE id = ?", [utcnow(), job.id]
        )

    def fail(self, job: Job, error: str, *, permanent: bool = False) -> str:
        """Record a failed attempt: back to the queue with backoff, or failed for good."""
        if permanent or job.attempts >= job.max_attempts:
            state, run_after = "failed", job.run_after
        else:
            state = "queued"
            run_after = time.time() + backoff_delay(job.attempts, self.backoff_base, self.backoff_max)
        self.store.db.execute(
            "UPDATE jobs SET state = ?, run_after = ?, last_error = ?, updated_at = ? WHERE id = ?",
            [state, run_after, error[-4000:], utcnow(), job.id],
        )
        return state

    def recover(self) -> int:
        """Requeue jobs left 'running' by a daemon that died."""
        cur = self.store.db.execute(
            "UPDATE jobs SET state = 'queued', run_after = ?, updated_at = ? WHERE state = 'running'",
            [time.time(), utcnow()],
        )
        return cur.rowcount

    def retry(self, job_id: int) -> Job:
        """Queue a failed (or finished) job again, now, with a fresh set of attempts."""
        cur = self.store.db.execute(
            "UPDATE jobs SET state = 'queued', attempts = 0, run_after = ?, updated_at = ? "
            "WHERE id = ? AND state IN ('failed', 'done', 'queued')",
            [time.time(), utcnow(), job_id],
        )
        if cur.rowcount == 0:
            job = self._find(job_id)
            if job is None:
                raise NotFound(f"no job {job_id}")
            raise Conflict(f"job {job_id} is running; wait for it to finish")
        if self.on_enqueue is not None:
            self.on_enqueue()
        return self.get(job_id)

    def _find(self, job_id: int) -> Job | None:
        rows = list(self.store.db["jobs"].rows_where("id = ?", [job_id]))
        return Job.from_row(rows[0]) if rows else None

    def get(self, job_id: int) -> Job:
        job = self._find(job_id)
        if job is None:
            raise NotFound(f"no job {job_id}")
        return job

    def list(self, *, state: str | None = None, limit: int = 100) -> list[Job]:
        if state is not None and state not in STATES:
            raise ValueError(f"unknown job state {state!r}")
        where, args = ("state = ?", [state]) if state else (None, [])
        return [Job.from_row(r) for r in self.store.db["jobs"].rows_where(where, args, order_by="id desc",
                                                                          limit=limit)]

    def next_due(self) -> float | None:
        row = self.store.db.execute("SELECT MIN(run_after) FROM jobs WHERE state = 'queued'").fetchone()
        return row[0] if row and row[0] is not None else None
