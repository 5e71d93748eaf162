"""The dataset viewer: Parquet conversion, previews, search, filters, statistics and SQL for datasets.

A built-in plugin, registered through the ``gitd.plugins`` entry point as ``datasets``
and written against the public plugin API only (docs/datasets.md has the guide):

* after a push that moves a dataset's default branch (``gitd_post_receive``, a durable
  job), and on ``gitd datasets refresh NS/NAME`` (a task), it finds the dataset's configs
  and splits, converts them to Parquet on ``refs/convert/parquet`` (committed through the
  hook chain), and precomputes first rows, statistics and a search index;
* it serves the dataset viewer API under ``/api/plugins/datasets/`` and the Hub's
  ``/api/datasets/NS/NAME/parquet`` listing, to whoever may read the dataset, and a
  "Dataset viewer" tab on the dataset's web pages (``web.py``);
* it keeps its state in its own tables, and a bounded disk cache in its own directory.
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

import pyarrow.parquet as pq

from gitd.plugin_api import (
    CliCommand,
    PluginContext,
    PluginError,
    PushEvent,
    RepoInfo,
    TaskEvent,
    hookimpl,
)

from . import web
from .api import ViewerAPI
from .cache import DiskCache
from .console import Console
from .engine import Engine
from .job import Refresher
from .search import build_index, index_name
from .settings import ViewerSettings
from .state import DatasetState, SplitState, States

__all__ = ["DatasetViewer"]


class DatasetViewer:
    def __init__(self, context: PluginContext):
        self.context = context
        self.settings = context.settings(ViewerSettings).check()
        self._parts: dict[str, Any] = {}
        self._lock = threading.RLock()

    # Everything is made on first use: `gitd` commands that load the plugin open nothing.
    def _part(self, name: str, make: Any) -> Any:
        with self._lock:
            if name not in self._parts:
                self._parts[name] = make()
            return self._parts[name]

    @property
    def states(self) -> States:
        return self._part("states", lambda: States(self.context.storage))

    @property
    def cache(self) -> DiskCache:
        return self._part("cache", lambda: DiskCache(self.context.cache_dir, self.settings.cache_size))

    @property
    def engine(self) -> Engine:
        s = self.settings
        return self._part("engine", lambda: Engine(self.cache.root, threads=s.threads, memory_limit=s.memory_limit,
                                                   timeout=float(s.query_timeout)))

    @property
    def console(self) -> Console:
        s = self.settings
        return self._part("console", lambda: Console(self.cache.root, max_rows=s.sql_max_rows,
                                                     timeout=float(s.sql_timeout), memory_limit=s.sql_memory_limit,
                                                     threads=s.sql_threads))

    @property
    def refresher(self) -> Refresher:
        return self._part("refresher", lambda: Refresher(self.context, self.settings, self.states, self.cache))

    # -- hooks -------------------------------------------------------------------------------------
    @hookimpl
    def gitd_post_receive(self, event: PushEvent) -> None:
        # Only the default branch is shown (as on the Hub). Our own commits move
        # refs/convert/parquet, never the default branch, so they never come back here.
        update = event.default_branch_update()
        if event.repo.type != "dataset" or update is None:
            return
        self.refresher.refresh(event.repo)

    @hookimpl
    def gitd_task(self, event: TaskEvent) -> None:
        if event.task == "refresh" and event.repo is not None and event.repo.type == "dataset":
            self.refresher.refresh(event.repo, force=bool(event.payload.get("force")))
        elif event.task == "index" and event.repo is not None:
            self._build_index(event.repo, event.payload)

    @hookimpl
    def gitd_repo_deleted(self, repo: RepoInfo) -> None:
        if repo.type == "dataset":
            self.states.forget(repo.id)
            self.cache.forget_repo(repo.id)

    @hookimpl
    def gitd_http_routes(self) -> list:
        return ViewerAPI(self).routes()

    @hookimpl
    def gitd_web_tabs(self, repo: RepoInfo) -> list | None:
        return web.tabs(repo, self._part("web", lambda: web.ViewerTab(self, ViewerAPI(self))).page)

    @hookimpl
    def gitd_cli_commands(self) -> list:
        return [CliCommand("datasets", "refresh", "convert a dataset to Parquet again and refresh its viewer",
                           self._cli_refresh, self._cli_refresh_arguments),
                CliCommand("datasets", "status", "show what the viewer knows of a dataset", self._cli_status,
                           self._cli_status_arguments)]

    # -- background work ---------------------------------------------------------------------------
    def rebuild_index(self, repo: RepoInfo, state: DatasetState, split: SplitState) -> None:
        """Queue the rebuild of an evicted search index (at most once in ten minutes)."""
        self.context.submit(repo, "index", {"head": state.head, "config": split.config, "split": split.split},
                            key=f"{index_name(split.files)}:{int(time.time() // 600)}")

    def _build_index(self, repo: RepoInfo, payload: dict[str, Any]) -> None:
        state = self.states.load(repo.id)
        if state is None or state.head != payload.get("head") or state.parquet_commit is None:
            return
        split = state.split(str(payload.get("config")), str(payload.get("split")))
        if split is None or not split.ok:
            return
        shards = self.refresher.local_files(repo, state.parquet_commit, split.files)
        schema = pq.read_schema(shards[0].path)
        engine = self.refresher.job_engine()
        try:
            self.cache.file(index_name(split.files), repo.id, lambda tmp: build_index(engine, shards, schema, tmp))
        finally:
            engine.close()

    # -- command line ------------------------------------------------------------------------------
    def _cli_refresh_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("dataset", help="NS/NAME")

    def _find(self, name: str) -> RepoInfo:
        repo = self.context.find_repo(name, "dataset")
        if repo is None:
            raise PluginError(f"no dataset {name}")
        return repo

    def _cli_refresh(self, args: argparse.Namespace) -> int:
        repo = self._find(args.dataset)
        job = self.context.submit(repo, "refresh", {"force": True})
        print(f"dataset {repo.full_name}: refresh queued as job {job} (see gitd jobs list)")
        return 0

    def _cli_status_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("dataset", help="NS/NAME")

    def _cli_status(self, args: argparse.Namespace) -> int:
        repo = self._find(args.dataset)
        state = self.states.load(repo.id)
        if state is None:
            print(f"dataset {repo.full_name}: not processed yet")
            return 0
        print(f"dataset {repo.full_name}: commit {state.head[:7]}, refs/convert/parquet "
              f"{(state.parquet_commit or '-')[:7]}")
        if state.error:
            print(f"  error: {state.error}")
        for s in state.splits:
            what = f"{s.num_rows:,} rows, {len(s.files)} Parquet file(s)" + (", partial" if s.partial else "")
            print(f"  {s.config}/{s.split}: {what if s.ok else 'error: ' + str(s.error)}")
        return 0
