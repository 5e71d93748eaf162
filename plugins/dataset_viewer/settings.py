"""The dataset viewer's settings: ``[plugins.datasets]`` in gitd.toml (docs/datasets.md)."""

from __future__ import annotations

from dataclasses import dataclass

from gitd.plugin_api import Duration, SettingsError, Size

MIB = 1 << 20
MIB_256 = Size(256 * MIB)
GIB_5 = Size(5 << 30)
MIB_2 = Size(2 * MIB)
GIB_20 = Size(20 << 30)
MIB_64 = Size(64 * MIB)
HALF_HOUR = Duration(1800)
ONE_MIB = Size(MIB)
GIB_10 = Size(10 << 30)
TEN_SECONDS = Duration(10)
TWENTY_SECONDS = Duration(20)


@dataclass(frozen=True)
class ViewerSettings:
    # Conversion onto refs/convert/parquet
    shard_size: Size = MIB_256  # a Parquet file is closed past this size; the next one starts
    row_group_rows: int = 20_000  # rows per Parquet row group (small groups: fast pages and filters)
    max_split_size: Size = GIB_5  # Parquet bytes per split; past it the split is "partial"
    block_size: Size = MIB_2  # CSV/JSON read block: about the longest line a file may have (memory: ~50x)
    max_columns: int = 1000
    max_files: int = 10_000  # data files per dataset
    max_source_size: Size = GIB_20  # bytes read per split, after decompression
    max_compression_ratio: int = 100  # a compressed file expanding more than this is refused (bombs)
    max_json_document: Size = MIB_64  # a .json file holding one array/object is read whole
    split_timeout: Duration = HALF_HOUR
    # Answers
    first_rows: int = 100
    rows_max_bytes: Size = ONE_MIB  # an answer's rows; bigger cells are truncated to min_cell_bytes
    min_cell_bytes: int = 100
    max_page_rows: int = 100  # /rows, /search, /filter length
    search_index: bool = True  # precompute a lowercased text index per split (faster /search)
    # DuckDB (rows, search, filter, statistics)
    threads: int = 2
    memory_limit: Size = MIB_256
    query_timeout: Duration = TWENTY_SECONDS
    # Disk cache (answers, local Parquet copies, search indexes), evicted least recently used first
    cache_size: Size = GIB_10
    # The SQL console
    sql_max_rows: int = 1000
    sql_timeout: Duration = TEN_SECONDS
    sql_memory_limit: Size = MIB_256
    sql_threads: int = 1

    def check(self) -> ViewerSettings:
        for name in ("row_group_rows", "max_columns", "max_files", "max_compression_ratio", "first_rows",
                     "max_page_rows", "threads", "sql_max_rows", "sql_threads", "min_cell_bytes"):
            if getattr(self, name) < 1:
                raise SettingsError(f"plugins.datasets.{name}: must be at least 1")
        if self.block_size < 1 << 16:
            raise SettingsError("plugins.datasets.block_size: must be at least 64KiB")
        return self
