"""Best-effort last-use writes and the store's lock handling, against a write lock another
connection really holds."""

from __future__ import annotations

import asyncio
import sqlite3
import time

from gitd.access.auth import Authenticator
from gitd.store import Accounts, Store
from gitd.store.lastused import LastUsed


def _holder(path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("UPDATE accounts SET email = email")
    return conn


def _last_used(store: Store, token_id: int) -> str | None:
    return sqlite3.connect(str(store.path)).execute("SELECT last_used_at FROM tokens WHERE id = ?",
                                                    [token_id]).fetchone()[0]


def test_a_token_use_under_a_held_lock_neither_waits_nor_fails_and_is_written_later(tmp_path):
    store = Store(tmp_path / "gitd.db")
    store.migrate()
    accounts = Accounts(store)
    last_used = LastUsed(store, busy_timeout=0.2)
    auth = Authenticator(accounts, b"k" * 32, record_use=last_used.token_used)
    token = auth.create_token(accounts.create_user("alice"), "t")
    holder = _holder(store.path)
    try:
        started = time.monotonic()
        principal = auth.principal_for_token(token)
        # Generous for a busy machine: the write it no longer makes would wait the store's 30 s.
        assert time.monotonic() - started < 1.0
        assert principal is not None and principal.token_id is not None
        time.sleep(0.6)  # the writer tried (and failed) at least once meanwhile
        assert _last_used(store, principal.token_id) is None
    finally:
        holder.execute("COMMIT")
        holder.close()
    deadline = time.monotonic() + 10
    while _last_used(store, principal.token_id) is None:
        assert time.monotonic() < deadline, "the use was never written"
        time.sleep(0.05)


def test_probe_writable_reports_a_lock_held_elsewhere(tmp_path):
    store = Store(tmp_path / "gitd.db")
    store.migrate()
    assert store.probe_writable(0.1) is None
    holder = _holder(store.path)
    try:
        reason = store.probe_writable(0.1)
        assert reason is not None and "write lock" in reason
    finally:
        holder.execute("COMMIT")
        holder.close()
    assert store.probe_writable(0.1) is None


def test_run_keeps_the_event_loop_free_while_a_write_waits(tmp_path):
    store = Store(tmp_path / "gitd.db", busy_timeout=0.5)
    store.migrate()
    holder = _holder(store.path)

    async def main() -> tuple[int, BaseException | None]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.ensure_future(tick())
        try:
            await store.run(lambda: store.db.execute("UPDATE accounts SET email = email"))
        except sqlite3.OperationalError as exc:
            error: BaseException | None = exc
        else:
            error = None
        ticker.cancel()
        return ticks, error

    try:
        ticks, error = asyncio.run(main())
    finally:
        holder.execute("COMMIT")
        holder.close()
        store.close()
    assert error is not None and "locked" in str(error)
    assert ticks >= 10  # the loop ran all along


def test_close_waits_for_a_write_in_progress_before_the_store_closes_its_connections(tmp_path):
    """Regression: the daemon's shutdown closed the store's connections while the background
    writer was inside a transaction on one of them, and the process died (SIGSEGV in SQLite)."""
    store = Store(tmp_path / "gitd.db")
    store.migrate()
    accounts = Accounts(store)
    last_used = LastUsed(store, busy_timeout=0.5)
    auth = Authenticator(accounts, b"k" * 32, record_use=last_used.token_used)
    token = auth.create_token(accounts.create_user("alice"), "t")
    holder = _holder(store.path)
    principal = auth.principal_for_token(token)
    assert principal is not None and principal.token_id is not None
    time.sleep(0.1)  # the writer is now waiting for the lock, inside its flush
    writer = last_used._thread
    assert writer is not None and writer.is_alive()
    holder.execute("COMMIT")
    holder.close()
    last_used.close()
    assert not writer.is_alive(), "close() returned while the writer could still use its connection"
    store.close()
    assert _last_used(store, principal.token_id) is not None
    last_used.token_used(principal.token_id)  # after close: noted, but no new writer starts
    assert last_used._thread is writer
