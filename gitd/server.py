"""``gitd serve``: the daemon. One event loop runs every listener and the job workers.

Resources are set up in the HTTP app's ``cleanup_ctx`` (hook socket, job workers,
and the other transports) and torn down in reverse order on SIGTERM/SIGINT. What each
resource runs is built by the composition root (``gitd.compose.Parts``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from gitd.compose import Parts
from gitd.config import split_hostport
from gitd.git.process import kill_all
from gitd.git.runner import install_child_watcher
from gitd.hooks.api import prepare_hook_endpoint
from gitd.http.accesslog import RedactingAccessLogger
from gitd.http.app import RATES, cancel_in_flight
from gitd.http.listener import GuardedSite
from gitd.lfs.storage.s3 import S3Storage
from gitd.looplag import LoopLagMonitor

log = logging.getLogger("gitd.server")

CleanupCtx = Callable[[web.Application], AsyncIterator[None]]

LISTENERS = web.AppKey("listeners", dict)
# Resources that start their graceful stop the moment SIGTERM arrives, alongside HTTP's,
# each given the shutdown grace: callables taking the grace in seconds.
DRAINS = web.AppKey("drains", list)
# How long past the shutdown grace the daemon may take to clean up before it exits anyway.
EXIT_MARGIN = 3.0


def loop_lag_ctx(parts: Parts) -> CleanupCtx:
    """Measures how late the event loop runs (a metric, and a log line when it blocks)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        monitor = LoopLagMonitor(parts.metrics)
        monitor.start()
        yield
        await monitor.stop()

    return ctx


def hook_socket_ctx(parts: Parts) -> CleanupCtx:
    """The internal hook API on a Unix socket only the daemon's user can use."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        path = parts.data.hook_socket
        server = parts.hook_api().server()
        prepare_hook_endpoint(path)
        old_umask = os.umask(0o177)
        try:
            await server.start(str(path))
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        app[LISTENERS]["hooks"] = str(path)
        yield
        await server.stop()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    return ctx


def job_workers_ctx(parts: Parts) -> CleanupCtx:
    """The job workers; on SIGTERM they stop claiming at once and running jobs get the
    shutdown grace (alongside HTTP's and SSH's), so the cleanup after it does not wait again."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        workers = parts.job_workers()
        await workers.start()
        stopping: list[asyncio.Future[None]] = []

        def begin_stop(grace: float) -> asyncio.Future[None]:
            if not stopping:
                stopping.append(asyncio.ensure_future(workers.stop(grace)))
            return stopping[0]

        app[DRAINS].append(begin_stop)
        try:
            yield
        finally:
            await begin_stop(min(parts.config.get_float("server.shutdown_grace"), 5.0))

    return ctx


def periodic_ctx(parts: Parts) -> CleanupCtx:
    """The daemon's periodic work (gitd.ops.scheduler), each task on a thread of its own."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        periodic = parts.periodic()
        await periodic.start()
        yield
        await periodic.stop()

    return ctx


def ssh_server_ctx(parts: Parts) -> CleanupCtx:
    """The SSH transport, unless ``server.ssh`` is empty."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        address = parts.config.get_str("server.ssh").strip()
        if not address:
            yield
            return
        listeners = app[LISTENERS]
        # The HTTP listener is bound after this resource starts: read it when needed.
        transport = parts.ssh_transport(lambda: listeners.get("http", ""))
        host, port = split_hostport(address, 2222)
        bound_host, bound_port = await transport.start(host, port)
        listeners["ssh"] = f"{_fmt_host(bound_host)}:{bound_port}"
        stopping: list[asyncio.Future[None]] = []

        def begin_stop(grace: float) -> asyncio.Future[None]:
            if not stopping:
                stopping.append(asyncio.ensure_future(transport.stop(grace)))
            return stopping[0]

        app[DRAINS].append(begin_stop)
        try:
            yield
        finally:
            await begin_stop(parts.config.get_float("server.shutdown_grace"))

    return ctx


def lfs_storage_ctx(parts: Parts) -> CleanupCtx:
    """Make sure the LFS bucket exists (S3); release the storage's clients and threads at the end."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        lfs = parts.lfs
        storage = lfs.storage
        if isinstance(storage, S3Storage):
            try:
                await storage.ensure_bucket()
            except Exception as exc:  # serve git anyway; LFS requests will report the storage error
                log.error("LFS storage: cannot reach bucket %s: %s", storage.bucket, exc)
        yield
        await lfs.close()

    return ctx


def plugin_lifecycle_ctx(parts: Parts) -> CleanupCtx:
    """Plugins' ``gitd_daemon_started`` / ``gitd_daemon_stopping`` hooks (API 1.2), on a thread."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        plugins = parts.plugins
        await asyncio.to_thread(plugins.collect, "gitd_daemon_started")
        yield
        timeout = parts.config.get_float("plugins.stop_timeout")
        try:
            async with asyncio.timeout(timeout):
                await asyncio.to_thread(plugins.collect, "gitd_daemon_stopping")
        except TimeoutError:
            log.error("plugins took more than %.0fs to stop; stopping anyway", timeout)

    return ctx


