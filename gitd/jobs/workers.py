"""The worker pool that drains the job queue: asyncio tasks, each job on a pool thread."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from gitd.jobs.queue import Job, JobQueue, PermanentJobError
from gitd.jobs.threads import ThreadPool
from gitd.store.db import is_busy

log = logging.getLogger("gitd.jobs")
T = TypeVar("T")


class JobWorkers:
    """``workers`` asyncio tasks that claim jobs and run each on its own thread.

Every queue operation (claim, complete, fail) is a database write: each runs on the
store's threads, never on the event loop, so a write lock held by another process delays
the jobs and nothing else.

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

    async def _db(self, function: Callable[..., T], *args: Any) -> T:
        return await self.queue.store.run(function, *args)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.queue.on_enqueue = lambda: loop.call_soon_threadsafe(self._wake_soon)
        recovery = asyncio.create_task(self._recover(), name="gitd-job-recovery")
        self._tasks = [recovery, *(asyncio.create_task(self._worker(i, recovery), name=f"gitd-job-worker-{i}")
                                   for i in range(self.workers))]

    async def _recover(self) -> None:
        """Requeue the jobs a previous daemon left running, before any worker claims one; a
        database locked by another process delays it (and the jobs), not the daemon's start."""
        while True:
            try:
                recovered = await self._db(self.queue.recover)
            except Exception as exc:
                log.warning("cannot requeue interrupted jobs yet (%s); trying again", exc)
                await asyncio.sleep(max(1.0, self.poll_interval))
                continue
            if recovered:
                log.info("requeued %d job(s) interrupted by a previous shutdown", recovered)
            return

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

    async def stop(self, grace: float = 5.0) -> None:
        """Stop claiming jobs. Jobs running get ``grace`` seconds to finish (the daemon then
        closes the database and storage their threads use: closing them under a running
        job's feet can crash the process); a job still running after that is abandoned: it
        stays 'running' in the database and is queued again when the daemon next starts."""
        self._stopping = True
        self.queue.on_enqueue = None
        if self._wake_timer is not None:
            self._wake_timer.cancel()
            self._wake_timer = None
        self._wake.set()
        if self._tasks and grace > 0:
            await asyncio.wait(self._tasks, timeout=grace)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _worker(self, index: int, recovery: asyncio.Task[None]) -> None:
        await asyncio.shield(recovery)
        while not self._stopping:
            try:
                job = await self._db(self.queue.claim)
                if job is None:
                    await self._idle()
                    continue
                self._wake.set()  # there may be more: let another worker look
                await self._execute(job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_busy(exc):  # another process held the database's write lock past the busy timeout
                    log.warning("job worker %d: the database is busy (%s); trying again", index, exc)
                else:
                    log.exception("job worker %d: unexpected error; pausing", index)
                await asyncio.sleep(self.poll_interval)

    async def _idle(self) -> None:
        self._wake.clear()
        due = await self._db(self.queue.next_due)
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
            state = await self._db(functools.partial(self.queue.fail, job, error, permanent=permanent))
            log.warning("job %d (%s, plugin %s) attempt %d/%d failed: %s: %s; %s", job.id, job.hook, job.plugin,
                        job.attempts, job.max_attempts, type(exc).__name__, exc,
                        "giving up" if state == "failed" else "will retry")
        else:
            await self._db(self.queue.complete, job)
            log.debug("job %d (%s, plugin %s) done", job.id, job.hook, job.plugin)
