"""Operations endpoints: /healthz and Prometheus /metrics."""

from __future__ import annotations

import asyncio

from aiohttp import web

from gitd.http.routing import Match, Router
from gitd.metrics import Metrics
from gitd.store import Store


class Ops:
    def __init__(self, store: Store, metrics: Metrics):
        self.store = store
        self.metrics = metrics

    def add_routes(self, router: Router) -> None:
        router.add("GET", "/healthz", self.healthz, name="healthz")
        router.add("GET", "/metrics", self.render_metrics, name="metrics")

    async def healthz(self, request: web.Request, m: Match) -> web.Response:
        try:
            await asyncio.to_thread(lambda: self.store.db.execute("SELECT 1").fetchone())
        except Exception as exc:
            return web.json_response({"status": "error", "error": str(exc)}, status=503)
        return web.json_response({"status": "ok"})

    async def render_metrics(self, request: web.Request, m: Match) -> web.Response:
        return web.Response(text=self.metrics.render(), content_type="text/plain",
                            headers={"Cache-Control": "no-cache"}, charset="utf-8")
