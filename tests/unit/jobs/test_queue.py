"""The SQLite job queue and its workers, on a real database file."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path

import pytest

from gitd.errors import Conflict, NotFound
from gitd.jobs.queue import ALL_PLUGINS, Job, JobQueue, PermanentJobError, backoff_delay
from gitd.jobs.workers import JobWorkers
from gitd.store import Store


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "gitd.db")
    s.migrate()
    yield s
    s.close()


def queue(store: Store, **kw) -> JobQueue:
    return JobQueue(store, **{"max_attempts": 3, "backoff_base": 2.0, "backoff_max": 30.0, **kw})


def test_backoff_doubles_and_is_capped():
    assert [backoff_delay(n, 2.0, 30.0) for n in range(1, 7)] == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff_delay(1, 0.5, 600) == 0.5


def test_enqueue_is_idempotent_per_key(store):
    q = queue(store)
    first = q.enqueue("gitd_post_receive", "p", {"n": 1}, dedup_key="k1", repo_id=7)
    assert first is not None
    assert q.enqueue("gitd_post_receive", "p", {"n": 2}, dedup_key="k1", repo_id=7) is None
    assert q.enqueue("gitd_post_receive", "q", {"n": 3}, dedup_key="k2", repo_id=7) is not None
    jobs = q.list()
    assert len(jobs) == 2 and q.get(first).payload == {"n": 1}
    # Even a finished job keeps its key: the same work is never recorded twice.
    job = q.claim()
    q.complete(job)
    assert q.enqueue("gitd_post_receive", "p", {"n": 1}, dedup_key="k1") is None


def test_enqueue_many_records_one_job_per_new_key_in_order_and_wakes_the_workers_once(store):
    q = queue(store)
    wakes = []
    q.on_enqueue = lambda: wakes.append(1)
    existing = q.enqueue("gitd_post_receive", "b", {"n": 0}, dedup_key="kb", repo_id=7)
    ids = q.enqueue_many("gitd_post_receive", [("a", "ka"), ("b", "kb"), ("c", "kc")], {"n": 1}, repo_id=7)
    assert len(ids) == 2 and existing not in ids and len(wakes) == 2
    jobs = [q.get(i) for i in ids]
    assert [(j.plugin, j.dedup_key, j.payload, j.repo_id, j.state) for j in jobs] == [
        ("a", "ka", {"n": 1}, 7, "queued"), ("c", "kc", {"n": 1}, 7, "queued")]
    assert [q.claim().id for _ in range(3)] == [existing, *ids]  # plugin order
    assert q.enqueue_many("gitd_post_receive", [("a", "ka"), ("c", "kc")], {}) == []
    assert q.enqueue_many("gitd_post_receive", [], {}) == [] and len(wakes) == 2


def test_enqueue_many_in_a_failed_transaction_records_nothing(store):
    q = queue(store)
    with pytest.raises(RuntimeError), store.transaction():
        q.enqueue_many("h", [("a", "ka"), ("b", "kb")], {})
        raise RuntimeError("boom")
    assert q.list() == []


def test_claim_takes_due_jobs_in_order_and_each_only_once(store):
    q = queue(store)
    later = q.enqueue("h", "p", {}, dedup_key="later", delay=60)
    a = q.enqueue("h", "p", {}, dedup_key="a")
    b = q.enqueue("h", "p", {}, dedup_key="b")
    claimed = [q.claim(), q.claim()]
    assert [j.id for j in claimed] == [a, b]
    assert all(j.state == "running" and j.attempts == 1 for j in claimed)
    assert q.claim() is None  # `later` is not due yet
    assert q.get(later).state == "queued"
    assert q.next_due() == pytest.approx(time.time() + 60, abs=5)


def test_claim_is_atomic_across_threads(store):
    q = queue(store)
    ids = {q.enqueue("h", "p", {}, dedup_key=f"k{i}") for i in range(40)}
    got: list[int] = []
    lock = threading.Lock()

    def drain():
        while (job := q.claim()) is not None:
            with lock:
                got.append(job.id)

    threads = [threading.Thread(target=drain) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == sorted(ids)  # every job claimed exactly once


def test_failures_back_off_then_the_job_is_kept_failed_with_its_error(store):
    q = queue(store)
    job_id = q.enqueue("h", "p", {}, dedup_key="k")
    for attempt in (1, 2):
        job = q.claim()
        assert job.attempts == attempt
        before = time.time()
        assert q.fail(job, f"boom {attempt}") == "queued"
        queued = q.get(job_id)
        assert queued.state == "queued" and queued.last_error == f"boom {attempt}"
        assert queued.run_after == pytest.approx(before + backoff_delay(attempt, 2.0, 30.0), abs=1)
        assert q.claim() is None  # backing off
        store.db.execute("UPDATE jobs SET run_after = 0 WHERE id = ?", [job_id])  # time passes
    job = q.claim()
    assert q.fail(job, "boom 3") == "failed"
    failed = q.get(job_id)
    assert (failed.state, failed.attempts, failed.last_error) == ("failed", 3, "boom 3")
    assert [j.id for j in q.list(state="failed")] == [job_id]
    assert q.claim() is None

    retried = q.retry(job_id)
    assert (retried.state, retried.attempts) == ("queued", 0)
    job = q.claim()
    q.complete(job)
    assert q.get(job_id).state == "done" and q.get(job_id).last_error is None


def test_permanent_failure_skips_the_retries(store):
    q = queue(store)
    job_id = q.enqueue("h", "p", {}, dedup_key="k")
    assert q.fail(q.claim(), "plugin gone", permanent=True) == "failed"
    assert q.get(job_id).attempts == 1


def test_retry_of_a_missing_or_running_job_is_refused(store):
    q = queue(store)
    with pytest.raises(NotFound):
        q.retry(12345)
    job_id = q.enqueue("h", "p", {}, dedup_key="k")
    q.claim()
    with pytest.raises(Conflict):
        q.retry(job_id)


def test_recover_requeues_jobs_a_dead_daemon_was_running(store):
    q = queue(store)
    job_id = q.enqueue("h", "p", {}, dedup_key="k")
    q.claim()
    # A second connection (another process, after a crash) recovers it.
    other = Store(store.path)
    try:
        assert JobQueue(other).recover() == 1
    finally:
        other.close()
    job = q.claim()
    assert job.id == job_id and job.attempts == 2


def test_discard_only_removes_waiting_jobs(store):
    q = queue(store)
    waiting = q.enqueue("h", ALL_PLUGINS, {}, dedup_key="w", delay=60)
    running = q.enqueue("h", "p", {}, dedup_key="r")
    q.claim()
    assert q.discard(waiting) is True and q.discard(running) is False
    assert [j.id for j in q.list()] == [running]


async def _run_workers(q: JobQueue, run, until, timeout: float = 10.0) -> None:
    workers = JobWorkers(q, run, workers=2, poll_interval=0.05)
    await workers.start()
    try:
        deadline = time.monotonic() + timeout
        while not until():
            assert time.monotonic() < deadline, "workers did not finish in time"
            await asyncio.sleep(0.02)
    finally:
        await workers.stop()


def test_workers_run_jobs_on_their_own_threads_and_retry_failures(store):
    q = queue(store, backoff_base=0.05)
    seen: list[tuple[int, str]] = []
    attempts: dict[int, int] = {}

    def run(job: Job) -> None:
        attempts[job.id] = attempts.get(job.id, 0) + 1
        seen.append((job.id, threading.current_thread().name))
        if job.payload.get("fail_times", 0) >= attempts[job.id]:
            raise RuntimeError(f"failure {attempts[job.id]}")
        if job.payload.get("exit"):
            sys.exit(1)  # a plugin calling sys.exit must not stop the worker
        if job.payload.get("permanent"):
            raise PermanentJobError("no such plugin")

    ok = q.enqueue("h", "p", {}, dedup_key="ok")
    flaky = q.enqueue("h", "p", {"fail_times": 2}, dedup_key="flaky")
    exits = q.enqueue("h", "p", {"exit": True}, dedup_key="exit")
    gone = q.enqueue("h", "p", {"permanent": True}, dedup_key="gone")

    def settled() -> bool:
        return all(q.get(i).state in ("done", "failed") for i in (ok, flaky, exits, gone))

    asyncio.run(_run_workers(q, run, settled))
    assert q.get(ok).state == "done" and q.get(ok).attempts == 1
    assert q.get(flaky).attempts == 3 and q.get(flaky).last_error is None
    exited = q.get(exits)  # retried like any failure, and the workers lived on
    assert (exited.state, exited.attempts) == ("failed", 3)
    assert exited.last_error.splitlines()[-1] == "gitd.jobs.threads.PluginCrashed: SystemExit: 1"
    assert q.get(gone).state == "failed" and q.get(gone).attempts == 1
    assert q.get(gone).last_error == "PermanentJobError: no such plugin"
    assert all(name.startswith("gitd-job-") for _, name in seen)


def test_a_job_enqueued_while_workers_idle_runs_promptly(store):
    q = queue(store)
    done = threading.Event()

    async def scenario() -> float:
        workers = JobWorkers(q, lambda job: done.set(), workers=1, poll_interval=30.0)
        await workers.start()
        try:
            await asyncio.sleep(0.1)
            started = time.monotonic()
            q.enqueue("h", "p", {}, dedup_key="wake")
            while not done.is_set():
                await asyncio.sleep(0.01)
            return time.monotonic() - started
        finally:
            await workers.stop()

    assert asyncio.run(scenario()) < 5.0  # woken by the enqueue, not by the 30 s poll


def test_a_job_that_overruns_its_time_limit_is_retried_and_the_worker_moves_on(store):
    q = queue(store, backoff_base=0.05)
    release = threading.Event()
    ran: list[int] = []

    def run(job: Job) -> None:
        ran.append(job.id)
        if job.payload.get("hang"):
            release.wait(30)

    hung = q.enqueue("h", "p", {"hang": True}, dedup_key="hang")
    after = q.enqueue("h", "p", {}, dedup_key="after")

    async def scenario() -> None:
        workers = JobWorkers(q, run, workers=1, poll_interval=0.05, timeout=0.2)
        await workers.start()
        try:
            deadline = time.monotonic() + 10
            while q.get(after).state != "done" or q.get(hung).attempts < 2:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
        finally:
            await workers.stop()

    asyncio.run(scenario())
    release.set()
    assert q.get(hung).last_error.splitlines()[-1] == "TimeoutError: the job ran longer than 0.2s and was abandoned"
    assert q.get(after).state == "done"  # one worker, yet not stuck behind the hung job


def test_regression_stop_lets_a_running_job_finish_before_the_daemon_closes_its_storage(store):
    """The daemon closes the database and plugins' storage right after the workers stop:
    a job thread still inside SQLite then crashed the process (SIGSEGV on SIGTERM)."""
    q = queue(store)
    started, release = threading.Event(), threading.Event()
    finished: list[int] = []

    def run(job: Job) -> None:
        started.set()
        release.wait(5)
        finished.append(job.id)

    job_id = q.enqueue("h", "p", {}, dedup_key="slow")

    async def scenario() -> None:
        workers = JobWorkers(q, run, workers=1, poll_interval=0.05)
        await workers.start()
        while not started.is_set():
            await asyncio.sleep(0.01)
        asyncio.get_running_loop().call_later(0.3, release.set)
        await workers.stop(grace=10)
        assert finished == [job_id]  # stop() returned only once the job was done
        abandoned = JobWorkers(q, lambda job: time.sleep(2), workers=1, poll_interval=0.05)
        q.enqueue("h", "p", {}, dedup_key="slower")
        await abandoned.start()
        await asyncio.sleep(0.3)
        t0 = time.monotonic()
        await abandoned.stop(grace=0.2)  # bounded: a job that outlives the grace is abandoned
        assert time.monotonic() - t0 < 1.5

    asyncio.run(scenario())
    assert next(j for j in q.list() if j.id == job_id).state == "done"
