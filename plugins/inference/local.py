"""The local runtime: each running endpoint is an engine process (``server.py``) on this host.

``start`` launches it as a ``gitd.Supervised`` process (the machinery the spaces plugin's
apps run on): the engine fetches its model from gitd, loads it and opens its port,
reporting each phase in a status file; the endpoint's status
follows (loading, running; failed with the engine's reason when the model cannot be served,
which is not retried; a crash is restarted with backoff up to ``max_restarts`` times). The
runner's ``gitd.Supervisor`` scales endpoints idle for their sleep time to zero
(``sleeping``); the next request wakes them (``ensure_running``). Processes run in their own
session, their environment built from scratch (no daemon variables), their output kept in a
bounded log.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from gitd.plugin_api import BoundedLog, Supervised, Supervisor, limited_argv

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
        # Running engines, their last use, requests in progress, the idle reaper (scale to zero).
        self.procs = Supervisor("inference", self._idle_time, self._sleep)
        self._lock = threading.Lock()

    def log(self, endpoint_id: int) -> BoundedLog:
        return BoundedLog(self.logs / f"{endpoint_id}.log", self.settings.max_log)

    # -- processes -----------------------------------------------------------------------------
    def start(self, endpoint: Endpoint) -> Supervised:
        with self._lock:
            current = self.procs.get(endpoint.id)
            if current is not None and current.alive():
                return current
            self.endpoints.set(endpoint.id, status=PENDING, reason=None, port=None, pid=None)
            return self.procs.start(endpoint.id, lambda: Engine(self, endpoint))

    def stop(self, endpoint_id: int, status: str = STOPPED) -> None:
        engine = self.procs.pop(endpoint_id)
        if engine is not None:
            engine.stop()
        row = self.endpoints.get(endpoint_id)
        if row is not None and (engine is not None or row.status in LIVE):
            self.endpoints.set(endpoint_id, status=status, port=None, pid=None)

    def forget(self, endpoint_id: int) -> None:
        self.stop(endpoint_id)
        self.log(endpoint_id).clear()
        (self.root / f"{endpoint_id}.status").unlink(missing_ok=True)

    def serving(self, endpoint_id: int) -> contextlib.AbstractContextManager[None]:
        """A request is being proxied: the endpoint does not sleep meanwhile."""
        return self.procs.serving(endpoint_id)

    def port(self, endpoint_id: int) -> int | None:
        """The engine's port when it is up now (no waiting, no database): the proxy's fast path."""
        return self.procs.port(endpoint_id)

    def key(self, endpoint_id: int) -> str:
        """The bearer key the engine of ``endpoint_id`` wants (its proxy's alone)."""
        engine = self.procs.get(endpoint_id)
        return engine.key if isinstance(engine, Engine) else ""

    def ensure_running(self, endpoint_id: int, timeout: float | None = None) -> int:
        """The engine's port, waking a sleeping endpoint; Unavailable otherwise."""
        self.procs.touch(endpoint_id)
        engine = self.procs.get(endpoint_id)
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
        return self.procs.running()

    # -- idle endpoints and shutdown -----------------------------------------------------------
    def _idle_time(self, endpoint_id: int) -> float:
        row = self.endpoints.get(endpoint_id)
        return self.settings.sleep_time if row is None or row.sleep_time is None else row.sleep_time

    def _sleep(self, endpoint_id: int) -> None:
        log.info("endpoint %s idle for %.0fs: scaling to zero", endpoint_id, self._idle_time(endpoint_id))
        self.stop(endpoint_id, SLEEPING)

    def suspend_all(self) -> None:
        """The daemon starts: no engine runs yet, so endpoints that were up sleep until asked for."""
        for row in self.endpoints.all():
            if row.runtime == "local" and row.status in LIVE:
                self.endpoints.set(row.id, status=SLEEPING, port=None, pid=None)

    def shutdown(self) -> None:
        self.procs.close()
        for endpoint_id in self.procs.ids():
            self.stop(endpoint_id, SLEEPING)


class Engine(Supervised):
    """One endpoint's engine process (``gitd.Supervised``, as the spaces plugin's apps): it
    reports its phases in a status file; a model it refuses is not restarted."""

    what = "engine"
    not_ready = "did not fetch, load and answer"

    def __init__(self, runner: EngineRunner, endpoint: Endpoint):
        s = runner.settings
        super().__init__(endpoint.id, runner.log(endpoint.id), start_timeout=s.start_timeout,
                         max_restarts=s.max_restarts, backoff=1.0, supervisor=runner.procs)
        self.runner = runner
        self.endpoint = endpoint
        self.status_file = runner.root / f"{endpoint.id}.status"
        self.key = secrets.token_urlsafe(24)  # what the proxy shows the engine (nobody else has it)
        self._phase_seen = ""
        self._started_at = 0.0

    def describe(self) -> str:
        e = self.endpoint
        return f"starting the {e.engine} engine for {e.repo} at {e.commit_id[:12]}"

    def argv(self, port: int) -> list[str]:
        s, e = self.runner.settings, self.endpoint
        python = s.python or sys.executable
        memory = int(e.resources.get("memory") or s.max_model_memory)
        self.status_file.unlink(missing_ok=True)
        argv = [python, "-m", "gitd_plugins.inference.server", "--model", e.repo, "--revision", e.commit_id,
                "--port", str(port), "--served-name", e.repo, "--max-memory", str(memory),
                "--device", str(e.resources.get("device") or s.device), "--threads", str(s.threads),
                "--concurrency", str(s.concurrency), "--status", str(self.status_file)]
        return limited_argv(argv, memory=int(s.address_space), cpu=0, nofile=4096, nproc=0)

    def cwd(self) -> str | None:
        return str(self.runner.root)

    def env(self, port: int) -> dict[str, str]:
        # Never empty: huggingface_hub would fall back to the internet. server.py refuses to run
        # without it (the endpoint fails, saying to set plugins.inference.hub_url).
        cache = str(self.runner.cache)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": cache, "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1",
               "HF_ENDPOINT": self.runner.hub_url(), "HF_HOME": cache, "HF_HUB_DISABLE_TELEMETRY": "1",
               "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TOKENIZERS_PARALLELISM": "false",
               "TRANSFORMERS_VERBOSITY": "error"}
        # Where gitd's own modules are found when it runs from a source tree (tests, development).
        if os.environ.get("PYTHONPATH"):
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        token = self.runner.token(self.endpoint)
        if token:
            env["HF_TOKEN"] = token
        env["GITD_ENGINE_KEY"] = self.key
        return env

    def _phase(self) -> dict:
        try:
            return json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return {}

    def probe(self, proc: subprocess.Popen, port: int) -> bool:
        phase = self._phase().get("phase", "")
        if phase != self._phase_seen and phase in ("fetching", "loading"):
            self._phase_seen = phase
            self.runner.endpoints.set(self.endpoint.id, status=LOADING, reason=None)
        return phase == "ready" and super().probe(proc, port)

    # -- what happened: the endpoint's status --------------------------------------------------
    def _set(self, **fields: object) -> None:
        self.runner.endpoints.set(self.endpoint.id, **fields)

    def spawn_failed(self, error: OSError) -> None:
        self._set(status=FAILED, reason=f"the engine cannot start: {error}")

    def starting(self, proc: subprocess.Popen, port: int) -> None:
        self._started_at, self._phase_seen = time.time(), ""
        self._set(status=LOADING, pid=proc.pid, port=None)

    def became_ready(self, port: int) -> None:
        phase = self._phase()
        timings = {k: phase[k] for k in ("fetch_s", "load_s") if k in phase}
        timings["start_s"] = round(time.time() - self._started_at, 3)
        self._set(status=RUNNING, reason=None, port=port, timings=timings)

    def exited(self, code: int) -> bool:
        phase = self._phase()
        if code == FAILED_EXIT and phase.get("phase") == "failed":  # the model cannot be served: no retry
            self.output.line(f"failed: {phase.get('reason')}")
            self._set(status=FAILED, reason=phase.get("reason"), port=None, pid=None)
            return False
        return True

    def crashed(self, detail: str, crashes: int) -> None:
        self._set(status=LOADING, port=None, pid=None, reason=detail)

    def gave_up(self, detail: str, crashes: int) -> None:
        self._set(status=FAILED, port=None, pid=None, reason=detail)
