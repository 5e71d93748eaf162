"""When syncs run: one durable task chain per pull mirror, a global cap, one sync per mirror.

* **The chain.** Each sync, when it ends, queues the next one ``interval`` seconds later
  plus a random ``jitter`` (sooner after a failure: ``retry_min`` doubling per failure,
  up to the interval), as a task keyed by the mirror's *generation*. A task whose
  generation is behind the mirror's is stale (a newer chain took over) and does nothing,
  so manual syncs, restarts and re-submissions never leave two chains running. Tasks
  are jobs: a daemon killed mid-sync runs the sync again when it restarts.
* **The cap.** At most ``max_concurrent`` syncs run at once in the daemon; a task that
  finds no free slot queues itself again a few seconds later rather than holding a job
  worker while it waits.
* **One at a time.** A second sync of the same mirror (a manual one while a scheduled one
  runs) waits its turn the same way.
* **The safety net.** When the plugin loads, a mirror whose next sync is long overdue
  (its chain was lost: the plugin was disabled while its task ran) gets a new chain.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from gitd import PluginContext, RepoInfo, TaskEvent

from .records import PullMirror, Records

WAIT_DELAY = (5.0, 15.0)
OVERDUE_GRACE = 600.0


class Scheduler:
    def __init__(self, context: PluginContext, records: Records, *, max_concurrent: int, jitter: float,
                 retry_min: float):
        self.context = context
        self.records = records
        self.jitter = jitter
        self.retry_min = retry_min
        self._slots = threading.BoundedSemaphore(max(1, max_concurrent))
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()

    # -- queueing ------------------------------------------------------------------------------
    def schedule(self, repo: RepoInfo, mirror: PullMirror, delay: float) -> None:
        """Queue the chain's next sync ``delay`` seconds from now."""
        generation = mirror.generation + 1
        self.context.submit(repo, "sync", {"gen": generation}, key=f"sync:{repo.id}:{generation}", delay=delay)
        self.records.advance(repo.id, generation, time.time() + delay)

    def sync_now(self, repo: RepoInfo) -> int | None:
        """A manual sync (``gitd mirror sync``, the API), queued now."""
        token = secrets.token_hex(6)
        return self.context.submit(repo, "sync", {"manual": token}, key=f"sync:{repo.id}:manual:{token}")

    def next_delay(self, mirror: PullMirror, failed: bool) -> float:
        if failed:
            backoff = self.retry_min * 2 ** max(0, mirror.failures - 1)
            return min(mirror.interval, backoff) + random.uniform(0, min(self.jitter, backoff / 4))
        return mirror.interval + random.uniform(0, self.jitter)

    def kick(self, find: Callable[[PullMirror], RepoInfo | None]) -> int:
        """Give every mirror whose chain is lost a new one; returns how many got one."""
        now, kicked = time.time(), 0
        for mirror in self.records.pulls():
            if mirror.interval <= 0 or mirror.next_run is None:
                continue
            if mirror.next_run < now - max(OVERDUE_GRACE, mirror.interval):
                repo = find(mirror)
                if repo is not None:
                    self.schedule(repo, mirror, random.uniform(0, min(self.jitter, 60.0)))
                    kicked += 1
        return kicked

    # -- running -------------------------------------------------------------------------------
    def _lock(self, repo_id: int) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(repo_id, threading.Lock())

    def _again(self, event: TaskEvent, why: str) -> None:
        assert event.repo is not None
        payload = dict(event.payload)
        payload["wait"] = int(payload.get("wait", 0)) + 1
        base = f"gen{payload['gen']}" if "gen" in payload else f"manual:{payload.get('manual')}"
        # A few seconds at first, then longer: a manual sync waiting for a long one does not
        # fill the job table with retries.
        delay = random.uniform(*WAIT_DELAY) * 2 ** min(payload["wait"] - 1, 3)
        self.context.submit(event.repo, "sync", payload, key=f"sync:{event.repo.id}:{base}:w{payload['wait']}",
                            delay=delay)
        self.context.log.info("mirror %s: sync waits (%s)", event.repo.full_name, why)

    def run(self, event: TaskEvent, sync: Callable[[RepoInfo, PullMirror], tuple[str | None, dict[str, Any]]]
            ) -> None:
        repo = event.repo
        if repo is None:
            return
        mirror = self.records.pull(repo.id)
        if mirror is None:
            return  # no longer a mirror
        generation = event.payload.get("gen")
        if generation is not None and int(generation) < mirror.generation:
            return  # a newer chain took over
        lock = self._lock(repo.id)
        if not lock.acquire(blocking=False):
            if generation is None:
                self._again(event, "another sync of this mirror is running")
            return  # a scheduled sync: the running one queues the next
        try:
            if not self._slots.acquire(blocking=False):
                self._again(event, "the concurrency cap is reached")
                return
            try:
                self.records.started(repo.id)
                error, result = sync(repo, mirror)
                self.records.finished(repo.id, error=error, result=result)
            finally:
                self._slots.release()
            mirror = self.records.pull(repo.id)
            if mirror is not None and mirror.interval > 0:
                self.schedule(repo, mirror, self.next_delay(mirror, error is not None))
        finally:
            lock.release()
