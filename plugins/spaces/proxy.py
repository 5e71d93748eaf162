"""The reverse proxy: ``/spaces/NS/NAME/app/...`` to the space's app, HTTP and WebSocket.

The daemon has authenticated the caller and checked read access to the space before the
handler runs (a private space is 404 to others). The caller's ``Authorization`` header
never reaches the app; the app's cookies are never kept by the proxy (no cookie jar).
Static spaces are answered from their build directory. A sleeping space is woken by the
request, which waits for it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web
from yarl import URL

from gitd.plugin_api import HTTPError, PluginRequest

from .httprelay import HttpRelay
from .local import LocalRunner, SpaceUnavailable
from .state import PAUSED, STOPPED, SpaceStates
from .wsrelay import RelayError, relay_websocket

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "transfer-encoding", "upgrade", "authorization", "proxy-connection"})
WS_HEADERS = frozenset({"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
                        "sec-websocket-protocol"})


class SpaceProxy:
    def __init__(self, runner: LocalRunner, states: SpaceStates):
        self.runner = runner
        self.states = states
        self.http = HttpRelay()

    async def handle(self, request: PluginRequest) -> web.StreamResponse:
        raw: web.Request = request.raw
        repo = request.repo
        assert repo is not None
        path = request.params.get("path", "")
        prefix = f"/spaces/{repo.full_name}/app"
        if not path and not raw.path.endswith("/"):
            raise web.HTTPTemporaryRedirect(prefix + "/" + (f"?{raw.query_string}" if raw.query_string else ""))
        # An app that is up and ready answers from memory: no thread hop, no database read
        # (a paused, stopped, sleeping or redeploying space has no ready process).
        port = self.runner.ready_port(repo.id)
        if port is None:
            row = await asyncio.to_thread(self.states.get, repo.id)
            if row is None:
                raise HTTPError(503, "this space has not been built yet: push an app to it")
            if row.stage in (PAUSED, STOPPED):  # until restarted (gitd spaces stop, pause_space, a deleted branch)
                raise HTTPError(503, f"this space is {row.stage.lower()}; restart it to run it again")
            if row.sdk == "static" and row.build_dir:
                return await self._static(Path(row.build_dir), path, row.app_file or "index.html")
            try:
                port = await asyncio.to_thread(self.runner.ensure_running, repo.id)
            except SpaceUnavailable as exc:
                return web.json_response({"error": exc.message, "stage": exc.stage}, status=503,
                                         headers={"Retry-After": "5"})
        # the path as aiohttp decoded it, quoted again where it must be (as a client would)
        target = URL(f"/{path}?{raw.query_string}" if raw.query_string else f"/{path}").raw_path_qs
        headers = self._headers(raw, prefix)
        try:
            with self.runner.serving(repo.id):
                if raw.headers.get("Upgrade", "").lower() == "websocket":
                    return await relay_websocket(raw, port, path, headers)
                return await self.http.relay(raw, port, target, headers)
        except (TimeoutError, ConnectionError) as exc:
            raise HTTPError(502, f"the space's app is not answering ({type(exc).__name__})") from None
        except RelayError as exc:
            raise HTTPError(502, str(exc)) from None

    @staticmethod
    def _headers(raw: web.Request, prefix: str) -> list[tuple[str, str]]:
        out = [(k, v) for k, v in raw.headers.items()
               if (low := k.lower()) not in HOP_BY_HOP and low not in WS_HEADERS and not low.startswith("x-forwarded-")]
        peer = raw.remote or ""
        out += [("X-Forwarded-For", peer), ("X-Forwarded-Proto", raw.scheme), ("X-Forwarded-Host", raw.host),
                ("X-Forwarded-Prefix", prefix)]
        return out

    async def _static(self, root: Path, path: str, index: str) -> web.StreamResponse:
        def find() -> Path | None:
            base = root.resolve()
            target = (base / (path or index)).resolve()
            if target != base and base not in target.parents:
                return None
            if target.is_dir():
                target = target / "index.html"
            return target if target.is_file() else None

        found = await asyncio.to_thread(find)
        if found is None:
            raise HTTPError(404, f"{path or index}: no such file in this space")
        return web.FileResponse(found)
