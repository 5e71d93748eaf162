"""Arrow schemas as the Hub's ``features``, and Arrow rows as JSON rows with truncated cells."""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import math
from typing import Any

import pyarrow as pa

_DTYPES = {"double": "float64", "float": "float32", "halffloat": "float16", "date32[day]": "date32",
           "date64[ms]": "date64", "null": "null"}


def feature_type(t: pa.DataType) -> Any:
    """One column's type in the ``datasets`` library's notation."""
    if pa.types.is_struct(t):
        return {t.field(i).name: feature_type(t.field(i).type) for i in range(t.num_fields)}
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        out: dict[str, Any] = {"feature": feature_type(t.value_type), "_type": "List"}
        if pa.types.is_fixed_size_list(t):
            out["length"] = t.list_size
        return out
    if pa.types.is_dictionary(t):
        return feature_type(t.value_type)
    text = str(t)
    return {"dtype": _DTYPES.get(text, text), "_type": "Value"}


def hub_features(schema: pa.Schema) -> dict[str, Any] | None:
    """The features a Parquet file written by ``datasets`` declares (class labels, images), if any."""
    meta = schema.metadata or {}
    raw = meta.get(b"huggingface")
    if not raw:
        return None
    try:
        features = json.loads(raw)["info"]["features"]
    except (ValueError, KeyError, TypeError):
        return None
    return features if isinstance(features, dict) else None


def features(schema: pa.Schema) -> list[dict[str, Any]]:
    """``[{"feature_idx", "name", "type"}]`` as the dataset viewer answers them."""
    declared = hub_features(schema) or {}
    return [{"feature_idx": i, "name": field.name, "type": declared.get(field.name) or feature_type(field.type)}
            for i, field in enumerate(schema)]


def class_labels(schema: pa.Schema) -> dict[str, list[str]]:
    """Columns the ``datasets`` features declare as ClassLabel, with their label names."""
    out = {}
    for name, feature in (hub_features(schema) or {}).items():
        names = feature.get("names") if isinstance(feature, dict) else None
        if isinstance(names, list) and feature.get("_type") == "ClassLabel":
            out[name] = [str(n) for n in names]
    return out


def cell(value: Any) -> Any:
    """A cell as JSON can carry it."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {str(k): cell(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        # a map column arrives as a list of (key, value) pairs
        return [cell(v) for v in value]
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return str(value)


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode())


def rows(table: pa.Table, first_index: int | list[int], *, max_bytes: int, min_cell_bytes: int,
         min_rows: int = 1) -> list[dict[str, Any]]:
    """``[{"row_idx", "row", "truncated_cells"}]``. Past ``max_bytes`` in all, cells bigger than
    ``min_cell_bytes`` are cut to that many bytes (as strings) and named in
    ``truncated_cells``; if that is not enough, rows are dropped from the end (keeping
    ``min_rows``)."""
    indexes = first_index if isinstance(first_index, list) else range(first_index, first_index + table.num_rows)
    out = [{"row_idx": int(i), "row": {k: cell(v) for k, v in r.items()}, "truncated_cells": []}
           for i, r in zip(indexes, table.to_pylist(), strict=False)]
    sizes = [_size(r["row"]) for r in out]
    total = sum(sizes)
    if total <= max_bytes:
        return out
    for position in range(len(out) - 1, -1, -1):  # truncate from the end: the first rows stay whole longest
        if total <= max_bytes:
            break
        row = out[position]
        for name, value in row["row"].items():
            if value is not None and _size(value) > min_cell_bytes:
                text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                row["row"][name] = text.encode()[:min_cell_bytes].decode(errors="ignore")
                row["truncated_cells"].append(name)
        new = _size(row["row"])
        total += new - sizes[position]
        sizes[position] = new
    while total > max_bytes and len(out) > min_rows:
        total -= sizes.pop()
        out.pop()
    return out
