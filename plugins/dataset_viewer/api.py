"""The viewer's HTTP API, in the shapes of the Hugging Face dataset viewer (docs/datasets.md).

Under ``/api/plugins/datasets/``: ``is-valid``, ``splits``, ``first-rows``, ``rows``,
``search``, ``filter``, ``size``, ``info``, ``parquet``, ``statistics`` and ``sql``, each
taking ``?dataset=NS/NAME`` (and ``config``, ``split``, ...). Every one looks the dataset
up with the caller's access first: a private dataset is a 404 (401 anonymously) to whoever
may not read it, exactly as a missing one. Beside them, the Hub's
``/api/datasets/NS/NAME/parquet[/CONFIG[/SPLIT[/N.parquet]]]``.

Answers describe the last processed commit of the default branch; rows, search and
filter answers are cached on disk per (repository, commit, config, split, query).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from gitd.plugin_api import PluginRequest, RepoInfo, RepoRoute, Response, Route

from .console import ConsoleError
from .engine import ROW_IDX, split_source
from .errors import ApiError, answer
from .features import rows as json_rows
from .hub_parquet import CONVERT, HubParquet
from .search import index_name, search, text_columns
from .state import DatasetState, SplitState
from .where import FilterError, compile_orderby, compile_where

if TYPE_CHECKING:
    from . import DatasetViewer


def _json(body: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(body, 200, headers=headers or {})


class ViewerAPI:
    def __init__(self, plugin: DatasetViewer):
        self.p = plugin
        self.settings = plugin.settings
        self._schemas: dict[str, pa.Schema] = {}
        self._console_slots = threading.BoundedSemaphore(2)

    def routes(self) -> list[Route | RepoRoute]:
        get = [("/is-valid", self.is_valid), ("/splits", self.splits), ("/first-rows", self.first_rows),
               ("/rows", self.rows), ("/search", self.search), ("/filter", self.filter), ("/size", self.size),
               ("/info", self.info), ("/parquet", self.parquet), ("/statistics", self.statistics),
               ("/sql", self.sql)]
        out: list[Route | RepoRoute] = [Route("GET", path, fn, summary=f"dataset viewer {path[1:]}")
                                        for path, fn in get]
        out.append(Route("POST", "/sql", self.sql, summary="dataset viewer SQL console"))
        return out + HubParquet(self).routes()

    # -- lookups ---------------------------------------------------------------------------------
    def _dataset(self, request: PluginRequest, params: Mapping[str, str] | None = None
                 ) -> tuple[RepoInfo, DatasetState | None]:
        name = (request.query if params is None else params).get("dataset")
        if not name:
            raise ApiError(422, "Parameter 'dataset' is required", "MissingRequiredParameter")
        repo = request.repository(name, "dataset")  # 404 (401 anonymously) unless the caller may read it
        return repo, self.p.states.current(repo.id)

    def _ready(self, repo: RepoInfo, state: DatasetState | None) -> DatasetState:
        if state is None:
            raise ApiError(503, f"the dataset viewer has not processed {repo.full_name} yet; try again shortly",
                           "ResponseNotReady", {"Retry-After": "5"})
        if state.error is not None:
            raise ApiError(422, f"the dataset cannot be read: {state.error}", "DatasetError")
        return state

    def _split(self, request: PluginRequest) -> tuple[RepoInfo, DatasetState, SplitState]:
        repo, state = self._dataset(request)
        config, split = request.query.get("config"), request.query.get("split")
        if not config or not split:
            raise ApiError(422, "Parameters 'config' and 'split' are required", "MissingRequiredParameter")
        ready = self._ready(repo, state)
        found = ready.split(config, split)
        if found is None:
            raise ApiError(404, f"{repo.full_name} has no split {split!r} in config {config!r}", "SplitNotFound")
        if found.error is not None:
            raise ApiError(422, f"the split {config}/{split} cannot be read: {found.error}", "SplitError")
        return repo, ready, found

    def _config(self, request: PluginRequest, state: DatasetState, params: Mapping[str, str] | None = None
                ) -> str | None:
        config = (request.query if params is None else params).get("config")
        if config and config not in state.configs():
            raise ApiError(404, f"the dataset has no config {config!r}", "ConfigNotFound")
        return config or None

    def _page(self, request: PluginRequest) -> tuple[int, int]:
        try:
            offset = int(request.query.get("offset", "0"))
            length = int(request.query.get("length", str(self.settings.max_page_rows)))
        except ValueError:
            raise ApiError(422, "Parameters 'offset' and 'length' must be integers", "InvalidParameter") from None
        if offset < 0:
            raise ApiError(422, "Parameter 'offset' must be positive", "InvalidParameter")
        if not 0 < length <= self.settings.max_page_rows:
            raise ApiError(422, f"Parameter 'length' must be between 1 and {self.settings.max_page_rows}",
                           "InvalidParameter")
        return offset, length

    def _schema(self, path: str) -> pa.Schema:
        schema = self._schemas.get(path)
        if schema is None:
            if len(self._schemas) > 1000:
                self._schemas.clear()
            schema = self._schemas[path] = pq.read_schema(path)
        return schema

    def _cached(self, repo: RepoInfo, state: DatasetState, parts: list[Any], compute: Callable[[], Any]) -> Response:
        key = json.dumps([repo.id, state.head, state.parquet_commit, *parts], separators=(",", ":"))
        return _json(self.p.cache.answer(key, repo.id, lambda: json.dumps(compute()).encode()))

    def _rows(self, table: pa.Table, first: int | list[int]) -> list[dict[str, Any]]:
        return json_rows(table, first, max_bytes=self.settings.rows_max_bytes,
                         min_cell_bytes=self.settings.min_cell_bytes)

    def _page_answer(self, s: SplitState, table: pa.Table, first: int | list[int], total: int) -> dict[str, Any]:
        return {"features": s.features, "rows": self._rows(table, first), "num_rows_total": total,
                "num_rows_per_page": self.settings.max_page_rows, "partial": s.partial}

    # -- dataset-level answers -------------------------------------------------------------------
    @answer
    def is_valid(self, request: PluginRequest) -> Any:
        _, state = self._dataset(request)
        if state is None or state.error is not None:
            out: dict[str, Any] = dict.fromkeys(("preview", "viewer", "search", "filter", "statistics"), False)
            if state is not None:
                out["error"] = state.error
            return out
        config, split = request.query.get("config"), request.query.get("split")
        chosen = [s for s in state.splits if (not config or s.config == config) and (not split or s.split == split)]
        ok = [s for s in chosen if s.ok]
        return {"preview": any(s.num_rows > 0 for s in ok), "viewer": bool(ok),
                "search": any(_has_text(s) for s in ok), "filter": bool(ok), "statistics": bool(ok),
                "errors": [{"config": s.config, "split": s.split, "error": s.error} for s in chosen if not s.ok]}

    @answer
    def splits(self, request: PluginRequest) -> Any:
        repo, state = self._dataset(request)
        ready = self._ready(repo, state)
        config = self._config(request, ready)
        chosen = [s for s in ready.splits if config is None or s.config == config]
        return {"splits": [{"dataset": repo.full_name, "config": s.config, "split": s.split} for s in chosen if s.ok],
                "pending": [],
                "failed": [{"dataset": repo.full_name, "config": s.config, "split": s.split,
                            "error": {"error": s.error}} for s in chosen if not s.ok]}

    @answer
    def size(self, request: PluginRequest) -> Any:
        repo, state = self._dataset(request)
        ready = self._ready(repo, state)
        config = self._config(request, ready)
        ok = [s for s in ready.splits if s.ok and (config is None or s.config == config)]

        def sizes(group: list[SplitState]) -> dict[str, int]:
            return {"num_bytes_original_files": sum(s.original_bytes for s in group),
                    "num_bytes_parquet_files": sum(s.parquet_bytes for s in group),
                    "num_bytes_memory": sum(s.memory_bytes for s in group), "num_rows": sum(s.num_rows for s in group)}

        splits = [{"dataset": repo.full_name, "config": s.config, "split": s.split, **sizes([s]),
                   "num_columns": len(s.features)} for s in ok]
        configs = [{"dataset": repo.full_name, "config": c, **sizes(g), "num_columns": len(g[0].features)}
                   for c in dict.fromkeys(s.config for s in ok) if (g := [s for s in ok if s.config == c])]
        partial = any(s.partial for s in ok)
        if config is not None:
            return {"size": {"config": configs[0] if configs else {}, "splits": splits}, "partial": partial}
        return {"size": {"dataset": {"dataset": repo.full_name, **sizes(ok)}, "configs": configs, "splits": splits},
                "pending": [], "failed": _failed(repo, ready), "partial": partial}

    @answer
    def info(self, request: PluginRequest) -> Any:
        repo, state = self._dataset(request)
        ready = self._ready(repo, state)
        config = self._config(request, ready)
        infos = {}
        for name in ready.configs():
            group = [s for s in ready.splits if s.config == name and s.ok]
            if not group or (config is not None and name != config):
                continue
            infos[name] = {
                "dataset_name": repo.name, "config_name": name,
                "features": {f["name"]: f["type"] for f in group[0].features},
                "splits": {s.split: {"name": s.split, "num_bytes": s.memory_bytes, "num_examples": s.num_rows,
                                     "dataset_name": repo.name} for s in group},
                "download_size": sum(s.original_bytes for s in group),
                "dataset_size": sum(s.memory_bytes for s in group)}
        partial = any(s.partial for s in ready.splits if s.ok)
        if config is not None:
            return {"dataset_info": infos.get(config, {}), "partial": partial}
        return {"dataset_info": infos, "pending": [], "failed": _failed(repo, ready), "partial": partial}

    @answer
    def parquet(self, request: PluginRequest) -> Any:
        repo, state = self._dataset(request)
        ready = self._ready(repo, state)
        config = self._config(request, ready)
        files = [{"dataset": repo.full_name, "config": s.config, "split": s.split,
                  "url": f"{request.base_url}/datasets/{repo.full_name}/resolve/{CONVERT}/{quote(f.path)}",
                  "filename": f.path.rsplit("/", 1)[-1], "size": f.size}
                 for s in ready.splits if s.ok and (config is None or s.config == config) for f in s.files]
        body = {"parquet_files": files, "pending": [], "failed": _failed(repo, ready),
                "partial": any(s.partial for s in ready.splits if s.ok)}
        return Response(body, headers={"X-Revision": ready.head})

    # -- split-level answers ---------------------------------------------------------------------
    @answer
    def first_rows(self, request: PluginRequest) -> Any:
        repo, state, s = self._split(request)

        def compute() -> dict[str, Any]:
            rows = self.p.states.details(repo.id, state.head, s.config, s.split, "first_rows") or []
            return {"dataset": repo.full_name, "config": s.config, "split": s.split, "features": s.features,
                    "rows": rows, "truncated": s.num_rows > len(rows)}

        return self._cached(repo, state, ["first-rows", s.config, s.split], compute)

    @answer
    def statistics(self, request: PluginRequest) -> Any:
        repo, state, s = self._split(request)
        stats = self.p.states.details(repo.id, state.head, s.config, s.split, "statistics")
        if stats is None:
            raise ApiError(501, "statistics could not be computed for this split", "StatisticsNotAvailable")
        return {"num_examples": s.num_rows, "statistics": stats, "partial": s.partial}

    @answer
    def rows(self, request: PluginRequest) -> Any:
        repo, state, s = self._split(request)
        offset, length = self._page(request)

        def compute() -> dict[str, Any]:
            if offset >= s.num_rows:
                return self._page_answer(s, pa.table({}), offset, s.num_rows)
            paths = [sh.path for sh in self._shards(repo, state, s)]
            table = self.p.engine.query("SELECT * FROM read_parquet(?) LIMIT ? OFFSET ?", [paths, length, offset])
            return self._page_answer(s, table, offset, s.num_rows)

        return self._cached(repo, state, ["rows", s.config, s.split, offset, length], compute)

    @answer
    def search(self, request: PluginRequest) -> Any:
        repo, state, s = self._split(request)
        query = request.query.get("query", "")
        if not query.strip():
            raise ApiError(422, "Parameter 'query' is required", "MissingRequiredParameter")
        offset, length = self._page(request)

        def compute() -> dict[str, Any]:
            shards = self._shards(repo, state, s)
            schema = self._schema(shards[0].path)
            index = None
            if self.settings.search_index and text_columns(schema):
                name = index_name(s.files)
                if self.p.cache.has(name):
                    index = str(self.p.cache.path(name))
                else:  # evicted: rebuild it in the background; this answer scans the split
                    self.p.rebuild_index(repo, state, s)
            try:
                table, indexes, total = search(self.p.engine, shards, schema, index, query, offset, length)
            except ValueError as exc:
                raise ApiError(422, f"Parameter 'query' is invalid: {exc}", "InvalidParameter") from None
            return self._page_answer(s, table, indexes, total)

        return self._cached(repo, state, ["search", s.config, s.split, query, offset, length], compute)

    @answer
    def filter(self, request: PluginRequest) -> Any:
        repo, state, s = self._split(request)
        where, orderby = request.query.get("where", ""), request.query.get("orderby", "")
        offset, length = self._page(request)

        def compute() -> dict[str, Any]:
            shards = self._shards(repo, state, s)
            columns = self._schema(shards[0].path).names
            try:
                condition, params = compile_where(where, columns)
            except FilterError as exc:
                raise ApiError(422, f"Parameter 'where' is invalid: {exc}", "InvalidParameter") from None
            try:
                order = compile_orderby(orderby, columns)
            except FilterError as exc:
                raise ApiError(422, f"Parameter 'orderby' is invalid: {exc}", "InvalidParameter") from None
            source, source_params = split_source(shards)
            order_by = f"{order}, {ROW_IDX}" if order else ROW_IDX
            try:
                total = self.p.engine.scalar(f"SELECT count(*) FROM {source} WHERE {condition}",
                                             [*source_params, *params])
                page = self.p.engine.query(f"SELECT * FROM {source} WHERE {condition} ORDER BY {order_by} "
                                           "LIMIT ? OFFSET ?", [*source_params, *params, length, offset])
            except duckdb.Error as exc:
                raise ApiError(422, f"the filter does not apply to this split: {str(exc).splitlines()[0]}",
                               "InvalidParameter") from None
            indexes = page.column(ROW_IDX).to_pylist()
            return self._page_answer(s, page.drop_columns([ROW_IDX]), indexes, int(total or 0))

        return self._cached(repo, state, ["filter", s.config, s.split, where, orderby, offset, length], compute)

    def _shards(self, repo: RepoInfo, state: DatasetState, s: SplitState) -> list:
        if state.parquet_commit is None:
            raise ApiError(503, "the Parquet files are not ready yet", "ResponseNotReady")
        return self.p.refresher.local_files(repo, state.parquet_commit, s.files)

    # -- the SQL console -------------------------------------------------------------------------
    @answer
    def sql(self, request: PluginRequest) -> Any:
        body = request.json() if request.method == "POST" and request.body.strip().startswith(b"{") else {}
        if not isinstance(body, dict):
            raise ApiError(422, "the body is a JSON object: {\"dataset\", \"config\", \"sql\"}", "InvalidParameter")
        query = {**request.query, **{k: v for k, v in body.items() if isinstance(v, str)}}
        if request.method == "POST" and not body and request.body:
            query["sql"] = request.body.decode("utf-8", "replace")
        repo, state = self._dataset(request, query)
        ready = self._ready(repo, state)
        config = self._config(request, ready, query) or next((s.config for s in ready.splits if s.ok), None)
        sql = query.get("sql", "")
        splits = [s for s in ready.splits if s.ok and s.config == config]
        if not splits:
            raise ApiError(422, "the dataset has no readable split", "DatasetError")
        if not self._console_slots.acquire(timeout=5):
            raise ApiError(503, "the SQL console is busy; try again shortly", "Busy", {"Retry-After": "5"})
        try:
            views = {s.split: [sh.path for sh in self._shards(repo, ready, s)] for s in splits}
            return {"dataset": repo.full_name, "config": config, **self.p.console.run(sql, views)}
        except ConsoleError as exc:
            raise ApiError(400, str(exc), "InvalidSQL") from None
        finally:
            self._console_slots.release()


def _has_text(s: SplitState) -> bool:
    return any(isinstance(f["type"], dict) and f["type"].get("dtype") in ("string", "large_string", "string_view")
               for f in s.features)


def _failed(repo: RepoInfo, state: DatasetState) -> list[dict[str, Any]]:
    return [{"dataset": repo.full_name, "config": s.config, "split": s.split, "error": {"error": s.error}}
            for s in state.splits if not s.ok]
