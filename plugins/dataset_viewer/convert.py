"""Converting a split to Parquet shards, streaming: the Hub's ``{config}/{split}/0000.parquet``.

Batches from the split's files (``sources.batches``) are gathered into row groups of
``row_group_rows`` rows (or 64 MiB, whichever comes first) and written to a shard until
it passes ``shard_size``; then the next shard starts. Memory holds one row group. Past
``max_split_size`` bytes of Parquet the split stops there and is marked partial (the
Hub's ``{config}/partial-{split}/`` layout).

A split whose files are Parquet already is not converted: its files are checked (footer,
columns, one schema) and committed as they are (the same LFS objects).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gitd.plugin_api import RepoView, ViewError

from .features import feature_type, hub_features
from .layout import DataFile, SplitPlan
from .sources import Limits, SplitError, batches, open_parquet, parquet_footer_check

MAX_ROW_GROUP_BYTES = 64 << 20
COMPRESSION = "snappy"  # as pyarrow's, DuckDB's and the datasets library's Parquet files: fast to write and read
DISTINCT_FOR_DICTIONARY = 0.5  # a text column whose first row group is more distinct than this is not dictionary-coded


@dataclass
class Shard:
    local: Path
    num_rows: int
    size: int


@dataclass
class SplitOutput:
    schema: pa.Schema
    num_rows: int = 0
    partial: bool = False
    shards: list[Shard] = field(default_factory=list)  # converted files, to upload
    copies: list[tuple[DataFile, int]] = field(default_factory=list)  # Parquet files reused: (file, rows)

    @property
    def parquet_bytes(self) -> int:
        return sum(s.size for s in self.shards) + sum(f.size for f, _ in self.copies)


class ShardWriter:
    def __init__(self, directory: Path, *, shard_size: int, row_group_rows: int, max_bytes: int,
                 labels: dict[str, list[str]] | None = None):
        self.directory = directory
        self.labels = labels or {}
        self.shard_size = shard_size
        self.row_group_rows = row_group_rows
        self.max_bytes = max_bytes
        self.schema: pa.Schema | None = None
        self.buffer: list[pa.RecordBatch] = []
        self.buffered_rows = 0
        self.buffered_bytes = 0
        self.shards: list[Shard] = []
        self.full = False
        self._writer: pq.ParquetWriter | None = None
        self._sink: pa.NativeFile | None = None
        self._rows = 0
        self._closed_bytes = 0
        self._dictionary: list[str] | None = None

    def add(self, batch: pa.RecordBatch, origin: str) -> bool:
        """Buffer ``batch``; False once the split has reached its size limit (stop reading)."""
        if self.full:
            return False
        if self.labels:
            batch = label_indexes(batch, self.labels, origin)
        if self.schema is not None:
            batch = self._conform(batch, origin)
        self.buffer.append(batch)
        self.buffered_rows += batch.num_rows
        self.buffered_bytes += batch.nbytes
        if self.buffered_rows >= self.row_group_rows or self.buffered_bytes >= MAX_ROW_GROUP_BYTES:
            self._flush()
        return not self.full

    def _conform(self, batch: pa.RecordBatch, origin: str) -> pa.RecordBatch:
        assert self.schema is not None
        if batch.schema.equals(self.schema):
            return batch
        if batch.schema.names != self.schema.names:
            raise SplitError(f"{origin}: its columns ({', '.join(batch.schema.names[:10])}) differ from the "
                             f"split's ({', '.join(self.schema.names[:10])})")
        try:
            return batch.cast(self.schema)
        except (pa.ArrowException, ValueError) as exc:
            raise SplitError(f"{origin}: column types differ from the rest of the split ({exc})") from None

    def _fix_schema(self) -> None:
        names = self.buffer[0].schema.names
        twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
        if twice is not None:
            raise SplitError(f"the column name {twice!r} appears more than once")
        try:
            schema = pa.unify_schemas([b.schema for b in self.buffer], promote_options="permissive")
        except (pa.ArrowException, ValueError) as exc:
            raise SplitError(f"the split's files have incompatible columns ({exc})") from None
        # a column with no value yet becomes text: later values of any type can be cast to it
        schema = pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in schema],
                           metadata=schema.metadata)
        if self.labels:
            schema = with_class_labels(schema, self.labels)
        self.schema = schema
        try:
            self.buffer = [b.cast(schema) for b in self.buffer]
        except (pa.ArrowException, ValueError) as exc:
            raise SplitError(f"column types differ within the split ({exc})") from None

    def _flush(self) -> None:
        if not self.buffer:
            return
        if self.schema is None:
            self._fix_schema()
        assert self.schema is not None
        table = pa.Table.from_batches(self.buffer, schema=self.schema)
        self.buffer, self.buffered_rows, self.buffered_bytes = [], 0, 0
        # one row group at a time, so shards and the split's limit are kept to a row group
        for start in range(0, table.num_rows, self.row_group_rows):
            if self.full:
                return
            self._write(table.slice(start, self.row_group_rows))

    def _write(self, group: pa.Table) -> None:
        if self._writer is None:
            if self._dictionary is None:
                self._dictionary = dictionary_columns(group)
            path = self.directory / f"{len(self.shards):04d}.parquet"
            self._sink = pa.OSFile(str(path), "wb")
            self._writer = pq.ParquetWriter(self._sink, self.schema, compression=COMPRESSION,
                                            use_dictionary=self._dictionary, write_page_index=True)
        self._writer.write_table(group, row_group_size=self.row_group_rows)
        self._rows += group.num_rows
        assert self._sink is not None
        written = self._sink.tell()
        if self._closed_bytes + written >= self.max_bytes:
            self._close_shard()
            self.full = True
        elif written >= self.shard_size:
            self._close_shard()

    def _close_shard(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        assert self._sink is not None
        self._sink.close()
        path = self.directory / f"{len(self.shards):04d}.parquet"
        size = path.stat().st_size
        self.shards.append(Shard(path, self._rows, size))
        self._closed_bytes += size
        self._writer, self._sink, self._rows = None, None, 0

    def close(self) -> list[Shard]:
        if not self.full:
            self._flush()
        self._close_shard()
        return self.shards

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            if self._writer is not None:
                self._writer.close()
            if self._sink is not None:
                self._sink.close()


def label_indexes(batch: pa.RecordBatch, labels: dict[str, list[str]], origin: str) -> pa.RecordBatch:
    """ClassLabel columns as ``datasets`` stores them: label indexes (int64). A text value is
    looked up among the names (one that is not there is the split's error, as in
    ``datasets``); integers are taken as indexes."""
    for name, names in labels.items():
        position = batch.schema.get_field_index(name)
        if position < 0:
            continue
        column = batch.column(position)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            indexes = pc.index_in(column, value_set=pa.array(names, column.type))
            if indexes.null_count > column.null_count:
                unknown = pc.filter(column, pc.and_(pc.is_null(indexes), pc.is_valid(column)))[0].as_py()
                raise SplitError(f"{origin}: {unknown!r} in column {name!r} is not one of its class labels "
                                 f"({', '.join(names[:10])})")
            column = indexes
        elif not (pa.types.is_integer(column.type) or pa.types.is_null(column.type)):
            raise SplitError(f"{origin}: column {name!r} is a class label, but holds {column.type} values")
        batch = batch.set_column(position, pa.field(name, pa.int64()), column.cast(pa.int64()))
    return batch


def with_class_labels(schema: pa.Schema, labels: dict[str, list[str]]) -> pa.Schema:
    """``schema`` whose ``huggingface`` metadata declares the features ``datasets`` reads back,
    the class labels among them."""
    declared = hub_features(schema) or {}
    features = {f.name: ({"names": labels[f.name], "_type": "ClassLabel"} if f.name in labels
                         else declared.get(f.name) or feature_type(f.type)) for f in schema}
    metadata = dict(schema.metadata or {})
    metadata[b"huggingface"] = json.dumps({"info": {"features": features}}).encode()
    return schema.with_metadata(metadata)


def dictionary_columns(group: pa.Table) -> list[str]:
    """Columns worth dictionary coding: all but text columns whose values mostly differ (for
    those, building a dictionary that overflows and is dropped is wasted time)."""
    out = []
    for name, column in zip(group.column_names, group.columns, strict=True):
        text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
        if not text or not len(column) or pc.count_distinct(column).as_py() <= DISTINCT_FOR_DICTIONARY * len(column):
            out.append(name)
    return out


def convert_split(view: RepoView, commit: str, plan: SplitPlan, directory: Path, limits: Limits, *,
                  shard_size: int, row_group_rows: int, max_bytes: int,
                  progress: Callable[[str], None]) -> SplitOutput:
    """Write ``plan``'s rows as Parquet shards in ``directory``."""
    writer = ShardWriter(directory, shard_size=shard_size, row_group_rows=row_group_rows, max_bytes=max_bytes,
                         labels=plan.labels)
    rows, reported = 0, 0
    try:
        for number, f in enumerate(plan.files, 1):
            for batch in batches(view, commit, f, limits):
                rows += batch.num_rows
                if not writer.add(batch, f.path):
                    break
                if rows - reported >= 1_000_000:
                    reported = rows
                    progress(f"{plan.config}/{plan.split}: file {number}/{len(plan.files)}, {rows:,} rows")
            if writer.full:
                break
        shards = writer.close()
    except BaseException:
        writer.abort()
        raise
    if writer.schema is None:
        raise SplitError("the split's files hold no rows")
    return SplitOutput(writer.schema, sum(s.num_rows for s in shards), writer.full, shards=shards)


