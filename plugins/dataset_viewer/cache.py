"""The viewer's disk cache: answers and local files, bounded in size, evicted least recently used.

Everything here can be recomputed: answers from the Parquet files, local Parquet copies
from refs/convert/parquet, search indexes from the copies. The cache lives in the
plugin's own directory (``context.cache_dir``): ``cache.db`` (an SQLite file: answers and
the list of local files with their sizes and last use) and ``files/``.

Answers are keyed by the caller (repository id, commit, config, split, the query); a new
commit gives new keys, so nothing is ever invalidated in place: old entries age out.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

TOUCH_EVERY = 30.0  # seconds between two "last used" updates of one entry
SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, repo_id INTEGER NOT NULL, size INTEGER NOT NULL,
                                    used REAL NOT NULL, body BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS answers_used ON answers (used);
CREATE INDEX IF NOT EXISTS answers_repo ON answers (repo_id);
CREATE TABLE IF NOT EXISTS files (name TEXT PRIMARY KEY, repo_id INTEGER, size INTEGER NOT NULL, used REAL NOT NULL);
CREATE INDEX IF NOT EXISTS files_used ON files (used);
"""


class DiskCache:
    def __init__(self, root: Path, max_bytes: int):
        self.root = root
        self.files_dir = root / "files"
        self.tmp_dir = root / "tmp"
        self.max_bytes = max_bytes
        self._local = threading.local()
        self._producing: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self._db().executescript(SCHEMA)
        self._sweep()

    def _sweep(self, age: float = 6 * 3600) -> None:
        """Remove temporary files a crashed job left behind."""
        cutoff = time.time() - age
        for entry in self.tmp_dir.iterdir():
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime < cutoff:
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.root / "cache.db", timeout=30, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    # -- answers ---------------------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        db = self._db()
        row = db.execute("SELECT body, used FROM answers WHERE key = ?", [key]).fetchone()
        if row is None:
            return None
        now = time.time()
        if now - row[1] > TOUCH_EVERY:
            db.execute("UPDATE answers SET used = ? WHERE key = ?", [now, key])
        return bytes(row[0])

    def put(self, key: str, repo_id: int, body: bytes) -> None:
        if len(body) > self.max_bytes // 10:
            return  # one answer may not take the cache over
        self._db().execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?)",
                           [key, repo_id, len(body), time.time(), body])
        self.evict()

    def answer(self, key: str, repo_id: int, compute: Callable[[], bytes]) -> bytes:
        found = self.get(key)
        if found is None:
            found = compute()
            self.put(key, repo_id, found)
        return found

    # -- files -----------------------------------------------------------------------------------
    def path(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"not a cache file name: {name!r}")
        return self.files_dir / name

    def file(self, name: str, repo_id: int | None, produce: Callable[[Path], None]) -> Path:
        """The local file ``name``, made by ``produce(tmp_path)`` when it is not here (once,
        however many threads ask at the same time)."""
        path = self.path(name)
        if self._touch(name, path):
            return path
        with self._lock:
            lock = self._producing.setdefault(name, threading.Lock())
        with lock:
            if self._touch(name, path):
                return path
            tmp = self.tmp_dir / f"{uuid.uuid4().hex}.part"
            try:
                produce(tmp)
                os.replace(tmp, path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
            self.adopt(name, repo_id, path)
        return path

    def adopt(self, name: str, repo_id: int | None, source: Path) -> Path:
        """Move ``source`` into the cache as ``name`` (the job's own output)."""
        path = self.path(name)
        if source != path:
            os.replace(source, path)
        self._db().execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)",
                           [name, repo_id, path.stat().st_size, time.time()])
        self.evict()
        return path

    def has(self, name: str) -> bool:
        return self._touch(name, self.path(name))

    def _touch(self, name: str, path: Path) -> bool:
        db = self._db()
        row = db.execute("SELECT used FROM files WHERE name = ?", [name]).fetchone()
        if row is None or not path.exists():
            return False
        now = time.time()
        if now - row[0] > TOUCH_EVERY:
            db.execute("UPDATE files SET used = ? WHERE name = ?", [now, name])
        return True

    # -- bounds ----------------------------------------------------------------------------------
    def size(self) -> int:
        db = self._db()
        answers = db.execute("SELECT coalesce(sum(size), 0) FROM answers").fetchone()[0]
        files = db.execute("SELECT coalesce(sum(size), 0) FROM files").fetchone()[0]
        return int(answers) + int(files)

    def evict(self) -> int:
        """Drop least recently used entries until the cache is within its size; returns how many."""
        total = self.size()
        if total <= self.max_bytes:
            return 0
        target, dropped = self.max_bytes * 9 // 10, 0
        db = self._db()
        candidates = db.execute(
            "SELECT kind, key, size FROM (SELECT 'a' AS kind, key, size, used FROM answers UNION ALL "
            "SELECT 'f', name, size, used FROM files) ORDER BY used").fetchall()
        for kind, key, size in candidates:
            if total <= target:
                break
            if kind == "a":
                db.execute("DELETE FROM answers WHERE key = ?", [key])
            else:
                db.execute("DELETE FROM files WHERE name = ?", [key])
                with contextlib.suppress(FileNotFoundError):
                    (self.files_dir / key).unlink()
            total -= size
            dropped += 1
        return dropped

    def forget_repo(self, repo_id: int) -> None:
        """Drop a deleted repository's answers and files."""
        db = self._db()
        db.execute("DELETE FROM answers WHERE repo_id = ?", [repo_id])
        for (name,) in db.execute("SELECT name FROM files WHERE repo_id = ?", [repo_id]).fetchall():
            db.execute("DELETE FROM files WHERE name = ?", [name])
            with contextlib.suppress(FileNotFoundError):
                (self.files_dir / name).unlink()

    def scratch(self) -> Path:
        """A fresh directory for a job's temporary files (the caller removes it)."""
        path = self.tmp_dir / uuid.uuid4().hex
        path.mkdir()
        return path