def make_app(parts: Parts) -> web.Application:
    app = parts.http_app()
    app[LISTENERS] = {}
    app[DRAINS] = []
    slots, connections, metrics = parts.git.slots, parts.connections, parts.metrics
    metrics.add_gauge("gitd_git_slots_in_use", "git process slots in use.", lambda: slots.state().used)
    metrics.add_gauge("gitd_git_slots_waiting", "git requests waiting for a slot.", lambda: slots.state().waiting)
    metrics.add_gauge("gitd_connections_open", "Client connections open (HTTP and SSH).", lambda: connections.open)
    disk = parts.disk
    metrics.add_gauge("gitd_disk_free_bytes", "Free space on the data directory's fullest disk.",
                      lambda: disk.free() or 0)
    health = parts.lfs.storage.health
    if health is not None:
        metrics.add_gauge("gitd_lfs_storage_up", "1 while the LFS object store answers (0: known down).",
                          lambda: int(not health.down))
    metrics.add_gauge("gitd_disk_low", "1 while free space is under [server] min_free_space (writes refused).",
                      lambda: int(disk.low() is not None))
    for resource in (loop_lag_ctx, lfs_storage_ctx, hook_socket_ctx, job_workers_ctx, periodic_ctx,
                     plugin_lifecycle_ctx, ssh_server_ctx):
        app.cleanup_ctx.append(resource(parts))
    return app


async def serve(parts: Parts, *, http: str, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    restore_child_watcher = install_child_watcher(loop)
    parts.portal.attach(loop)  # plugins on worker threads reach the daemon's coroutines through it
    # Writes are made on the store's threads; one left on the loop fails fast (503) instead of freezing it.
    parts.store.on_event_loop(parts.config.get_float("database.loop_busy_timeout"))
    if threading.current_thread() is threading.main_thread():  # tests may run it in a thread
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    app = make_app(parts)
    grace = parts.config.get_float("server.shutdown_grace")
    runner = web.AppRunner(
        app,
        access_log=logging.getLogger("gitd.access") if parts.config.get_bool("server.access_log") else None,
        access_log_class=RedactingAccessLogger,
        handle_signals=False,
        # Seconds in-flight requests get once SIGTERM came; then they are cancelled (their git killed).
        shutdown_timeout=grace,
        # Seconds to send a request's headers, from connect or from the previous response.
        keepalive_timeout=parts.config.get_float("server.header_timeout"),
        # Request bodies are inflated only where git sends them gzipped, with bounds (gitd.http.rpc_body).
        auto_decompress=False,
    )
    await runner.setup()
    # Everything built so far lives as long as the daemon: leave it out of the garbage collector's
    # full collections, which hold the GIL (and so the event loop) for as long as they scan.
    gc.freeze()
    host, port = split_hostport(http, 8080)
    lane = parts.relay_lane(app[RATES])  # plugins' relayed routes (the spaces' apps), or None
    if lane is not None:
        app[DRAINS].append(lane.begin_stop)
    site = GuardedSite(runner, host, port, reuse_address=True, limiter=parts.connections, lane=lane)
    await site.start()
    listeners = app[LISTENERS]
    bound = runner.addresses[0]
    listeners["http"] = f"http://{_fmt_host(bound[0])}:{bound[1]}"
    info = parts.data.serve_info  # whole or absent for readers (scripts, supervisors, tests): renamed into place
    staged = info.with_name(info.name + ".tmp")
    staged.write_text(json.dumps({"pid": os.getpid(), **listeners}))
    os.replace(staged, info)
    log.info("gitd listening: %s (event loop: %s)", ", ".join(f"{k} {v}" for k, v in listeners.items()),
             type(loop).__module__.partition(".")[0])
    try:
        await stop.wait()
    finally:
        log.info("shutting down: work in flight has %gs to finish ([server] shutdown_grace)", grace)
        watchdog = ExitWatchdog(grace + EXIT_MARGIN)
        def grace_over() -> None:
            log.warning("shutdown grace of %gs is over: cancelling %d HTTP request(s) still running", grace,
                        cancel_in_flight(app))

        over = loop.call_later(grace, grace_over)
        with contextlib.suppress(FileNotFoundError):
            parts.data.serve_info.unlink()
        for begin_stop in app[DRAINS]:  # SSH drains alongside HTTP, within the same grace
            begin_stop(grace)
        await runner.cleanup()
        over.cancel()
        parts.close()
        restore_child_watcher()
        watchdog.disarm()
        log.info("stopped")


class ExitWatchdog:
    """The last resort of a bounded shutdown: if cleaning up is not over ``seconds`` after
    SIGTERM (a thread stuck in a system call, a database lock held elsewhere), kill the git
    children and exit, so a supervisor never has to SIGKILL the daemon mid-write."""

    def __init__(self, seconds: float):
        self._done = threading.Event()
        self.seconds = seconds
        threading.Thread(target=self._watch, name="gitd-exit-watchdog", daemon=True).start()

    def disarm(self) -> None:
        self._done.set()

    def _watch(self) -> None:
        if self._done.wait(self.seconds):
            return
        killed = kill_all()
        log.error("shutdown still not over %gs after SIGTERM: killed %d git process(es); exiting", self.seconds,
                  killed)
        logging.shutdown()
        os._exit(1)


def _fmt_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
