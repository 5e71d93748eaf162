"""The local runtime: each running endpoint is an engine process (``server.py``) on this host.

``start`` launches it under a supervising thread: the engine fetches its model from gitd,
loads it and opens its port, reporting each phase in a status file; the endpoint's status
follows (loading, running; failed with the engine's reason when the model cannot be served,
which is not retried; a crash is restarted with backoff up to ``max_restarts`` times). A
reaper scales endpoints idle for their sleep time to zero (``sleeping``); the next request
wakes them (``ensure_running``). Processes run in their own session, their environment built
from scratch (no daemon variables), their output kept in a bounded log.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from gitd.plugin_api import BoundedLog, free_port, limited_argv

from .settings import Settings
from .store import FAILED, LIVE, LOADING, PENDING, RUNNING, SLEEPING, STOPPED, WAKEABLE, Endpoint, Endpoints

log = logging.getLogger("gitd.plugins.inference")
FAILED_EXIT = 3  # server.py: the model cannot be served


class Unavailable(Exception):
    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class EngineRunner:
    def __init__(self, root: Path, settings: Settings, endpoints: Endpoints, hub_url: Callable[[], str],
                 token: Callable[[Endpoint], str | None]):
        self.root = root
        self.settings = settings
        self.endpoints = endpoints
        self.hub_url = hub_url  # the daemon's URL, for HF_ENDPOINT
        self.token = token  # the endpoint's read token, decrypted
        self.logs, self.cache = root / "logs", root / "hf"
        for d in (root, self.logs, self.cache):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._running: dict[int, Engine] = {}
        self._used: dict[int, float] = {}
        self._active: dict[int, int] = {}
        self._closing = threading.Event()
        self._reaper: threading.Thread | None = None

    def log(self, endpoint_id: int) -> BoundedLog:
        return BoundedLog(self.logs / f"{endpoint_id}.log", self.settings.max_log)

    # -- processes -----------------------------------------------------------------------------
    def start(self, endpoint: Endpoint) -> Engine:
        with self._lock:
            current = self._running.get(endpoint.id)
            if current is not None and current.alive():
                return current
            self.endpoints.set(endpoint.id, status=PENDING, reason=None, port=None, pid=None)
            engine = Engine(self, endpoint)
            self._running[endpoint.id] = engine
            self._used[endpoint.id] = time.monotonic()
            self._start_reaper()
        engine.start()
        return engine

    def stop(self, endpoint_id: int, status: str = STOPPED) -> None:
        with self._lock:
            engine = self._running.pop(endpoint_id, None)
        if engine is not None:
            engine.stop()
        row = self.endpoints.get(endpoint_id)
        if row is not None and (engine is not None or row.status in LIVE):
            self.endpoints.set(endpoint_id, status=status, port=None, pid=None)

    def forget(self, endpoint_id: int) -> None:
        self.stop(endpoint_id)
        self.log(endpoint_id).clear()
        (self.root / f"{endpoint_id}.status").unlink(missing_ok=True)

    def touch(self, endpoint_id: int) -> None:
        self._used[endpoint_id] = time.monotonic()

    @contextlib.contextmanager
    def serving(self, endpoint_id: int) -> Iterator[None]:
        """A request is being proxied: the endpoint does not sleep meanwhile."""
        with self._lock:
            self._active[endpoint_id] = self._active.get(endpoint_id, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._active[endpoint_id] -= 1
            self.touch(endpoint_id)

    def port(self, endpoint_id: int) -> int | None:
        """The engine's port when it is up now (no waiting, no database): the proxy's fast path."""
        engine = self._running.get(endpoint_id)
        if engine is not None and engine.port is not None and engine.alive():
            self._used[endpoint_id] = time.monotonic()
            return engine.port
        return None

    def ensure_running(self, endpoint_id: int, timeout: float | None = None) -> int:
        """The engine's port, waking a sleeping endpoint; Unavailable otherwise."""
        self.touch(endpoint_id)
        with self._lock:
            engine = self._running.get(endpoint_id)
        if engine is None:
            row = self.endpoints.get(endpoint_id)
            if row is None:
                raise Unavailable(STOPPED, "no such endpoint")
            if row.status not in WAKEABLE and row.status not in LIVE:
                raise Unavailable(row.status, row.reason or f"the endpoint is {row.status}; start it to use it")
            engine = self.start(row)
        if not engine.ready.wait(self.settings.start_timeout + 5 if timeout is None else timeout):
            raise Unavailable(LOADING, "the endpoint is loading its model; try again shortly")
        if engine.port is None:
            row = self.endpoints.get(endpoint_id)
            reason = (row.reason if row else None) or "the engine is not running"
            raise Unavailable(row.status if row else FAILED, reason)
        return engine.port

    def running(self) -> list[int]:
        with self._lock:
            return [eid for eid, engine in self._running.items() if engine.alive()]

    # -- idle endpoints and shutdown -----------------------------------------------------------
    def _start_reaper(self) -> None:
        if self._reaper is None or not self._reaper.is_alive():
            self._closing.clear()
            self._reaper = threading.Thread(target=self._reap, name="gitd-inference-reaper", daemon=True)
            self._reaper.start()

    def _reap(self) -> None:
        while not self._closing.wait(1.0):
            now = time.monotonic()
            with self._lock:
                running = list(self._running.items())
            for endpoint_id, engine in running:
                if engine.port is None or self._active.get(endpoint_id):
                    continue
                row = self.endpoints.get(endpoint_id)
                idle = self.settings.sleep_time if row is None or row.sleep_time is None else row.sleep_time
                if idle > 0 and now - self._used.get(endpoint_id, now) > idle:
                    log.info("endpoint %s idle for %.0fs: scaling to zero", endpoint_id, idle)
                    self.stop(endpoint_id, SLEEPING)

    def suspend_all(self) -> None:
        """The daemon starts: no engine runs yet, so endpoints that were up sleep until asked for."""
        for row in self.endpoints.all():
            if row.runtime == "local" and row.status in LIVE:
                self.endpoints.set(row.id, status=SLEEPING, port=None, pid=None)

    def shutdown(self) -> None:
        self._closing.set()
        with self._lock:
            ids = list(self._running)
        for endpoint_id in ids:
            self.stop(endpoint_id, SLEEPING)


