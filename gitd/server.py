"""``gitd serve``: the daemon. One event loop runs every listener and the job workers.

Resources are set up in the HTTP app's ``cleanup_ctx`` (hook socket, job workers,
and the other transports) and torn down in reverse order on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator

from aiohttp import web

from gitd.config import split_hostport
from gitd.git.runner import install_child_watcher
from gitd.hooks.api import HookAPI, prepare_hook_endpoint
from gitd.http.app import SERVICES, build_app
from gitd.http.listener import GuardedSite
from gitd.jobs.workers import JobWorkers
from gitd.lfs.storage.s3 import S3Storage
from gitd.limits.connections import ConnectionLimiter, automatic_cap, raise_descriptor_limit
from gitd.looplag import LoopLagMonitor
from gitd.services import Services
from gitd.ssh.commands import SSHCommands, lfs_http_base
from gitd.ssh.keys import SSHKeys
from gitd.ssh.lfs_service_backend import lfs_service_backends
from gitd.ssh.server import SSHTransport

log = logging.getLogger("gitd.server")

LISTENERS = web.AppKey("listeners", dict)
CONNECTIONS = web.AppKey("connections", ConnectionLimiter)


def connection_limiter(services: Services) -> ConnectionLimiter:
    """The connection limits every listener shares ([server] max_connections: 0 sizes it from
    the descriptor limit, raised to its hard limit first)."""
    config = services.config
    total = config.get_int("server.max_connections")
    descriptors = raise_descriptor_limit()
    if total <= 0:
        total = automatic_cap(descriptors, config.get_int("git.max_processes"))
    return ConnectionLimiter(total, config.get_int("server.max_connections_per_address"),
                             refused=services.metrics.connections_refused)


async def loop_lag_ctx(app: web.Application) -> AsyncIterator[None]:
    monitor = LoopLagMonitor(app[SERVICES].metrics)
    monitor.start()
    yield
    await monitor.stop()


async def hook_socket_ctx(app: web.Application) -> AsyncIterator[None]:
    """The internal hook API on a Unix socket only the daemon's user can use."""
    services = app[SERVICES]
    path = services.data.hook_socket
    api = HookAPI(services.sessions, services.chain, services.repos, lfs_missing=services.lfs.missing)
    server = api.server()
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


async def job_workers_ctx(app: web.Application) -> AsyncIterator[None]:
    services = app[SERVICES]
    workers = JobWorkers(services.jobs, services.chain.run_job,
                         workers=services.config.get_int("jobs.workers"),
                         poll_interval=services.config.get_float("jobs.poll_interval"),
                         timeout=services.config.get_float("jobs.timeout"),
                         start_delay=services.config.get_float("jobs.start_delay"))
    await workers.start()
    yield
    await workers.stop()


def ssh_transport(services: Services, listeners: dict[str, str],
                  connections: ConnectionLimiter | None = None) -> SSHTransport:
    config = services.config
    public_url = config.get_str("server.public_url")

    def http_base(local_host: str | None) -> str:
        # The HTTP listener is bound after this resource starts: read it when needed.
        return lfs_http_base(public_url, listeners.get("http", ""), local_host)

    keys = SSHKeys(services.accounts)
    lfs_backend = lfs_service_backends(services.lfs, services.metrics) if config.get_bool("ssh.lfs_transfer") else None
    commands = SSHCommands(services.repos, services.serve, services.auth, keys, http_base=http_base,
                           token_ttl=config.get_int("auth.signed_token_ttl"), lfs_backend=lfs_backend)
    return SSHTransport(commands, keys, services.data.ssh_host_key,
                        login_timeout=config.get_float("ssh.login_timeout"),
                        ciphers=[str(c) for c in config.get_list("ssh.ciphers")],
                        macs=[str(m) for m in config.get_list("ssh.macs")], connections=connections)


async def ssh_server_ctx(app: web.Application) -> AsyncIterator[None]:
    """The SSH transport, unless ``server.ssh`` is empty."""
    services = app[SERVICES]
    address = services.config.get_str("server.ssh").strip()
    if not address:
        yield
        return
    transport = ssh_transport(services, app[LISTENERS], app[CONNECTIONS])
    host, port = split_hostport(address, 2222)
    bound_host, bound_port = await transport.start(host, port)
    app[LISTENERS]["ssh"] = f"{_fmt_host(bound_host)}:{bound_port}"
    try:
        yield
    finally:
        await transport.stop()


async def lfs_storage_ctx(app: web.Application) -> AsyncIterator[None]:
    """Make sure the LFS bucket exists (S3); release the storage's clients and threads at the end."""
    storage = app[SERVICES].lfs.storage
    if isinstance(storage, S3Storage):
        try:
            await storage.ensure_bucket()
        except Exception as exc:  # serve git anyway; LFS requests will report the storage error
            log.error("LFS storage: cannot reach bucket %s: %s", storage.bucket, exc)
    yield
    await app[SERVICES].lfs.close()


def make_app(services: Services) -> web.Application:
    app = build_app(services)
    app[LISTENERS] = {}
    app[CONNECTIONS] = connections = connection_limiter(services)
    slots = services.git.slots
    services.metrics.add_gauge("gitd_git_slots_in_use", "git process slots in use.", lambda: slots.state().used)
    services.metrics.add_gauge("gitd_git_slots_waiting", "git requests waiting for a slot.",
                               lambda: slots.state().waiting)
    services.metrics.add_gauge("gitd_connections_open", "Client connections open (HTTP and SSH).",
                               lambda: connections.open)
    app.cleanup_ctx.append(loop_lag_ctx)
    app.cleanup_ctx.append(lfs_storage_ctx)
    app.cleanup_ctx.append(hook_socket_ctx)
    app.cleanup_ctx.append(job_workers_ctx)
    app.cleanup_ctx.append(ssh_server_ctx)
    return app


async def serve(services: Services, *, http: str, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    install_child_watcher(loop)
    if threading.current_thread() is threading.main_thread():  # tests may run it in a thread
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    app = make_app(services)
    runner = web.AppRunner(
        app,
        access_log=logging.getLogger("gitd.access") if services.config.get_bool("server.access_log") else None,
        handle_signals=False,
        shutdown_timeout=30.0,
        # Seconds to send a request's headers, from connect or from the previous response.
        keepalive_timeout=services.config.get_float("server.header_timeout"),
        # Request bodies are inflated only where git sends them gzipped, with bounds (gitd.http.rpc_body).
        auto_decompress=False,
    )
    await runner.setup()
    host, port = split_hostport(http, 8080)
    site = GuardedSite(runner, host, port, reuse_address=True, limiter=app[CONNECTIONS])
    await site.start()
    listeners = app[LISTENERS]
    bound = runner.addresses[0]
    listeners["http"] = f"http://{_fmt_host(bound[0])}:{bound[1]}"
    services.data.serve_info.write_text(json.dumps({"pid": os.getpid(), **listeners}))
    log.info("gitd listening: %s (event loop: %s)", ", ".join(f"{k} {v}" for k, v in listeners.items()),
             type(loop).__module__.partition(".")[0])
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        with contextlib.suppress(FileNotFoundError):
            services.data.serve_info.unlink()
        await runner.cleanup()
        services.close()
        log.info("stopped")


def _fmt_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
