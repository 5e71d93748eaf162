"""SQLite through sqlite-utils: one connection per thread, WAL mode, migrations.

Another process may hold the database's write lock for a while (an administrator's sqlite3
shell, a CLI command, a slow disk). Readers never wait for it (WAL); writers do, for up to
``busy_timeout`` seconds. So the daemon makes its writes on the store's own threads
(``Store.run``), never on the event loop, where a wait would freeze every request; the
event loop's own connection waits at most ``on_event_loop(timeout)`` seconds, and a write
left there fails fast as ``DatabaseBusy`` (503 with Retry-After).
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from gitd.errors import ServiceUnavailable
from gitd.store.migrations import MIGRATIONS
from gitd.store.walstamp import WalStamp


def _import_sqlite_utils() -> type:
    """Import sqlite-utils without its optional pandas/numpy support.

    sqlite-utils imports pandas and numpy whenever they are installed (the test clients
    bring them), which costs ~0.5 s on every ``gitd`` command; gitd never stores their
    types. Hiding them during this one import keeps them importable for everyone else.
    """
    hidden = [name for name in ("pandas", "numpy") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        from sqlite_utils import Database
    finally:
        for name in hidden:
            del sys.modules[name]
    return Database


if TYPE_CHECKING:
    from sqlite_utils import Database
else:
    Database = _import_sqlite_utils()


def utcnow() -> str:
    """Now as an ISO 8601 UTC timestamp with milliseconds, e.g. 2024-01-01T00:00:00.000Z."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


T = TypeVar("T")
# Threads the store runs blocking database work on (Store.run).
STORE_THREADS = 4


