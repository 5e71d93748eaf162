"""The refresh job: from the default branch's head to refs/convert/parquet and the stored answers.

1. find the configs and splits (``layout.detect``);
2. per split, convert it to Parquet shards (or take its Parquet files as they are); a
   split that fails is recorded with its error and the others carry on;
3. commit the shards to ``refs/convert/parquet`` through the hook chain (via "plugin"),
   with a README.md whose ``configs:`` name each config's files per split, unless the
   branch already holds exactly these files;
4. per split, precompute what the viewer answers from storage: features, first rows,
   statistics, sizes, and the search index (a local file in the cache);
5. store the state, replacing the previous commit's, in one transaction.

A job holds the repository's lock, so two runs for one dataset never overlap; a run for a
head that is already processed does nothing (jobs run at least once).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from gitd.plugin_api import (
    ZERO_OID,
    LfsUpload,
    LimitExceeded,
    PluginContext,
    RefConflict,
    RefUpdate,
    RepoInfo,
    RepoView,
    format_lfs_pointer,
    parse_lfs_pointer,
)

from .cache import DiskCache
from .convert import SplitOutput, convert_split, parquet_split
from .engine import Engine, Shard
from .features import features, rows
from .layout import Layout, SplitPlan, detect
from .search import build_index, index_name, text_columns
from .settings import ViewerSettings
from .sources import Limits, SplitError
from .state import DatasetState, ParquetFile, SplitState, States
from .stats import statistics

CONVERT_REF = "refs/convert/parquet"
log = logging.getLogger("gitd.plugins.datasets")


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def convert_path(config: str, split: str, partial: bool, number: int) -> str:
    return f"{config}/{'partial-' if partial else ''}{split}/{number:04d}.parquet"


class Refresher:
    def __init__(self, context: PluginContext, settings: ViewerSettings, states: States, cache: DiskCache):
        self.context = context
        self.settings = settings
        self.states = states
        self.cache = cache
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()

    def job_engine(self) -> Engine:
        """A DuckDB of the job's own (statistics, search indexes), closed when the job ends, so
        the memory it used goes back rather than staying with the viewer's."""
        s = self.settings
        return Engine(self.cache.root, threads=s.threads, memory_limit=s.memory_limit, timeout=float(s.split_timeout))

    def _lock(self, repo_id: int) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(repo_id, threading.Lock())

    def refresh(self, repo: RepoInfo, *, force: bool = False) -> str:
        """Process ``repo``'s default branch as it is now; returns a one-line summary."""
        with self._lock(repo.id):
            view = self.context.view(repo)
            head = view.head()
            if head is None:
                self.states.forget(repo.id)
                return "the dataset is empty"
            if not force and self.states.head(repo.id) == head:
                return f"{head[:7]} is already processed"
            self.progress(f"{head[:7]}: finding configs and splits")
            layout = detect(view, head, max_files=self.settings.max_files)
            scratch = self.cache.scratch()
            engine = self.job_engine()
            try:
                state = self._process(repo, view, head, layout, scratch, engine)
            finally:
                engine.close()
                pa.default_memory_pool().release_unused()
                shutil.rmtree(scratch, ignore_errors=True)
            self.states.save(state)
            summary = self._summary(state)
            self.progress(summary)
            return summary

    def progress(self, text: str) -> None:
        self.context.progress(text)
        log.debug("%s", text)

    def _process(self, repo: RepoInfo, view: RepoView, head: str, layout: Layout, scratch: Path,
                 engine: Engine) -> DatasetState:
        if layout.error is not None:
            self._move_branch(repo, view, {}, head, [])
            return DatasetState(repo.id, head, None, layout.error, [])
        outputs: list[tuple[SplitPlan, SplitOutput | None, SplitState]] = []
        for number, plan in enumerate(layout.splits, 1):
            state = SplitState(plan.config, plan.split, plan.error, original_bytes=plan.original_bytes)
            output = None
            if plan.error is None:
                self.progress(f"{plan.config}/{plan.split}: converting ({number}/{len(layout.splits)})")
                started = time.monotonic()
                try:
                    output = self._convert(view, head, plan, scratch / f"{number}")
                    log.info("dataset %s: %s/%s converted: %d rows, %d bytes of Parquet, in %.2fs",
                             repo.full_name, plan.config, plan.split, output.num_rows, output.parquet_bytes,
                             time.monotonic() - started)
                except SplitError as exc:
                    state.error = str(exc)
                except Exception as exc:  # pyarrow failing in a way it should not: this split only
                    log.exception("dataset %s: split %s/%s failed", repo.full_name, plan.config, plan.split)
                    state.error = f"the split could not be read ({type(exc).__name__})"
            outputs.append((plan, output, state))
        files = self._upload(repo, view, head, outputs)
        parquet_commit = self._move_branch(repo, view, files, head, [s for _, o, s in outputs if o is not None])
        for plan, output, state in outputs:
            if output is not None and state.error is None:
                self._precompute(repo, parquet_commit, plan, output, state, engine)
        return DatasetState(repo.id, head, parquet_commit, None, [s for _, _, s in outputs])

    def _convert(self, view: RepoView, head: str, plan: SplitPlan, directory: Path) -> SplitOutput:
        s = self.settings
        limits = Limits(block_size=s.block_size, max_columns=s.max_columns, max_source_size=s.max_source_size,
                        max_compression_ratio=s.max_compression_ratio, max_json_document=s.max_json_document,
                        deadline=time.monotonic() + s.split_timeout)
        if plan.format == "parquet":
            return parquet_split(view, head, plan, limits, max_bytes=s.max_split_size)
        directory.mkdir()
        return convert_split(view, head, plan, directory, limits, shard_size=s.shard_size,
                             row_group_rows=s.row_group_rows, max_bytes=s.max_split_size, progress=self.progress)

    def _upload(self, repo: RepoInfo, view: RepoView, head: str,
                outputs: list[tuple[SplitPlan, SplitOutput | None, SplitState]]) -> dict[str, bytes]:
        """Store each split's Parquet files in LFS; the pointers to commit, by path."""
        writer = self.context.writer(repo)
        files: dict[str, bytes] = {}
        for plan, output, state in outputs:
            if output is None:
                continue
            first = 0
            parts: list[tuple[bytes, int]] = []
            for shard in output.shards:
                pointer = writer.lfs_object(LfsUpload(shard.local))
                parsed = parse_lfs_pointer(pointer)
                assert parsed is not None
                self.cache.adopt(f"{parsed.oid}.parquet", repo.id, shard.local)
                parts.append((pointer, shard.num_rows))
            for f, num_rows in output.copies:
                if f.lfs_oid is not None:
                    pointer = format_lfs_pointer(f.lfs_oid, f.size)
                else:  # a small Parquet file kept in git: store it in LFS for the branch
                    pointer = writer.lfs_object(LfsUpload(view.read(head, f.path)))
                parts.append((pointer, num_rows))
            for number, (pointer, num_rows) in enumerate(parts):
                path = convert_path(plan.config, plan.split, output.partial, number)
                parsed = parse_lfs_pointer(pointer)
                assert parsed is not None
                files[path] = pointer
                state.files.append(ParquetFile(path, parsed.oid, parsed.size, num_rows, first))
                first += num_rows
            state.num_rows, state.partial, state.parquet_bytes = output.num_rows, output.partial, output.parquet_bytes
            state.features = features(output.schema)
        return files

    def _move_branch(self, repo: RepoInfo, view: RepoView, files: dict[str, bytes], head: str,
                     splits: list[SplitState]) -> str | None:
        """Point refs/convert/parquet at a commit holding ``files`` (and a README naming them)."""
        writer = self.context.writer(repo)
        for attempt in range(3):
            current = view.resolve(CONVERT_REF)
            if not files:
                if current is not None:
                    writer.update_refs([RefUpdate(CONVERT_REF, current, ZERO_OID)])
                return None
            content = {**files, "README.md": readme(splits).encode()}
            if current is not None and self._same_files(view, current, content):
                return current
            try:
                return writer.commit(CONVERT_REF, content, message=f"Update Parquet files (from {head[:7]})",
                                     parent=current, replace=True)
            except RefConflict:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    @staticmethod
    def _same_files(view: RepoView, commit: str, content: dict[str, bytes]) -> bool:
        try:  # the walk counts folders too: config/split/file
            have = {e.path: e.oid for e in view.files(commit, limit=3 * len(content) + 10)}
        except LimitExceeded:
            return False
        return have == {path: git_blob_id(data) for path, data in content.items()}

    def local_files(self, repo: RepoInfo, parquet_commit: str, files: list[ParquetFile]) -> list[Shard]:
        """The split's Parquet files on local disk (copied from refs/convert/parquet when the
        cache does not hold them), with the index of their first row."""
        shards = []
        for f in files:
            def produce(tmp: Path, f: ParquetFile = f) -> None:
                view = self.context.view(repo)
                with view.open(parquet_commit, f.path) as source, open(tmp, "wb") as out:
                    shutil.copyfileobj(source, out, 8 << 20)
            path = self.cache.file(f"{f.oid}.parquet", repo.id, produce)
            shards.append(Shard(str(path), f.first_row, f.num_rows))
        return shards

    def _precompute(self, repo: RepoInfo, parquet_commit: str | None, plan: SplitPlan, output: SplitOutput,
                    state: SplitState, engine: Engine) -> None:
        assert parquet_commit is not None
        self.progress(f"{plan.config}/{plan.split}: first rows, statistics and search index")
        started = time.monotonic()
        shards = self.local_files(repo, parquet_commit, state.files)
        paths = [s.path for s in shards]
        state.memory_bytes = sum(memory_size(p) for p in paths)
        state.first_rows = first_rows(paths, self.settings)
        copied = time.monotonic()
        try:
            state.statistics = statistics(engine, paths, output.schema, state.num_rows)
        except Exception as exc:  # statistics are a bonus: the split is served without them
            log.warning("dataset %s: statistics of %s/%s failed: %s", repo.full_name, plan.config, plan.split, exc)
        counted = time.monotonic()
        if self.settings.search_index and text_columns(output.schema):
            try:
                self.cache.file(index_name(state.files), repo.id,
                                lambda tmp: build_index(engine, shards, output.schema, tmp))
            except Exception as exc:
                log.warning("dataset %s: search index of %s/%s failed: %s", repo.full_name, plan.config,
                            plan.split, exc)
        log.info("dataset %s: %s/%s: local files and first rows in %.2fs, statistics in %.2fs, search index in "
                 "%.2fs", repo.full_name, plan.config, plan.split, copied - started, counted - copied,
                 time.monotonic() - counted)

    @staticmethod
    def _summary(state: DatasetState) -> str:
        if state.error:
            return f"{state.head[:7]}: {state.error}"
        ok = [s for s in state.splits if s.ok]
        failed = [s for s in state.splits if not s.ok]
        text = f"{state.head[:7]}: {len(ok)} split(s) served, {sum(s.num_rows for s in ok):,} rows"
        if failed:
            text += f"; {len(failed)} failed: " + "; ".join(f"{s.config}/{s.split}: {s.error}" for s in failed[:3])
        return text


