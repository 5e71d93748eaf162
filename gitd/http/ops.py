"""Operations endpoints: /healthz (liveness), /readyz (readiness) and Prometheus /metrics.

/healthz says the process answers and its database does: a supervisor restarts the
daemon when it fails. /readyz also says whether it can take git work now: 503 (with the
reason, as JSON) while every git process slot is in use, so a load balancer sends
clients elsewhere instead of letting them queue; both carry the slots used and free.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from gitd.git.slots import GitSlots
from gitd.http.routing import Match, Router
from gitd.metrics import Metrics
from gitd.store import Store


class Ops:
    def __init__(self, store: Store, metrics: Metrics, slots: GitSlots | None = None):
        self.store = store
        self.metrics = metrics
        self.slots = slots

    def add_routes(self, router: Router) -> None:
        router.add("GET", "/healthz", self.healthz, name="healthz")
        router.add("GET", "/readyz", self.readyz, name="readyz")
        router.add("GET", "/metrics", self.render_metrics, name="metrics")

    async def _database_error(self) -> str | None:
        try:
            await asyncio.to_thread(lambda: self.store.db.execute("SELECT 1").fetchone())
        except Exception as exc:
            return str(exc)
        return None

    async def healthz(self, request: web.Request, m: Match) -> web.Response:
        error = await self._database_error()
        if error is not None:
            return web.json_response({"status": "error", "error": error}, status=503)
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request, m: Match) -> web.Response:
        body: dict[str, object] = {"status": "ready"}
        reason = None
        if self.slots is not None:
            state = self.slots.state()
            body["git"] = state.as_dict()
            if state.free <= 0:
                reason = f"all {state.total} git process slots are in use ({state.waiting} requests waiting)"
        error = await self._database_error()
        if error is not None:
            reason = f"database: {error}"
        if reason is not None:
            return web.json_response({**body, "status": "not ready", "reason": reason}, status=503,
                                     headers={"Cache-Control": "no-cache"})
        return web.json_response(body, headers={"Cache-Control": "no-cache"})

    async def render_metrics(self, request: web.Request, m: Match) -> web.Response:
        return web.Response(text=self.metrics.render(), content_type="text/plain",
                            headers={"Cache-Control": "no-cache"}, charset="utf-8")