class DatabaseBusy(ServiceUnavailable):
    """Another process held the database's write lock for longer than this write may wait."""

    code = "DatabaseBusy"

    def __init__(self, detail: str = ""):
        super().__init__("the server's database is busy (another process holds its write lock); try again shortly",
                         detail=detail or None, retry_after=5)


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite giving up on a lock another connection holds."""
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc))


def connect(path: Path, busy_timeout: float = 30.0) -> Database:
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=busy_timeout, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    return Database(conn)


class Store:
    """Owns the database file. ``store.db`` is this thread's sqlite-utils Database."""

    def __init__(self, path: Path, *, busy_timeout: float = 30.0):
        self.path = path
        self.busy_timeout = busy_timeout
        self._mine: dict[int, Database] = {}  # by thread id: see ``db``
        self._all: list[Database] = []
        self._lock = threading.Lock()
        self._wal: WalStamp | bool | None = None  # None: not looked at yet; False: use the PRAGMA
        self._threads: ThreadPoolExecutor | None = None

    @property
    def db(self) -> Database:
        """This thread's connection. Kept by thread id, not in a ``threading.local``: a native
        thread (pyarrow's and DuckDB's readers calling back into Python) gets a fresh Python
        thread state, and so an empty ``threading.local``, on every call, which made every
        such call open (and keep) a connection of its own. Thread ids are unique among live
        threads; one that is reused belongs to a thread that has ended (or is the same native
        thread again), so its connection is free to take over."""
        ident = threading.get_ident()
        db = self._mine.get(ident)
        if db is None:
            db = connect(self.path, self.busy_timeout)
            with self._lock:
                self._mine[ident] = db
                self._all.append(db)
        return db

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """A write transaction taken up front (BEGIN IMMEDIATE), so it never deadlocks."""
        db = self.db
        if db.conn.in_transaction:
            yield db
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        else:
            db.execute("COMMIT")

    async def run(self, function: Callable[..., T], /, *args: Any) -> T:
        """``function(*args)`` on one of the store's threads (each has its connection): for
        database writes from the event loop, which may wait up to ``busy_timeout`` seconds
        for another process's lock without holding up anything else."""
        if self._threads is None:
            with self._lock:
                if self._threads is None:
                    self._threads = ThreadPoolExecutor(STORE_THREADS, thread_name_prefix="gitd-db")
        return await asyncio.get_running_loop().run_in_executor(self._threads, function, *args)

    def on_event_loop(self, busy_timeout: float) -> None:
        """This thread runs the event loop: its writes wait at most ``busy_timeout`` seconds
        for a lock held elsewhere (then ``sqlite3.OperationalError``, shown as ``DatabaseBusy``)."""
        self.db.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")

    def probe_writable(self, timeout: float) -> str | None:
        """None if a write transaction can start within ``timeout`` seconds, else why not
        (blocking: call it off the loop). Takes the write lock for an instant, writes nothing."""
        try:
            conn = sqlite3.connect(str(self.path), isolation_level=None, timeout=timeout)
        except sqlite3.Error as exc:
            return str(exc)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            if is_busy(exc):
                return f"another process has held the write lock for over {timeout:g}s"
            return str(exc)
        finally:
            conn.close()
        return None

    def migrate(self) -> int:
        """Apply pending migrations; returns the schema version."""
        with self.transaction() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            done = {row[0] for row in db.execute("SELECT version FROM schema_migrations").fetchall()}
            for version, name, sql in MIGRATIONS:
                if version in done:
                    continue
                for statement in _statements(sql):
                    db.execute(statement)
                db.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    [version, name, utcnow()],
                )
            return max([v for v, _, _ in MIGRATIONS] + list(done))

    def version(self) -> tuple[object, int]:
        """A stamp that changes whenever the database may have changed for this thread: any
        commit by any connection or process (the WAL-index header, see walstamp.py; else
        ``PRAGMA data_version``) or any change made through this thread's own connection,
        committed or not (``total_changes``). For read caches."""
        conn = self.db.conn
        wal = self._wal
        if wal is None:
            wal = self._open_wal(conn)
        if wal is not False:
            return wal.stamp(), conn.total_changes
        return conn.execute("PRAGMA data_version").fetchone()[0], conn.total_changes

    def _open_wal(self, conn: sqlite3.Connection) -> WalStamp | bool:
        with self._lock:
            if self._wal is None:
                mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
                self._wal = (WalStamp.open(self.path) if mode == "wal" else None) or False
            return self._wal

    def close(self) -> None:
        if self._threads is not None:
            # Wait for calls already running: closing a connection while another thread runs a
            # statement on it crashes the process (SIGSEGV inside SQLite).
            self._threads.shutdown(wait=True, cancel_futures=True)
            self._threads = None
        with self._lock:
            for db in self._all:
                db.conn.close()
            self._all.clear()
            if self._wal:
                self._wal.close()  # after the connections: see walstamp.py on POSIX locks
            self._wal = None
            self._mine = {}


class ChangeStamp(Protocol):
    """Something whose ``version()`` changes whenever the data behind it may have changed
    (``Store``: any commit). Caches compare stamps; a multi-process deployment would swap
    what backs the stamp, not the caches."""

    def version(self) -> object: ...


class StampedCache:
    """Answers derived from the database, kept per thread while ``Store.version()`` stays the
    same: any commit anywhere, or any change through this thread's connection, drops them.
    For lookups asked on every request (repositories, tokens, memberships)::

        known = cache.current()
        if key in known:
            return known[key]
        ...compute...
        cache.remember(known, key, value)
    """

    def __init__(self, stamp: ChangeStamp, *, size: int = 10_000):
        self.stamp = stamp
        self.size = size
        self._local = threading.local()

    def current(self) -> dict:
        """This thread's answers, emptied first if the database may have changed."""
        stamp = self.stamp.version()
        local = self._local
        if getattr(local, "stamp", None) != stamp:
            local.stamp, local.known = stamp, {}
        return local.known

    def remember(self, known: dict, key: object, value: object) -> None:
        if len(known) >= self.size:
            known.clear()
        known[key] = value


def _statements(sql: str) -> list[str]:
    """Split a migration script into statements: at each ';' that ends a complete one (a
    trigger's body holds statements of its own, up to its END)."""
    out, pending = [], ""
    for piece in sql.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\n;"):
                out.append(pending.strip())
            pending = ""
    if pending.strip(" \t\n;"):
        raise ValueError(f"an incomplete statement in a migration: {pending.strip()[:80]!r}")
    return out
