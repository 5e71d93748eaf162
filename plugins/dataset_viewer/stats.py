"""Column statistics, as the dataset viewer's ``/statistics`` answers them.

Per column, by kind: numbers (``int``, ``float``): nulls, min, max, mean, median, std and
a 10-bin histogram; ``bool``: frequencies; strings with few distinct values
(``string_label``): frequencies; other strings (``string_text``) and lists (``list``):
the same numbers over their lengths; ``class_label`` (declared by ``datasets``
features): frequencies by label name. Other types are left out. Every query reads one
column of the split's local Parquet files through DuckDB, with its memory limit.
"""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa

from .engine import Engine, ident, plain_source
from .features import class_labels

BINS = 10
MAX_LABELS = 30  # a string column with at most this many distinct values is a label column
EXACT_MEDIAN_ROWS = 1_000_000


def _kind(t: pa.DataType) -> str | None:
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "float"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return "list"
    return None


def _num(value: Any, integer: bool) -> Any:
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value):
        return None
    return int(value) if integer and value.is_integer() else round(value, 5)


def statistics(engine: Engine, paths: list[str], schema: pa.Schema, num_rows: int) -> list[dict[str, Any]]:
    source, params = plain_source(paths)
    labels = class_labels(schema)
    out = []
    for field in schema:
        col = ident(field.name)
        kind = _kind(field.type)
        if field.name in labels and kind == "int":
            stats, column_type = _class_label(engine, source, params, col, labels[field.name], num_rows), "class_label"
        elif kind in ("int", "float"):
            stats, column_type = _numbers(engine, source, params, col, num_rows, kind == "int"), kind
        elif kind == "bool":
            stats, column_type = _frequencies(engine, source, params, col, num_rows), "bool"
        elif kind == "string":
            distinct = engine.scalar(f"SELECT approx_count_distinct({col}) FROM {source}", params) or 0
            if distinct <= MAX_LABELS:
                stats, column_type = _frequencies(engine, source, params, col, num_rows), "string_label"
                stats["no_label_count"], stats["no_label_proportion"] = 0, 0.0
            else:
                stats, column_type = _numbers(engine, source, params, col, num_rows, True,
                                              expr=f"length({col})"), "string_text"
        elif kind == "list":
            stats, column_type = _numbers(engine, source, params, col, num_rows, True,
                                          expr=f"len({col})"), "list"
        else:
            continue
        out.append({"column_name": field.name, "column_type": column_type, "column_statistics": stats})
    return out


def _nulls(count: int, num_rows: int) -> dict[str, Any]:
    return {"nan_count": count, "nan_proportion": round(count / num_rows, 5) if num_rows else 0.0}


def _numbers(engine: Engine, source: str, params: list[Any], col: str, num_rows: int, integer: bool, *,
             expr: str | None = None) -> dict[str, Any]:
    value = expr or col
    finite = f"{value} IS NOT NULL" + ("" if integer else f" AND isfinite({value}::DOUBLE)")
    median = "median" if num_rows <= EXACT_MEDIAN_ROWS else "approx_quantile"
    median_call = f"{median}({value}::DOUBLE)" if median == "median" else f"approx_quantile({value}::DOUBLE, 0.5)"
    row = engine.query(
        f"SELECT count(*) FILTER (WHERE {col} IS NULL) AS s0, min({value}::DOUBLE) FILTER (WHERE {finite}) AS s1, "
        f"max({value}::DOUBLE) FILTER (WHERE {finite}) AS s2, avg({value}::DOUBLE) FILTER (WHERE {finite}) AS s3, "
        f"{median_call} FILTER (WHERE {finite}) AS s4, stddev_samp({value}::DOUBLE) FILTER (WHERE {finite}) AS s5 "
        f"FROM {source}", params).to_pylist()[0]
    nulls, low, high, mean, med, std = (row[f"s{i}"] for i in range(6))
    out = _nulls(nulls, num_rows)
    out.update(min=_num(low, integer), max=_num(high, integer), mean=_num(mean, False), median=_num(med, False),
               std=_num(std, False))
    out["histogram"] = _histogram(engine, source, params, value, finite, low, high, integer)
    return out


def _histogram(engine: Engine, source: str, params: list[Any], value: str, finite: str, low: Any, high: Any,
               integer: bool) -> dict[str, list[Any]] | None:
    if low is None or high is None:
        return None
    low, high = float(low), float(high)
    if integer:
        width = max(1.0, math.ceil((high - low + 1) / BINS))
        bins = int(min(BINS, math.ceil((high - low + 1) / width)))
    else:
        bins = BINS if high > low else 1
        width = (high - low) / bins if high > low else 1.0
    rows = engine.query(
        f"SELECT least(greatest(floor(({value}::DOUBLE - ?) / ?), 0), ?)::BIGINT AS b, count(*) AS n "
        f"FROM {source} WHERE {finite} GROUP BY 1", [low, width, bins - 1, *params]).to_pylist()
    counts = {r["b"]: r["n"] for r in rows}
    edges = [low + i * width for i in range(bins)] + [high]
    edges = [int(e) for e in edges] if integer else [round(e, 5) for e in edges]
    return {"hist": [int(counts.get(i, 0)) for i in range(bins)], "bin_edges": edges}


def _frequencies(engine: Engine, source: str, params: list[Any], col: str, num_rows: int) -> dict[str, Any]:
    rows = engine.query(f"SELECT {col} AS v, count(*) AS n FROM {source} GROUP BY 1 ORDER BY 2 DESC, 1 "
                        f"LIMIT {MAX_LABELS + 2}", params).to_pylist()
    nulls = sum(r["n"] for r in rows if r["v"] is None)
    freqs = {str(r["v"]): r["n"] for r in rows if r["v"] is not None}
    out = _nulls(nulls, num_rows)
    out.update(n_unique=len(freqs), frequencies=freqs)
    return out


def _class_label(engine: Engine, source: str, params: list[Any], col: str, names: list[str],
                 num_rows: int) -> dict[str, Any]:
    rows = engine.query(f"SELECT {col} AS v, count(*) AS n FROM {source} GROUP BY 1", params).to_pylist()
    nulls = sum(r["n"] for r in rows if r["v"] is None)
    no_label = sum(r["n"] for r in rows if r["v"] == -1)
    freqs = {names[r["v"]] if 0 <= r["v"] < len(names) else str(r["v"]): r["n"] for r in rows
             if r["v"] is not None and r["v"] != -1}
    out = _nulls(nulls, num_rows)
    out.update(no_label_count=no_label, no_label_proportion=round(no_label / num_rows, 5) if num_rows else 0.0,
               n_unique=len(freqs), frequencies=freqs)
    return out
