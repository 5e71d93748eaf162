"""Store.version() from the WAL-index header: every commit, by any connection or process, changes it;
nothing else does; and the shared -shm descriptor never costs SQLite its locks."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from gitd.store.accounts import Accounts
from gitd.store.db import Store
from gitd.store.repos import Repos
from gitd.store.walstamp import WalStamp


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    store = Store(tmp_path / "gitd.db")
    store.migrate()
    store.close()
    return tmp_path / "gitd.db"


def write_elsewhere(db_file: Path, sql: str) -> None:
    """Commit ``sql`` from another process, the way the gitd command does while the daemon runs."""
    code = f"import sqlite3; c = sqlite3.connect({str(db_file)!r}); c.execute({sql!r}); c.commit()"
    subprocess.run([sys.executable, "-c", code], check=True)


def shm_locks_of_this_process(db_file: Path) -> list[str]:
    inode = os.stat(f"{db_file}-shm").st_ino
    with open("/proc/locks") as f:
        return [line for line in f if f":{inode} " in line and f" {os.getpid()} " in line]


def test_the_stamp_is_read_from_the_header_and_changes_with_every_commit_only(db_file):
    store = Store(db_file)
    try:
        first = store.version()
        assert isinstance(first[0], bytes)  # the WAL-index header, not the PRAGMA's number
        assert store.version() == first  # reads change nothing
        store.db.execute("SELECT count(*) FROM repos").fetchall()
        assert store.version() == first

        other = sqlite3.connect(str(db_file), isolation_level=None)
        other.execute("CREATE TABLE t (x)")  # another connection in this process
        second = store.version()
        assert second != first
        write_elsewhere(db_file, "INSERT INTO t VALUES (1)")  # another process
        third = store.version()
        assert third not in (first, second)

        other.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the WAL starts over...
        after_checkpoint = store.version()
        other.execute("INSERT INTO t VALUES (2)")  # ...and the same frame numbers come back
        assert store.version() not in (first, second, third, after_checkpoint)
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO t VALUES (3)")
        uncommitted = store.version()
        other.execute("ROLLBACK")
        assert store.version() == uncommitted  # nothing committed: nothing to drop
        other.close()
    finally:
        store.close()


def test_changes_through_this_threads_own_connection_count_before_commit(db_file):
    store = Store(db_file)
    try:
        before = store.version()
        with store.transaction() as db:
            db.execute("INSERT INTO accounts (name, kind, is_admin, created_at) VALUES ('x', 'user', 0, 'now')")
            assert store.version() != before  # a cache read inside the transaction must see the row
    finally:
        store.close()


def test_a_cached_lookup_sees_a_change_made_by_another_process_at_once(db_file):
    store = Store(db_file)
    try:
        repos = Repos(store)
        repos.insert(Accounts(store).create_user("ann"), "m", "model", private=False, default_branch="main")
        assert repos.find("model", "ann", "m").private is False
        assert repos.find("model", "ann", "m").private is False  # answered from the cache
        write_elsewhere(db_file, "UPDATE repos SET private = 1")
        assert repos.find("model", "ann", "m").private is True
    finally:
        store.close()


def test_without_a_wal_index_the_store_falls_back_to_the_pragma(tmp_path):
    assert WalStamp.open(tmp_path / "missing.db") is None
    plain = tmp_path / "plain.db"
    conn = sqlite3.connect(str(plain), isolation_level=None)
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    Path(f"{plain}-shm").write_bytes(b"\0" * 200)  # a stale file from an earlier WAL session
    store = Store(plain)
    try:
        store.db.conn.execute("PRAGMA journal_mode=DELETE")
        first = store.version()
        assert isinstance(first[0], int)  # not the stale file's bytes
        write_elsewhere(plain, "INSERT INTO t VALUES (1)")
        assert store.version() != first
    finally:
        store.close()


def test_regression_closing_one_store_keeps_sqlites_locks_for_the_others(db_file):
    """Closing any descriptor of a file drops all of the process's POSIX locks on it, SQLite's too:
    the -shm descriptor is shared and closed only with the last Store (see gitd/store/walstamp.py)."""
    first, second = Store(db_file), Store(db_file)
    first.version(), second.version()
    assert shm_locks_of_this_process(db_file)  # SQLite holds its shared lock on the -shm file
    first.close()
    assert shm_locks_of_this_process(db_file), "closing a Store dropped SQLite's locks for another"
    before = second.version()
    write_elsewhere(db_file, "CREATE TABLE t (x)")
    assert second.version() != before  # the shared mapping still works
    second.close()
    shm = os.path.realpath(f"{db_file}-shm")
    assert not [fd for fd in os.listdir("/proc/self/fd") if os.path.realpath(f"/proc/self/fd/{fd}") == shm]
