"""Reading a data file as a stream of Arrow record batches, with bounded memory and time.

Files are read through ``RepoView.open`` (ranged reads: the LFS object on local disk or
S3), decompressed as they stream, and parsed block by block (``block_size``: the
longest line a CSV or JSON Lines file may have). Every byte passes through a guard that
counts it: a decompression bomb, an oversized split or a split that takes too long stops
with a ``SplitError`` naming the file, and the reader's read-ahead thread is stopped at
once (the guard answers end-of-file from then on).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.json as pjson
import pyarrow.parquet as pq

from gitd.plugin_api import RepoView, ViewError

from .layout import DataFile

MIB = 1 << 20
BOMB_FLOOR = 64 * MIB  # a compressed file may always expand to this much
PARQUET_MAX_FOOTER = 64 * MIB
ARROW_FILE_MAGIC = b"ARROW1\0\0"  # "ARROW1" padded to 8 bytes opens an Arrow IPC file


class SplitError(Exception):
    """A split cannot be read; the message says why, for /is-valid and /splits."""


@dataclass(frozen=True)
class Limits:
    block_size: int
    max_columns: int
    max_source_size: int
    max_compression_ratio: int
    max_json_document: int
    deadline: float  # time.monotonic() past which reading stops


class Guard(io.RawIOBase):
    """A read-only stream that counts what passes through and enforces the limits."""

    def __init__(self, inner: object, name: str, limit: int, deadline: float, why: str):
        self.inner, self.name, self.limit, self.deadline, self.why = inner, name, limit, deadline, why
        self.count = 0
        self.stopped: str | None = None

    def readable(self) -> bool:
        return True

    def stop(self, reason: str = "stopped") -> None:
        self.stopped = self.stopped or reason

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        if self.stopped is not None:
            return 0
        data = self.inner.read(len(buffer))  # type: ignore[attr-defined]
        n = len(data)
        self.count += n
        if self.count > self.limit:
            self.stop(f"{self.name}: {self.why}")
            raise SplitError(self.stopped)
        if time.monotonic() > self.deadline:
            self.stop(f"{self.name}: reading took longer than the split's time limit")
            raise SplitError(self.stopped)
        buffer[:n] = data
        return n


@contextmanager
def open_stream(view: RepoView, commit: str, f: DataFile, limits: Limits) -> Iterator[Guard]:
    """The file's (decompressed) bytes, guarded."""
    try:
        raw = view.open(commit, f.path)
    except ViewError as exc:
        raise SplitError(f"{f.path}: {exc}") from None
    inner: object = raw
    limit, why = limits.max_source_size, f"more than {limits.max_source_size} bytes to read in one split"
    native = None
    if f.compression is not None:
        if not pa.Codec.is_available(f.compression):
            raise SplitError(f"{f.path}: {f.compression} compression is not available on this server")
        native = pa.CompressedInputStream(pa.PythonFile(raw, mode="r"), f.compression)
        inner = native
        bomb = max(BOMB_FLOOR, limits.max_compression_ratio * max(f.size, 1))
        if bomb < limit:
            limit = bomb
            why = (f"decompresses to more than {limits.max_compression_ratio} times its size: refused as a "
                   "possible decompression bomb")
    guard = Guard(inner, f.path, limit, limits.deadline, why)
    try:
        yield guard
    finally:
        guard.stop()
        if native is not None:
            native.close()
        raw.close()


def _describe(path: str, exc: BaseException, fmt: str) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "straddl" in text:
        return f"{path}: a line is longer than the read block ({fmt} lines must be shorter than the block size)"
    if "conversion error" in text or "changed from" in text:
        return f"{path}: column types differ within the file ({text})"
    return f"{path}: {text}"


def batches(view: RepoView, commit: str, f: DataFile, limits: Limits) -> Iterator[pa.RecordBatch]:
    """The file's rows, batch by batch. Raises SplitError for anything it cannot read."""
    if f.format == "parquet":
        yield from _parquet(view, commit, f, limits)
        return
    if f.format == "json" and _peek(view, commit, f) == b"[":
        with open_stream(view, commit, f, limits) as stream:
            yield from _json_document(stream, f, limits)
        return
    text: dict[str, pa.DataType] = {}
    for attempt in range(2):
        with open_stream(view, commit, f, limits) as stream:
            reader = None
            try:
                reader = _reader(stream, f, limits, text)
                _check_columns(f.path, reader.schema, limits)
                empty = {fld.name: pa.string() for fld in reader.schema if pa.types.is_null(fld.type)}
                if empty and attempt == 0 and f.format != "arrow":
                    # columns with no value in the first block: read again with them as text, so
                    # values further down do not break the types inferred from the first block
                    text = empty
                    continue
                yield from reader
                return
            except SplitError:
                raise
            except (pa.ArrowException, ValueError, OSError) as exc:
                if stream.stopped not in (None, "stopped"):
                    raise SplitError(stream.stopped) from None
                raise SplitError(_describe(f.path, exc, f.format.upper())) from None
            finally:
                stream.stop()
                if reader is not None:
                    reader.close()


