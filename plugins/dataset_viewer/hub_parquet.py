"""The Hub's Parquet listing: ``GET /api/datasets/NS/NAME/parquet[/CONFIG[/SPLIT[/N.parquet]]]``.

Repository routes (``RepoRoute``), behind the daemon's own access check. The listing gives
URLs of the form ``.../parquet/CONFIG/SPLIT/N.parquet``, which redirect to the file on
refs/convert/parquet (``/datasets/NS/NAME/resolve/refs%2Fconvert%2Fparquet/PATH``), as
the Hub's do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from gitd.plugin_api import HTTPError, PluginRequest, RepoRoute, Response

from .errors import ApiError, answer

if TYPE_CHECKING:
    from .api import ViewerAPI

CONVERT = "refs%2Fconvert%2Fparquet"


class HubParquet:
    def __init__(self, api: ViewerAPI):
        self.api = api
        self.p = api.p

    def routes(self) -> list[RepoRoute]:
        out = [RepoRoute("GET", path, self.listing, types=("dataset",), summary="Parquet files")
               for path in ("/parquet", "/parquet/{config}", "/parquet/{config}/{split}")]
        out.append(RepoRoute("GET", "/parquet/{config}/{split}/{file}", self.file, types=("dataset",),
                             summary="a Parquet file (redirect)"))
        return out

    @answer
    def listing(self, request: PluginRequest) -> Any:
        repo = request.repo
        assert repo is not None
        state = self.api._ready(repo, self.p.states.current(repo.id))
        config, split = request.params.get("config"), request.params.get("split")
        base = f"{request.base_url}/api/datasets/{repo.full_name}/parquet"
        out: dict[str, dict[str, list[str]]] = {}
        for s in state.splits:
            if s.ok:
                out.setdefault(s.config, {})[s.split] = [f"{base}/{quote(s.config)}/{quote(s.split)}/{i}.parquet"
                                                         for i in range(len(s.files))]
        if config is None:
            return out
        if config not in out:
            raise ApiError(404, f"the dataset has no config {config!r} with Parquet files", "ConfigNotFound")
        if split is None:
            return out[config]
        if split not in out[config]:
            raise ApiError(404, f"config {config!r} has no split {split!r} with Parquet files", "SplitNotFound")
        return out[config][split]

    @answer
    def file(self, request: PluginRequest) -> Any:
        repo = request.repo
        assert repo is not None
        state = self.api._ready(repo, self.p.states.current(repo.id))
        s = state.split(request.params["config"], request.params["split"])
        name = request.params["file"]
        number = name.removesuffix(".parquet")
        if s is None or not s.ok or not number.isdigit() or int(number) >= len(s.files):
            raise HTTPError(404, "no such Parquet file")
        path = s.files[int(number)].path
        url = f"{request.base_url}/datasets/{repo.full_name}/resolve/{CONVERT}/{quote(path)}"
        return Response(b"", 302, content_type="text/plain", headers={"Location": url})
