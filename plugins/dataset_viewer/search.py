"""``/search``: rows whose text holds every word of the query (case-insensitive).

The job writes, per split with text columns, a search index into the cache: the split's
rows in order, with one more column, ``__gitd_text``, the row's text columns lowercased
and joined. A search scans that one column (``contains``, one bound parameter per word)
to find the page it answers, and scans it again to count the matches only when the page is
full (a query matching fewer rows than a page costs one scan). Without an
index (turned off, or evicted and not yet rebuilt) the same search runs over the split's
Parquet files, lowering the text as it goes (slower).

A word matches anywhere in a text cell: "ark" finds "dark". DuckDB's full-text
extension is not used: it is not bundled with DuckDB and gitd installs nothing at run time.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pyarrow as pa

from .engine import ROW_IDX, Engine, Shard, ident, split_source
from .state import ParquetFile

TEXT = "__gitd_text"
MAX_WORDS = 16
MAX_QUERY = 1000


def text_columns(schema: pa.Schema) -> list[str]:
    return [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
            or pa.types.is_string_view(f.type)]


def index_name(files: list[ParquetFile]) -> str:
    """The cache file name of a split's index: named by the split's Parquet objects, so it is
    shared by every commit (and repository) holding the same files."""
    digest = hashlib.sha256("\n".join(f.oid for f in files).encode()).hexdigest()[:40]
    return f"search-{digest}.parquet"


def _joined(columns: list[str]) -> str:
    return "concat_ws(chr(10), " + ", ".join(f"lower({ident(c)})" for c in columns) + ")"


def build_index(engine: Engine, shards: list[Shard], schema: pa.Schema, out: Path) -> None:
    source, params = split_source(shards)
    columns = text_columns(schema)
    path = str(out).replace("'", "''")  # the viewer's own cache path; COPY takes no parameter here
    engine.query(f"COPY (SELECT *, {_joined(columns)} AS {TEXT} FROM {source}) TO '{path}' "
                 f"(FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE 20000)", params, timeout=3600)


def words(query: str) -> list[str]:
    if len(query) > MAX_QUERY:
        raise ValueError(f"the query is longer than {MAX_QUERY} characters")
    found = list(dict.fromkeys(query.lower().split()))
    if not found:
        raise ValueError("the query is empty")
    if len(found) > MAX_WORDS:
        raise ValueError(f"the query has more than {MAX_WORDS} words")
    return found


def search(engine: Engine, shards: list[Shard], schema: pa.Schema, index: str | None, query: str, offset: int,
           length: int) -> tuple[pa.Table, list[int], int]:
    """(rows, their indexes in the split, how many rows match)."""
    terms = words(query)
    columns = text_columns(schema)
    if not columns:
        return schema.empty_table(), [], 0
    if index is not None:
        source, params = "read_parquet(?)", [index]
        text = TEXT
    else:
        source, params = split_source(shards)
        text = _joined(columns)
    where = " AND ".join(f"contains({text}, ?)" for _ in terms)
    columns_sql = f"* EXCLUDE ({TEXT})" if index is not None else "*"
    page = engine.query(f"SELECT {columns_sql} FROM {source} WHERE {where} ORDER BY {ROW_IDX} LIMIT ? OFFSET ?",
                        [*params, *terms, length, offset])
    if 0 < page.num_rows < length:  # the last page: the count is known without a second scan
        total = offset + page.num_rows
    else:
        total = engine.scalar(f"SELECT count(*) FROM {source} WHERE {where}", [*params, *terms])
    return _split_index(page, total)


def _split_index(page: pa.Table, total: Any) -> tuple[pa.Table, list[int], int]:
    indexes = page.column(ROW_IDX).to_pylist()
    return page.drop_columns([ROW_IDX]), indexes, int(total or 0)