class Engine:
    """One endpoint's engine process, kept running by its own thread."""

    def __init__(self, runner: EngineRunner, endpoint: Endpoint):
        self.runner = runner
        self.endpoint = endpoint
        self.ready = threading.Event()  # set once the engine answers on its port, or gave up
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.status_file = runner.root / f"{endpoint.id}.status"
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"gitd-engine-{endpoint.id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stopping.is_set()

    def stop(self, grace: float = 5.0) -> None:
        self._stopping.set()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._thread is not threading.current_thread():
            self._thread.join(grace + 5)

    def _argv(self, port: int) -> list[str]:
        s, e = self.runner.settings, self.endpoint
        python = s.python or sys.executable
        memory = int(e.resources.get("memory") or s.max_model_memory)
        argv = [python, "-m", "gitd_plugins.inference.server", "--model", e.repo, "--revision", e.commit_id,
                "--port", str(port), "--served-name", e.repo, "--max-memory", str(memory),
                "--device", str(e.resources.get("device") or s.device), "--threads", str(s.threads),
                "--concurrency", str(s.concurrency), "--status", str(self.status_file)]
        return limited_argv(argv, memory=int(s.address_space), cpu=0, nofile=4096, nproc=0)

    def _env(self) -> dict[str, str]:
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(self.runner.cache), "LANG": "C.UTF-8",
               "PYTHONUNBUFFERED": "1", "HF_ENDPOINT": self.runner.hub_url(), "HF_HOME": str(self.runner.cache),
               "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TOKENIZERS_PARALLELISM": "false",
               "TRANSFORMERS_VERBOSITY": "error"}
        # Where gitd's own modules are found when it runs from a source tree (tests, development).
        if os.environ.get("PYTHONPATH"):
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        token = self.runner.token(self.endpoint)
        if token:
            env["HF_TOKEN"] = token
        return env

    def _phase(self) -> dict:
        try:
            return json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return {}

    def _wait_port(self, proc: subprocess.Popen, port: int) -> str | None:
        """None once the engine accepts connections; else why it did not."""
        s, endpoints, eid = self.runner.settings, self.runner.endpoints, self.endpoint.id
        deadline = time.monotonic() + s.start_timeout
        seen = ""
        while not self._stopping.is_set():
            phase = self._phase().get("phase", "")
            if phase != seen and phase in ("fetching", "loading"):
                seen = phase
                endpoints.set(eid, status=LOADING, reason=None)
            if proc.poll() is not None:
                return None
            if phase == "ready":
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        return None
                except OSError:
                    pass
            if time.monotonic() > deadline:
                return f"the engine did not fetch, load and listen within {s.start_timeout:.0f}s"
            self._stopping.wait(0.05)
        return "stopped"

    def _run(self) -> None:
        runner, e = self.runner, self.endpoint
        endpoints, out = runner.endpoints, runner.log(e.id)
        crashes = 0
        try:
            while not self._stopping.is_set():
                port = free_port()
                started, wall = time.monotonic(), time.time()
                self.status_file.unlink(missing_ok=True)
                out.line(f"starting the {e.engine} engine for {e.repo} at {e.commit_id[:12]}")
                read, write = os.pipe()
                try:
                    self.proc = proc = subprocess.Popen(
                        self._argv(port), cwd=runner.root, env=self._env(), stdin=subprocess.DEVNULL, stdout=write,
                        stderr=write, start_new_session=True, close_fds=True)
                except OSError as exc:
                    os.close(read)
                    endpoints.set(e.id, status=FAILED, reason=f"the engine cannot start: {exc}")
                    return
                finally:
                    os.close(write)
                threading.Thread(target=out.pump, args=(read,), name=f"gitd-engine-log-{e.id}", daemon=True).start()
                endpoints.set(e.id, status=LOADING, pid=proc.pid, port=None)
                reason = self._wait_port(proc, port)
                if reason is None and proc.poll() is None:
                    self.port = port
                    runner.touch(e.id)
                    phase = self._phase()
                    timings = {k: phase[k] for k in ("fetch_s", "load_s") if k in phase}
                    timings["start_s"] = round(time.time() - wall, 3)
                    endpoints.set(e.id, status=RUNNING, reason=None, port=port, timings=timings)
                    self.ready.set()
                    code = proc.wait()
                else:
                    self.stop_process()
                    code = proc.wait()
                self.port = None
                if self._stopping.is_set():
                    return
                phase = self._phase()
                if code == FAILED_EXIT and phase.get("phase") == "failed":
                    out.line(f"failed: {phase.get('reason')}")
                    endpoints.set(e.id, status=FAILED, reason=phase.get("reason"), port=None, pid=None)
                    return
                reason = reason or _exit_reason(code)
                out.line(reason)
                if time.monotonic() - started > 60:
                    crashes = 0
                crashes += 1
                tail = out.tail(400).decode("utf-8", "replace").strip().splitlines()
                detail = f"{reason}; last output: {tail[-2] if len(tail) > 1 else ''}"[:1000]
                if crashes > runner.settings.max_restarts:
                    endpoints.set(e.id, status=FAILED, port=None, pid=None,
                                  reason=f"{detail} (gave up after {crashes - 1} restarts)")
                    return
                endpoints.set(e.id, status=LOADING, port=None, pid=None, reason=detail)
                self.ready.set()
                self._stopping.wait(min(60.0, 2.0 ** (crashes - 1)))
                self.ready.clear()
        finally:
            self.port = None
            self.ready.set()
            with runner._lock:
                if runner._running.get(e.id) is self and not self._stopping.is_set():
                    runner._running.pop(e.id, None)

    def stop_process(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"the engine was killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")
    return f"the engine exited with status {code}"