def parquet_split(view: RepoView, commit: str, plan: SplitPlan, limits: Limits, *, max_bytes: int) -> SplitOutput:
    """A split of Parquet files, taken as they are: checked, counted, not rewritten."""
    schema: pa.Schema | None = None
    out: SplitOutput | None = None
    total = 0
    for f in plan.files:
        if out is not None and total + f.size > max_bytes:
            out.partial = True
            break
        parquet_footer_check(view, commit, f)
        try:
            with view.open(commit, f.path) as raw:
                pf = open_parquet(raw, f.path, limits)
                meta = pf.metadata
                file_schema = pf.schema_arrow
        except ViewError as exc:
            raise SplitError(f"{f.path}: {exc}") from None
        if schema is None:
            schema = file_schema
            out = SplitOutput(schema)
        elif not file_schema.remove_metadata().equals(schema.remove_metadata()):
            raise SplitError(f"{f.path}: its columns differ from {plan.files[0].path}'s")
        assert out is not None
        out.copies.append((f, meta.num_rows))
        out.num_rows += meta.num_rows
        total += f.size
    if out is None:
        raise SplitError("the split has no files")
    return out


def iter_local_batches(paths: Iterable[Path], batch_size: int = 10_000) -> Iterable[pa.RecordBatch]:
    for path in paths:
        yield from pq.ParquetFile(path).iter_batches(batch_size=batch_size)
