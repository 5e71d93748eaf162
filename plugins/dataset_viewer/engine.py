"""The viewer's DuckDB: one in-process database for rows, search, filters and statistics.

It reads only the plugin's cache directory (``allowed_directories``; external access off,
configuration locked once set up), with a memory limit and a thread count of its own.
Every statement it runs is the viewer's own text; values (paths, search terms, filter
operands, offsets) are always bound as parameters. A statement running past its time
limit is interrupted.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa


class QueryTimeout(Exception):
    pass


def ident(name: str) -> str:
    """A column name as a quoted SQL identifier (names come from the dataset's schema)."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Shard:
    path: str  # a local Parquet file
    first_row: int  # its first row's index in the split
    num_rows: int


ROW_IDX = "__gitd_row_idx"


def split_source(shards: list[Shard]) -> tuple[str, list[Any]]:
    """A FROM clause over a split's shards with a ``__gitd_row_idx`` column (the row's index
    in the split), and its parameters."""
    parts, params = [], []
    for shard in shards:
        parts.append(f"SELECT file_row_number + ? AS {ROW_IDX}, * EXCLUDE (file_row_number) "
                     "FROM read_parquet(?, file_row_number = true)")
        params += [shard.first_row, shard.path]
    return "(" + " UNION ALL ".join(parts) + ")", params


def plain_source(paths: list[str]) -> tuple[str, list[Any]]:
    """A FROM clause over Parquet files, in order, without a row index."""
    return "read_parquet(?)", [list(paths)]


def arrow_table(relation: duckdb.DuckDBPyRelation) -> pa.Table:
    """A relation's rows as an Arrow table (``to_arrow_table`` from DuckDB 1.4, ``arrow`` before)."""
    fetch = getattr(relation, "to_arrow_table", None) or relation.arrow
    return fetch()


class Engine:
    def __init__(self, root: Path, *, threads: int, memory_limit: int, timeout: float):
        self.root = root
        self.threads = threads
        self.memory_limit = memory_limit
        self.timeout = timeout
        self._db: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()

    def _database(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            if self._db is None:
                spill = self.root / "tmp" / "duckdb"
                spill.mkdir(parents=True, exist_ok=True)
                db = duckdb.connect(":memory:", config={
                    "threads": str(self.threads), "memory_limit": f"{self.memory_limit}B",
                    "temp_directory": str(spill), "autoinstall_known_extensions": "false",
                    "autoload_known_extensions": "false"})
                db.execute("SET allowed_directories = ?", [[str(self.root) + "/"]])
                db.execute("SET enable_external_access = false")
                db.execute("SET parquet_metadata_cache = true")
                db.execute("SET lock_configuration = true")
                self._db = db
            return self._db

    def query(self, sql: str, params: list[Any] | None = None, *, timeout: float | None = None) -> pa.Table:
        """Run one statement of the viewer's own; its answer as an Arrow table."""
        cursor = self._database().cursor()
        timer = threading.Timer(timeout or self.timeout, cursor.interrupt)
        timer.start()
        try:
            relation = cursor.sql(sql, params=params or None)
            return arrow_table(relation) if relation is not None else pa.table({})
        except duckdb.InterruptException:
            raise QueryTimeout(f"the query took longer than {timeout or self.timeout:g}s") from None
        finally:
            timer.cancel()
            cursor.close()

    def scalar(self, sql: str, params: list[Any] | None = None, *, timeout: float | None = None) -> Any:
        table = self.query(sql, params, timeout=timeout)
        return table.column(0)[0].as_py() if table.num_rows else None

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