def _reader(stream: Guard, f: DataFile, limits: Limits, text: dict[str, pa.DataType]) -> pa.RecordBatchReader:
    if f.format in ("csv", "tsv"):
        return pcsv.open_csv(
            stream, read_options=pcsv.ReadOptions(block_size=limits.block_size, use_threads=True),
            parse_options=pcsv.ParseOptions(delimiter="\t" if f.format == "tsv" else ","),
            convert_options=pcsv.ConvertOptions(column_types=text))
    if f.format == "json":
        parse = pjson.ParseOptions(explicit_schema=pa.schema(list(text.items())), unexpected_field_behavior="infer") \
            if text else pjson.ParseOptions()
        return pjson.open_json(stream, read_options=pjson.ReadOptions(block_size=limits.block_size, use_threads=True),
                               parse_options=parse)
    if f.format == "arrow":
        return _arrow(stream)
    raise SplitError(f"{f.path}: unknown format {f.format}")


def _arrow(stream: Guard) -> pa.RecordBatchReader:
    """An Arrow IPC stream (as ``datasets`` writes its cache files) or an Arrow IPC file
    (Feather v2, ``pa.ipc.new_file``). A file is its magic, padding, a stream, and a footer
    that indexes the stream's batches: reading the stream after the magic gives the same
    rows front to back, so a file is read streaming too (and compressed, which random
    access could not do)."""
    buffered = io.BufferedReader(stream, buffer_size=1 << 16)
    if buffered.peek(len(ARROW_FILE_MAGIC))[:len(ARROW_FILE_MAGIC)] == ARROW_FILE_MAGIC:
        buffered.read(len(ARROW_FILE_MAGIC))
    return pa.ipc.open_stream(buffered)


def _peek(view: RepoView, commit: str, f: DataFile) -> bytes:
    """The first non-space byte of an uncompressed .json file (b"[" for a JSON array)."""
    if f.compression is not None:
        return b"{"
    head = view.read_range(commit, f.path, 0, 4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head[:1]


def _json_document(stream: Guard, f: DataFile, limits: Limits) -> Iterator[pa.RecordBatch]:
    """A .json file holding one array of objects: read whole, up to ``max_json_document``."""
    if stream.count == 0 and f.size > limits.max_json_document:
        raise SplitError(f"{f.path}: a JSON document (not JSON Lines) of {f.size} bytes; the viewer reads them "
                         f"up to {limits.max_json_document} bytes; write one object per line (.jsonl) instead")
    data = stream.read(limits.max_json_document + 1)
    if len(data) > limits.max_json_document:
        raise SplitError(f"{f.path}: a JSON document larger than {limits.max_json_document} bytes")
    try:
        rows = json.loads(data)
    except ValueError as exc:
        raise SplitError(f"{f.path}: not valid JSON ({exc})") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise SplitError(f"{f.path}: a JSON document must be an array of objects")
    try:
        table = pa.Table.from_pylist(rows)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise SplitError(_describe(f.path, exc, "JSON")) from None
    _check_columns(f.path, table.schema, limits)
    yield from table.to_batches(max_chunksize=10_000)


def _check_columns(path: str, schema: pa.Schema, limits: Limits) -> None:
    if len(schema) > limits.max_columns:
        raise SplitError(f"{path}: {len(schema)} columns; the viewer reads at most {limits.max_columns} "
                         "(setting plugins.datasets.max_columns)")


def parquet_footer_check(view: RepoView, commit: str, f: DataFile) -> None:
    """Refuse a Parquet file whose footer is missing, corrupted or absurdly large, before
    pyarrow reads it."""
    if f.size < 12:
        raise SplitError(f"{f.path}: not a Parquet file ({f.size} bytes)")
    try:
        tail = view.read_range(commit, f.path, f.size - 8, f.size)
        head = view.read_range(commit, f.path, 0, 4)
    except ViewError as exc:
        raise SplitError(f"{f.path}: {exc}") from None
    if head != b"PAR1" or tail[4:] != b"PAR1":
        raise SplitError(f"{f.path}: not a Parquet file, or its footer is corrupted (no PAR1 magic)")
    length = int.from_bytes(tail[:4], "little")
    if length + 12 > f.size or length > PARQUET_MAX_FOOTER:
        raise SplitError(f"{f.path}: the Parquet footer is corrupted (it claims {length} bytes)")


def open_parquet(source: object, path: str, limits: Limits) -> pq.ParquetFile:
    try:
        pf = pq.ParquetFile(source)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise SplitError(f"{path}: the Parquet file does not open ({_describe(path, exc, 'Parquet')})") from None
    _check_columns(path, pf.schema_arrow, limits)
    return pf


def _parquet(view: RepoView, commit: str, f: DataFile, limits: Limits) -> Iterator[pa.RecordBatch]:
    parquet_footer_check(view, commit, f)
    with view.open(commit, f.path) as raw:
        pf = open_parquet(raw, f.path, limits)
        try:
            for batch in pf.iter_batches(batch_size=10_000):
                if time.monotonic() > limits.deadline:
                    raise SplitError(f"{f.path}: reading took longer than the split's time limit")
                yield batch
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise SplitError(_describe(f.path, exc, "Parquet")) from None
