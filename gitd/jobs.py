"""A durable job queue in SQLite, and the worker pool that drains it.

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

import asyncio
import contextlib
import json
import logging
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gitd.errors import Conflict, NotFound
from gitd.store import Store, utcnow
from gitd.threads import ThreadPool

log = logging.getLogger("gitd.jobs")

ALL_PLUGINS = "*"
STATES = ("queued", "running", "done", "failed")


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

    def discard(self, job_id: int) -> bool:
        """Delete a job that is still waiting in the queue; False if it is running or gone."""
        cur = self.store.db.execute("DELETE FROM jobs WHERE id = ? AND state = 'queued'", [job_id])
        return cur.rowcount > 0

    def claim(self) -> Job | None:
        """Take the next due job (atomically, so several workers never share one)."""
        with self.store.transaction() as db:
            rows = list(db.query(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, updated_at = ? "
                "WHERE id = (SELECT id FROM jobs WHERE state = 'queued' AND run_after <= ? "
                "ORDER BY run_after, id LIMIT 1) RETURNING *",
                [utcnow(), time.time()],
            ))
        return Job.from_row(rows[0]) if rows else None

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


class JobWorkers:
    """``workers`` asyncio tasks that claim jobs and run each on its own thread.

    A job whose runner raises, or runs longer than ``timeout`` seconds (0: no limit),
    is retried with backoff (``PermanentJobError``: kept as failed at once); a job that
    timed out is abandoned on its thread. Nothing a job does can stop a worker: even
    database errors are logged and the worker carries on after a pause.
    """

    def __init__(self, queue: JobQueue, run: Callable[[Job], None], *, workers: int = 2,
                 poll_interval: float = 1.0, timeout: float = 0.0, start_delay: float = 0.0):
        self.queue = queue
        self.run = run
        self.workers = workers
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.start_delay = start_delay
        self._wake_timer: asyncio.TimerHandle | None = None
        self.threads = ThreadPool("gitd-job")
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        recovered = self.queue.recover()
        if recovered:
            log.info("requeued %d job(s) interrupted by a previous shutdown", recovered)
        loop = asyncio.get_running_loop()
        self.queue.on_enqueue = lambda: loop.call_soon_threadsafe(self._wake_soon)
        self._tasks = [asyncio.create_task(self._worker(i), name=f"gitd-job-worker-{i}")
                       for i in range(self.workers)]

    def _wake_soon(self) -> None:
        """A job was queued: wake a worker after ``start_delay`` (a push that queued
        post-receive work is still finishing then; its jobs should not compete with it)."""
        if self.start_delay <= 0:
            self._wake.set()
        elif self._wake_timer is None:
            self._wake_timer = asyncio.get_running_loop().call_later(self.start_delay, self._timer_fired)

    def _timer_fired(self) -> None:
        self._wake_timer = None
        self._wake.set()

    async def stop(self) -> None:
        """Stop claiming jobs. A job still running is abandoned: it stays 'running' in the
        database and is queued again when the daemon next starts."""
        self._stopping = True
        self.queue.on_enqueue = None
        if self._wake_timer is not None:
            self._wake_timer.cancel()
            self._wake_timer = None
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _worker(self, index: int) -> None:
        while not self._stopping:
            try:
                job = self.queue.claim()
                if job is None:
                    await self._idle()
                    continue
                self._wake.set()  # there may be more: let another worker look
                await self._execute(job)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job worker %d: unexpected error; pausing", index)
                await asyncio.sleep(self.poll_interval)

    async def _idle(self) -> None:
        self._wake.clear()
        due = self.queue.next_due()
        timeout = self.poll_interval
        if due is not None:
            timeout = max(0.0, min(timeout, due - time.time()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _execute(self, job: Job) -> None:
        try:
            if self.timeout > 0:
                try:
                    async with asyncio.timeout(self.timeout):
                        await self.threads.run(self.run, job)
                except TimeoutError:
                    raise TimeoutError(f"the job ran longer than {self.timeout:g}s and was abandoned") from None
            else:
                await self.threads.run(self.run, job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            permanent = isinstance(exc, PermanentJobError)
            error = f"{type(exc).__name__}: {exc}"
            if not permanent:  # keep the traceback for the administrator; its last line is the error
                error = "".join(traceback.format_exception(exc)).rstrip()
            state = self.queue.fail(job, error, permanent=permanent)
            log.warning("job %d (%s, plugin %s) attempt %d/%d failed: %s: %s; %s", job.id, job.hook, job.plugin,
                        job.attempts, job.max_attempts, type(exc).__name__, exc,
                        "giving up" if state == "failed" else "will retry")
        else:
            self.queue.complete(job)
            log.debug("job %d (%s, plugin %s) done", job.id, job.hook, job.plugin)
