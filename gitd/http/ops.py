"""Operations endpoints: /healthz (liveness), /readyz (readiness) and Prometheus /metrics.

/healthz says the process answers and its event loop runs: a supervisor restarts the
daemon when it fails. It stays 200 whatever the daemon depends on is doing (a database
locked by another process, storage down, a full disk), since a restart would not help.

/readyz says whether the daemon can take work now, as JSON with every check and, when one
fails, 503 with the reason (a load balancer sends clients elsewhere meanwhile):

* ``database``: a write transaction can start within ``db_probe_timeout`` seconds (another
  process holding the write lock longer makes pushes and uploads wait);
* ``storage``: the LFS object store is not known to be down (S3; see
  ``gitd.lfs.storage.health``);
* ``disk``: free space is above ``[server] min_free_space``;
* ``git``: a git process slot is free.

The database probe runs on a thread, at most once a second (answers in between reuse it).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from gitd.clock import SYSTEM_CLOCK, Clock
from gitd.git.slots import GitSlots
from gitd.http.routing import Match, Router
from gitd.lfs.storage.health import StorageHealth
from gitd.metrics import Metrics
from gitd.ops.diskspace import DiskSpace
from gitd.store import Store

# How long the readiness probe waits for the database's write lock.
DB_PROBE_TIMEOUT = 1.0
# Seconds a database probe's answer is reused.
DB_PROBE_EVERY = 1.0


class Ops:
    def __init__(self, store: Store, metrics: Metrics, slots: GitSlots | None = None, *,
                 disk: DiskSpace | None = None, storage: StorageHealth | None = None, clock: Clock = SYSTEM_CLOCK,
                 db_probe_timeout: float = DB_PROBE_TIMEOUT):
        self.store = store
        self.metrics = metrics
        self.slots = slots
        self.disk = disk
        self.storage = storage
        self.clock = clock
        self.db_probe_timeout = db_probe_timeout
        self._db_probe: asyncio.Future[str | None] | None = None
        self._db_probed = -DB_PROBE_EVERY

    def add_routes(self, router: Router) -> None:
        router.add("GET", "/healthz", self.healthz, name="healthz")
        router.add("GET", "/readyz", self.readyz, name="readyz")
        router.add("GET", "/metrics", self.render_metrics, name="metrics")

    async def healthz(self, request: web.Request, m: Match) -> web.Response:
        return web.json_response({"status": "ok"}, headers={"Cache-Control": "no-cache"})

    async def _database(self) -> str | None:
        """Why the database cannot take a write now (None: it can); one probe at a time."""
        now = self.clock.monotonic()
        if self._db_probe is None or (self._db_probe.done() and now - self._db_probed >= DB_PROBE_EVERY):
            self._db_probed = now
            loop = asyncio.get_running_loop()
            self._db_probe = loop.run_in_executor(None, self.store.probe_writable, self.db_probe_timeout)
        return await asyncio.shield(self._db_probe)

    async def readyz(self, request: web.Request, m: Match) -> web.Response:
        checks: dict[str, object] = {}
        reasons: list[str] = []
        if self.slots is not None:
            state = self.slots.state()
            checks["git"] = state.as_dict()
            if state.free <= 0:
                reasons.append(f"all {state.total} git process slots are in use ({state.waiting} requests waiting)")
        database = await self._database()
        checks["database"] = "ok" if database is None else database
        if database is not None:
            reasons.append(f"database: {database}")
        if self.storage is not None:
            storage = self.storage.reason()
            checks["storage"] = "ok" if storage is None else storage
            if storage is not None:
                reasons.append(storage)
        if self.disk is not None:
            disk = self.disk.reason()
            checks["disk"] = {"free": self.disk.free(), "min_free": self.disk.watermark,
                              "status": "ok" if disk is None else disk}
            if disk is not None:
                reasons.append(disk)
        headers = {"Cache-Control": "no-cache"}
        if reasons:
            return web.json_response({"status": "not ready", "reason": "; ".join(reasons), **checks}, status=503,
                                     headers=headers)
        return web.json_response({"status": "ready", **checks}, headers=headers)

    async def render_metrics(self, request: web.Request, m: Match) -> web.Response:
        return web.Response(text=self.metrics.render(), content_type="text/plain",
                            headers={"Cache-Control": "no-cache"}, charset="utf-8")
