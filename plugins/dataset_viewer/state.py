"""What the job found for each dataset, kept in the plugin's tables (``plugin_datasets_*``).

``datasets``: per repository, the commit of the default branch last processed, the
commit of refs/convert/parquet made from it, and a dataset-level error if any.
``splits``: per (repository, commit, config, split): its error, or its size, features,
Parquet files (path on refs/convert/parquet, LFS object, rows), first rows and
statistics. Only the last processed commit's rows are kept; they are replaced in one
transaction when a newer commit has been processed, so readers always see one whole
state.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from gitd.plugin_api import PluginStorage

MIGRATIONS = [
    """CREATE TABLE {prefix}datasets (
        repo_id INTEGER PRIMARY KEY,
        head TEXT NOT NULL,
        parquet_commit TEXT,
        error TEXT,
        updated REAL NOT NULL
    )""",
    """CREATE TABLE {prefix}splits (
        repo_id INTEGER NOT NULL,
        head TEXT NOT NULL,
        position INTEGER NOT NULL,
        config TEXT NOT NULL,
        split TEXT NOT NULL,
        error TEXT,
        partial INTEGER NOT NULL DEFAULT 0,
        num_rows INTEGER,
        original_bytes INTEGER,
        parquet_bytes INTEGER,
        memory_bytes INTEGER,
        columns TEXT,
        files TEXT,
        first_rows TEXT,
        statistics TEXT,
        PRIMARY KEY (repo_id, head, config, split)
    )""",
]


@dataclass
class ParquetFile:
    path: str  # on refs/convert/parquet
    oid: str  # the LFS object (sha256)
    size: int
    num_rows: int
    first_row: int


@dataclass
class SplitState:
    config: str
    split: str
    error: str | None = None
    partial: bool = False
    num_rows: int = 0
    original_bytes: int = 0
    parquet_bytes: int = 0
    memory_bytes: int = 0
    features: list[dict[str, Any]] = field(default_factory=list)
    files: list[ParquetFile] = field(default_factory=list)
    first_rows: list[dict[str, Any]] | None = None
    statistics: list[dict[str, Any]] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class DatasetState:
    repo_id: int
    head: str
    parquet_commit: str | None
    error: str | None
    splits: list[SplitState]

    def split(self, config: str, split: str) -> SplitState | None:
        return next((s for s in self.splits if s.config == config and s.split == split), None)

    def configs(self) -> list[str]:
        return list(dict.fromkeys(s.config for s in self.splits))


MEMO = 256  # states kept in memory, for answers that read them on every request


class States:
    def __init__(self, storage: PluginStorage):
        self.storage = storage
        storage.migrate(MIGRATIONS)
        self._memo: OrderedDict[tuple[int, str, float], DatasetState] = OrderedDict()
        self._lock = threading.Lock()

    def current(self, repo_id: int) -> DatasetState | None:
        """The stored state (as ``load``), kept in memory while the table says it is unchanged."""
        rows = self.storage.query("SELECT head, updated FROM {prefix}datasets WHERE repo_id = ?", [repo_id])
        if not rows:
            return None
        key = (repo_id, rows[0]["head"], rows[0]["updated"])
        with self._lock:
            found = self._memo.get(key)
            if found is not None:
                self._memo.move_to_end(key)
                return found
        found = self.load(repo_id)
        if found is not None:
            with self._lock:
                self._memo[key] = found
                while len(self._memo) > MEMO:
                    self._memo.popitem(last=False)
        return found

    def save(self, state: DatasetState) -> None:
        rows = [[state.repo_id, state.head, i, s.config, s.split, s.error, int(s.partial), s.num_rows,
                 s.original_bytes, s.parquet_bytes, s.memory_bytes, json.dumps(s.features),
                 json.dumps([f.__dict__ for f in s.files]),
                 json.dumps(s.first_rows) if s.first_rows is not None else None,
                 json.dumps(s.statistics) if s.statistics is not None else None]
                for i, s in enumerate(state.splits)]
        with self.storage.transaction() as db:
            db.execute("DELETE FROM {prefix}splits WHERE repo_id = ?", [state.repo_id])
            for row in rows:
                db.execute("INSERT INTO {prefix}splits VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
            db.execute("INSERT OR REPLACE INTO {prefix}datasets VALUES (?, ?, ?, ?, ?)",
                       [state.repo_id, state.head, state.parquet_commit, state.error, time.time()])

    def head(self, repo_id: int) -> str | None:
        rows = self.storage.query("SELECT head FROM {prefix}datasets WHERE repo_id = ?", [repo_id])
        return rows[0]["head"] if rows else None

    def load(self, repo_id: int, *, details: bool = False) -> DatasetState | None:
        rows = self.storage.query("SELECT * FROM {prefix}datasets WHERE repo_id = ?", [repo_id])
        if not rows:
            return None
        d = rows[0]
        extra = ", first_rows, statistics" if details else ""
        splits = [self._split(r) for r in self.storage.query(
            "SELECT config, split, error, partial, num_rows, original_bytes, parquet_bytes, memory_bytes, columns, "
            f"files{extra} FROM {{prefix}}splits WHERE repo_id = ? AND head = ? ORDER BY position",
            [repo_id, d["head"]])]
        return DatasetState(repo_id, d["head"], d["parquet_commit"], d["error"], splits)

    def details(self, repo_id: int, head: str, config: str, split: str, what: str) -> Any:
        """The stored first rows or statistics of one split (None if there are none)."""
        assert what in ("first_rows", "statistics")
        rows = self.storage.query(f"SELECT {what} AS v FROM {{prefix}}splits WHERE repo_id = ? AND head = ? "
                                  "AND config = ? AND split = ?", [repo_id, head, config, split])
        return json.loads(rows[0]["v"]) if rows and rows[0]["v"] is not None else None

    def forget(self, repo_id: int) -> None:
        with self.storage.transaction() as db:
            db.execute("DELETE FROM {prefix}splits WHERE repo_id = ?", [repo_id])
            db.execute("DELETE FROM {prefix}datasets WHERE repo_id = ?", [repo_id])

    @staticmethod
    def _split(r: dict[str, Any]) -> SplitState:
        s = SplitState(r["config"], r["split"], r["error"], bool(r["partial"]), r["num_rows"] or 0,
                       r["original_bytes"] or 0, r["parquet_bytes"] or 0, r["memory_bytes"] or 0,
                       json.loads(r["columns"] or "[]"), [ParquetFile(**f) for f in json.loads(r["files"] or "[]")])
        if "first_rows" in r and r["first_rows"] is not None:
            s.first_rows = json.loads(r["first_rows"])
        if "statistics" in r and r["statistics"] is not None:
            s.statistics = json.loads(r["statistics"])
        return s
