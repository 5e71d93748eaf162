"""The SQL console: one SELECT (or WITH ... SELECT) over a dataset's Parquet files.

Each statement gets a DuckDB of its own, opened **read-only** (a copy of an empty
database file), holding one view per split of the config (``train``, ``test``, ...)
over the split's local Parquet files. Before the client's statement runs:

* only those files may be read (``allowed_paths``), external access is off (no other
  file, no URL, no extension), and the configuration is locked;
* the statement is parsed by DuckDB's own parser: anything but exactly one statement of
  type SELECT is refused with a message saying so;
* it runs with a thread count, a memory limit (and nothing spilled to disk past it), a
  time limit (interrupted past it) and a row cap (``LIMIT`` applied around it; the answer says when rows were cut).
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

import duckdb

from .engine import ident
from .features import cell

MAX_SQL = 20_000


class ConsoleError(Exception):
    """The statement is refused or failed; the message is for the user."""


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def check(sql: str) -> None:
    """Refuse anything but exactly one SELECT statement."""
    if not sql.strip():
        raise ConsoleError("the SQL statement is empty")
    if len(sql) > MAX_SQL:
        raise ConsoleError(f"the SQL statement is longer than {MAX_SQL} characters")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise ConsoleError(f"the SQL does not parse: {str(exc).strip()}") from None
    if len(statements) != 1:
        raise ConsoleError(f"the SQL console runs exactly one statement; this has {len(statements)}")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        name = str(kind).rsplit(".", 1)[-1]
        raise ConsoleError(f"only SELECT statements (and WITH ... SELECT) run in the SQL console, not {name}")


class Console:
    def __init__(self, root: Path, *, max_rows: int, timeout: float, memory_limit: int, threads: int):
        self.root = root
        self.template = root / "console-template.duckdb"
        self.work = root / "tmp"
        self.max_rows = max_rows
        self.timeout = timeout
        self.memory_limit = memory_limit
        self.threads = threads
        self._lock = threading.Lock()

    def _template(self) -> Path:
        with self._lock:
            if not self.template.exists():
                tmp = self.work / f"{uuid.uuid4().hex}.duckdb"
                duckdb.connect(str(tmp)).close()
                tmp.replace(self.template)
        return self.template

    def run(self, sql: str, views: dict[str, list[str]]) -> dict[str, Any]:
        """Run ``sql`` with ``views`` (view name -> local Parquet files)."""
        check(sql)
        path = self.work / f"console-{uuid.uuid4().hex}.duckdb"
        shutil.copyfile(self._template(), path)
        db = None
        try:
            # No temp_directory: a statement past its memory limit fails, rather than spilling
            # to disk (by default up to 90% of the free space, beside the database file).
            db = duckdb.connect(str(path), read_only=True, config={
                "threads": str(self.threads), "memory_limit": f"{self.memory_limit}B", "temp_directory": "",
                "autoinstall_known_extensions": "false", "autoload_known_extensions": "false"})
            allowed: list[str] = []
            for name, files in views.items():
                listed = ", ".join(_literal(f) for f in files)
                db.execute(f"CREATE TEMP VIEW {ident(name)} AS SELECT * FROM read_parquet([{listed}])")
                allowed += files
            db.execute("SET allowed_paths = ?", [allowed])
            db.execute("SET enable_external_access = false")
            db.execute("SET lock_configuration = true")
            return self._execute(db, sql)
        finally:
            if db is not None:
                db.close()
            for leftover in (path, path.with_name(path.name + ".wal")):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()

    def _execute(self, db: duckdb.DuckDBPyConnection, sql: str) -> dict[str, Any]:
        timer = threading.Timer(self.timeout, db.interrupt)
        timer.start()
        try:
            relation = db.sql(sql)
            if relation is None:
                raise ConsoleError("the statement returns no rows")
            names, types = relation.columns, [str(t) for t in relation.types]
            rows = relation.limit(self.max_rows + 1).fetchall()
        except duckdb.InterruptException:
            raise ConsoleError(f"the statement ran longer than {self.timeout:g}s and was stopped") from None
        except duckdb.OutOfMemoryException:
            raise ConsoleError(f"the statement needs more than {self.memory_limit >> 20} MiB of memory") from None
        except duckdb.Error as exc:
            raise ConsoleError(str(exc).strip().splitlines()[0]) from None
        finally:
            timer.cancel()
        truncated = len(rows) > self.max_rows
        rows = rows[:self.max_rows]
        return {"columns": [{"name": n, "type": t} for n, t in zip(names, types, strict=True)],
                "rows": [[cell(v) for v in row] for row in rows], "num_rows": len(rows), "truncated": truncated}
