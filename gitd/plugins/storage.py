"""Plugin storage: each plugin's own tables in the daemon's database, and nothing else.

A plugin's tables are named ``plugin_<name>_<table>``. Its connections carry an SQLite
authorizer that refuses any statement touching another table (gitd's own, or another
plugin's), ``ATTACH``, and pragmas other than schema introspection: a plugin cannot read
token hashes or private repositories' rows through its storage, by mistake or on
purpose. In SQL given to ``migrate``, ``execute`` and ``query``, ``{prefix}`` stands for
the plugin's table prefix::

    storage.migrate([
        "CREATE TABLE {prefix}tags (repo_id INTEGER, tag TEXT, PRIMARY KEY (repo_id, tag))",
        "CREATE INDEX {prefix}tags_by_tag ON {prefix}tags (tag)",
    ])
    storage.execute("INSERT OR IGNORE INTO {prefix}tags VALUES (?, ?)", [repo.id, "gguf"])

Migrations are numbered by their position in the list: append new ones, never edit
shipped ones (as gitd does with its own schema). ``kv`` is a small JSON key-value store
in the same namespace.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gitd.store.db import Database, utcnow

_NAME_RE = re.compile(r"^[a-z0-9_]{1,48}$")
# Tables SQLite keeps for itself: readable (schema introspection); sqlite_master is also
# written by SQLite itself while it runs a plugin's CREATE/ALTER/DROP of its own tables.
_SCHEMA_TABLES = {"sqlite_master", "sqlite_schema", "sqlite_temp_master", "sqlite_temp_schema"}
# Pragmas a plugin may run: schema introspection, and two that only change how this
# connection behaves (sqlite-utils sets recursive_triggers on every connection it wraps).
_PRAGMAS = {"table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
            "foreign_key_list", "recursive_triggers", "foreign_keys"}

_A = sqlite3
# action -> which argument names the table (or object) it applies to
_TABLE_ARG = {
    _A.SQLITE_READ: 1, _A.SQLITE_INSERT: 1, _A.SQLITE_UPDATE: 1, _A.SQLITE_DELETE: 1,
    _A.SQLITE_CREATE_TABLE: 1, _A.SQLITE_DROP_TABLE: 1, _A.SQLITE_CREATE_INDEX: 2, _A.SQLITE_DROP_INDEX: 2,
    _A.SQLITE_CREATE_TRIGGER: 2, _A.SQLITE_DROP_TRIGGER: 2, _A.SQLITE_CREATE_VIEW: 1, _A.SQLITE_DROP_VIEW: 1,
    _A.SQLITE_ALTER_TABLE: 2, _A.SQLITE_ANALYZE: 1, _A.SQLITE_REINDEX: 1,
}
_ALWAYS = {_A.SQLITE_SELECT, _A.SQLITE_TRANSACTION, _A.SQLITE_FUNCTION, _A.SQLITE_SAVEPOINT, _A.SQLITE_RECURSIVE}
_WRITES = {_A.SQLITE_INSERT, _A.SQLITE_UPDATE, _A.SQLITE_DELETE}


def table_prefix(plugin: str) -> str:
    name = re.sub(r"[^a-z0-9]+", "_", plugin.lower()).strip("_")
    if not name:
        raise ValueError(f"plugin name {plugin!r} has no letters or digits")
    return f"plugin_{name}_"


class PluginStorage:
    def __init__(self, db_path: Path, plugin: str, *, busy_timeout: float = 30.0):
        self.db_path = db_path
        self.plugin = plugin
        self.prefix = table_prefix(plugin)
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.kv = KeyValue(self)

    # -- connections -------------------------------------------------------------------------
    def _authorize(self, action: int, arg1: str | None, arg2: str | None, db: str | None,
                   source: str | None) -> int:
        if action in _ALWAYS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_PRAGMA:
            return sqlite3.SQLITE_OK if arg1 in _PRAGMAS else sqlite3.SQLITE_DENY
        index = _TABLE_ARG.get(action)
        if index is None:  # ATTACH, DETACH, temporary objects, virtual tables, ...
            return sqlite3.SQLITE_DENY
        table = (arg1 if index == 1 else arg2) or ""
        if db not in (None, "main"):
            return sqlite3.SQLITE_DENY
        if table.startswith(self.prefix):
            return sqlite3.SQLITE_OK
        if table in _SCHEMA_TABLES and (action == sqlite3.SQLITE_READ or (action in _WRITES and source is None)):
            return sqlite3.SQLITE_OK
        if table == "sqlite_sequence" and action == sqlite3.SQLITE_READ:
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (autocommit; use ``transaction()`` to group writes)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(str(self.db_path), isolation_level=None, timeout=self.busy_timeout,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            conn.row_factory = sqlite3.Row
            conn.set_authorizer(self._authorize)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @property
    def db(self) -> Database:
        """This thread's connection as a sqlite-utils ``Database`` (same restrictions)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = Database(self.conn)
        return db

    def table_name(self, name: str) -> str:
        """The real name of the plugin's table ``name`` (``plugin_<plugin>_<name>``)."""
        if not _NAME_RE.match(name):
            raise ValueError(f"table names are 1-48 lowercase letters, digits or '_': {name!r}")
        return self.prefix + name

    def table(self, name: str) -> Any:
        """The plugin's table ``name`` as a sqlite-utils ``Table``."""
        return self.db[self.table_name(name)]

    def _sql(self, sql: str) -> str:
        return sql.replace("{prefix}", self.prefix)

    # -- statements --------------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(self._sql(sql), params)

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        return [dict(row) for row in self.conn.execute(self._sql(sql), params).fetchall()]

    @contextmanager
    def transaction(self) -> Iterator[PluginStorage]:
        """A write transaction taken up front (``BEGIN IMMEDIATE``); nested calls join it."""
        conn = self.conn
        if conn.in_transaction:
            yield self
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    def migrate(self, migrations: Sequence[str]) -> int:
        """Apply the migrations not applied yet, each in one transaction with its record;
        returns the schema version (the number of migrations applied)."""
        with self.transaction():
            self.execute("CREATE TABLE IF NOT EXISTS {prefix}schema "
                         "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
            done = {row["version"] for row in self.query("SELECT version FROM {prefix}schema")}
            for version, script in enumerate(migrations, start=1):
                if version in done:
                    continue
                for statement in (s.strip() for s in self._sql(script).split(";")):
                    if statement:
                        self.conn.execute(statement)
                self.execute("INSERT INTO {prefix}schema (version, applied_at) VALUES (?, ?)", [version, utcnow()])
        return len(migrations)

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()


class KeyValue:
    """JSON values by string key, in the plugin's ``kv`` table."""

    def __init__(self, storage: PluginStorage):
        self.storage = storage
        self._ready = False

    def _table(self) -> None:
        if not self._ready:
            self.storage.execute("CREATE TABLE IF NOT EXISTS {prefix}kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._ready = True

    def get(self, key: str, default: Any = None) -> Any:
        self._table()
        row = self.storage.conn.execute(f"SELECT value FROM {self.storage.prefix}kv WHERE key = ?", [key]).fetchone()
        return json.loads(row[0]) if row is not None else default

    def set(self, key: str, value: Any) -> None:
        self._table()
        self.storage.conn.execute(f"INSERT INTO {self.storage.prefix}kv (key, value) VALUES (?, ?) "
                                  "ON CONFLICT (key) DO UPDATE SET value = excluded.value", [key, json.dumps(value)])

    def delete(self, key: str) -> None:
        self._table()
        self.storage.conn.execute(f"DELETE FROM {self.storage.prefix}kv WHERE key = ?", [key])

    def items(self, prefix: str = "") -> list[tuple[str, Any]]:
        self._table()
        rows = self.storage.conn.execute(
            f"SELECT key, value FROM {self.storage.prefix}kv WHERE substr(key, 1, ?) = ? ORDER BY key",
            [len(prefix), prefix]).fetchall()
        return [(row[0], json.loads(row[1])) for row in rows]