def memory_size(path: str) -> int:
    """The uncompressed size of a Parquet file's data (about its size in memory)."""
    meta = pq.ParquetFile(path).metadata
    return sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))


def first_rows(paths: list[str], settings: ViewerSettings) -> list[dict[str, Any]]:
    want, tables = settings.first_rows, []
    for path in paths:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=want):
            tables.append(batch)
            want -= batch.num_rows
            break
        if want <= 0:
            break
    if not tables:
        return []
    table = pa.Table.from_batches(tables).slice(0, settings.first_rows)
    return rows(table, 0, max_bytes=settings.rows_max_bytes, min_cell_bytes=settings.min_cell_bytes,
                min_rows=min(10, table.num_rows))


def readme(splits: list[SplitState]) -> str:
    """The README.md of refs/convert/parquet: its configs, so ``datasets.load_dataset`` finds
    each config's splits there."""
    configs: dict[str, list[dict[str, Any]]] = {}
    for s in splits:
        if s.files:
            folder = s.files[0].path.rsplit("/", 1)[0]
            configs.setdefault(s.config, []).append({"split": s.split, "path": f"{folder}/*.parquet"})
    header = yaml.safe_dump({"configs": [{"config_name": name, "data_files": files}
                                         for name, files in configs.items()]}, sort_keys=False)
    return f"---\n{header}---\n\nParquet files converted by gitd's dataset viewer from the default branch.\n"

