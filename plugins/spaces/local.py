"""The local runtime: spaces run as supervised processes on the daemon's host.

``deploy`` checks the pushed commit out into ``builds/ID/COMMIT`` (static spaces are
then served from there by the proxy), builds or reuses the virtualenv its
requirements.txt names (``venvs/HASH``, one per distinct set of requirements), and
starts the app under resource limits. A ``Supervised`` thread per running space waits
for the app's port, then for its exit, and restarts a crashed app with exponential
backoff until ``max_restarts`` crashes in a row. A reaper thread puts spaces idle for
their sleep time to sleep; the next request wakes them (``ensure_running``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pwd
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from gitd.plugin_api import (
    BoundedLog,
    LimitExceeded,
    NotFoundInTree,
    RepoInfo,
    RepoView,
    exit_reason,
    free_port,
    spawn,
    stop_group,
)
from gitd.plugin_api import limited_argv as limited

from .card import MAX_CARD, CardError, SpaceCard, parse_card
from .checkout import checkout
from .settings import Settings
from .state import (
    APP_STARTING,
    BUILD_ERROR,
    BUILDING,
    CONFIG_ERROR,
    NO_APP_FILE,
    RUNNING,
    RUNTIME_ERROR,
    SLEEPING,
    STOPPED,
    WAKEABLE,
    SpaceRow,
    SpaceStates,
)

log = logging.getLogger("gitd.plugins.spaces")

NEEDS_KUBERNETES = ('this docker space needs the kubernetes runtime (plugins.spaces.runtime = "kubernetes"); '
                    "the local runtime runs gradio, streamlit and static spaces")
STABLE_AFTER = 60.0  # an app that ran this long before crashing starts a new count of crashes


class SpaceUnavailable(Exception):
    def __init__(self, stage: str, message: str):
        super().__init__(message)
        self.stage = stage
        self.message = message


class LocalRunner:
    def __init__(self, root: Path, settings: Settings, states: SpaceStates):
        self.root = root
        self.settings = settings
        self.states = states
        self.builds, self.venvs, self.logs = root / "builds", root / "venvs", root / "logs"
        self.homes = root / "homes"
        # Apps running as another user (run_as) read their builds and virtualenvs; logs stay the daemon's.
        shared = 0o755 if settings.run_as else 0o700
        root.mkdir(mode=shared, parents=True, exist_ok=True)
        for d, mode in ((self.builds, shared), (self.venvs, shared), (self.homes, shared), (self.logs, 0o700)):
            d.mkdir(mode=mode, exist_ok=True)
            d.chmod(mode)
        self._lock = threading.RLock()
        self._running: dict[int, Supervised] = {}
        self._used: dict[int, float] = {}
        self._active: dict[int, int] = {}  # proxied requests and WebSockets in progress
        self._deploying: dict[int, threading.Lock] = {}
        self._venv_locks: dict[str, threading.Lock] = {}
        self._closing = threading.Event()
        self._reaper: threading.Thread | None = None
        # The space's secrets and variables (SpaceEnv.environment), read at every (re)start.
        self.environment: Callable[[int], dict[str, str]] = lambda repo_id: {}

    # -- logs ----------------------------------------------------------------------------------
    def log(self, repo_id: int, kind: str) -> BoundedLog:
        return BoundedLog(self.logs / f"{repo_id}.{kind}.log", self.settings.max_log)

    # -- deploying a commit --------------------------------------------------------------------
    def deploy(self, repo: RepoInfo, view: RepoView, commit: str) -> SpaceRow:
        """Build ``commit`` and (re)start the space on it. Runs on a job thread."""
        with self._lock:
            guard = self._deploying.setdefault(repo.id, threading.Lock())
        with guard:
            return self._deploy(repo, view, commit)

    def _deploy(self, repo: RepoInfo, view: RepoView, commit: str) -> SpaceRow:
        name, states = repo.full_name, self.states
        build = self.log(repo.id, "build")
        build.clear()
        build.line(f"building {name} at {commit}")
        states.set(repo.id, name, stage=BUILDING, commit_id=commit, error=None, restarts=0, runtime="local")
        try:
            card = parse_card(_read_or_none(view, commit, "README.md"))
        except CardError as exc:
            return self._fail(repo, CONFIG_ERROR, str(exc), build)
        if card.sdk == "docker":
            return self._fail(repo, CONFIG_ERROR, NEEDS_KUBERNETES, build, sdk=card.sdk)
        if view.entry(commit, card.app_file) is None:
            return self._fail(repo, NO_APP_FILE, f"the app file {card.app_file} is not in the repository", build,
                              sdk=card.sdk)
        target = checkout(view, commit, self.builds / str(repo.id) / commit)
        python = self.settings.interpreter or sys.executable
        if card.sdk != "static" and self.settings.python == "venv":
            try:
                python = self._venv(card, target, build)
            except SpaceUnavailable as exc:
                return self._fail(repo, BUILD_ERROR, exc.message, build, sdk=card.sdk)
        if view.head() not in (None, commit):
            build.line("a newer commit was pushed meanwhile; it is built instead")
            return states.get(repo.id) or states.set(repo.id, name, stage=BUILDING)
        self.stop(repo.id, STOPPED)
        fields = {"sdk": card.sdk, "app_file": card.app_file, "build_dir": str(target), "python": python,
                  "error": None, "restarts": 0, "commit_id": commit, "port": None, "pid": None}
        build.line(f"built {commit}")
        self._prune(repo.id, keep=target)
        if card.sdk == "static":
            return states.set(repo.id, name, stage=RUNNING, **fields)
        row = states.set(repo.id, name, stage=APP_STARTING, **fields)
        self.start(row)
        return row

    def _fail(self, repo: RepoInfo, stage: str, message: str, build: BoundedLog, **fields: object) -> SpaceRow:
        build.line(message)
        self.stop(repo.id, STOPPED)
        return self.states.set(repo.id, repo.full_name, stage=stage, error=message, pid=None, port=None, **fields)

    def _venv(self, card: SpaceCard, build_dir: Path, build: BoundedLog) -> str:
        requirements = build_dir / "requirements.txt"
        reqs = requirements.read_bytes() if requirements.is_file() else b""
        sdk = card.sdk + (f"=={card.sdk_version}" if card.sdk_version else "")
        pip_args = list(self.settings.pip_args or [])
        key = hashlib.sha256("\0".join([sys.version, sdk, *pip_args]).encode() + b"\0" + reqs).hexdigest()[:24]
        venv = self.venvs / key
        python = venv / "bin" / "python"
        with self._lock:
            lock = self._venv_locks.setdefault(key, threading.Lock())
        with lock:
            if (venv / ".ready").exists():
                build.line(f"virtualenv {key} is cached")
                return str(python)
            shutil.rmtree(venv, ignore_errors=True)
            build.line(f"creating virtualenv {key}")
            cmds = [[sys.executable, "-m", "venv", "--without-pip", str(venv)],
                    [sys.executable, "-m", "pip", "--python", str(python), "install", "--disable-pip-version-check",
                     "--no-input", *pip_args, sdk, *(["-r", str(requirements)] if reqs else [])]]
            for cmd in cmds:
                try:
                    with open(build.path, "ab") as out:
                        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                              timeout=self.settings.build_timeout, cwd=build_dir, umask=0o022)
                except subprocess.TimeoutExpired:
                    shutil.rmtree(venv, ignore_errors=True)
                    raise SpaceUnavailable(BUILD_ERROR, "installing the requirements took more than "
                                                        f"{self.settings.build_timeout:.0f}s") from None
                if done.returncode != 0:
                    shutil.rmtree(venv, ignore_errors=True)
                    tail = build.tail(600).decode("utf-8", "replace").strip().splitlines()[-3:]
                    raise SpaceUnavailable(BUILD_ERROR, "the requirements failed to install: " + " | ".join(tail))
            (venv / ".ready").touch()
            return str(python)

    def _prune(self, repo_id: int, keep: Path) -> None:
        for old in (self.builds / str(repo_id)).iterdir():
            if old != keep:
                shutil.rmtree(old, ignore_errors=True)

    def forget(self, repo_id: int) -> None:
        """The space's repository was deleted: stop it and remove its files."""
        self.stop(repo_id, STOPPED)
        shutil.rmtree(self.builds / str(repo_id), ignore_errors=True)
        for kind in ("build", "run"):
            self.log(repo_id, kind).clear()
        self.states.delete(repo_id)

    # -- processes -----------------------------------------------------------------------------
    def start(self, row: SpaceRow) -> Supervised:
        with self._lock:
            current = self._running.get(row.repo_id)
            if current is not None and current.alive():
                return current
            sup = Supervised(self, row)
            self._running[row.repo_id] = sup
            self._used[row.repo_id] = time.monotonic()
            self._start_reaper()
        sup.start()
        return sup

    def stop(self, repo_id: int, stage: str) -> None:
        with self._lock:
            sup = self._running.pop(repo_id, None)
        if sup is not None:
            sup.stop()
        row = self.states.get(repo_id)
        live = (RUNNING, APP_STARTING, RUNTIME_ERROR, SLEEPING)
        if (row is not None and (sup is not None or row.stage in live)
                and not (row.sdk == "static" and stage == SLEEPING)):
            self.states.set(repo_id, row.name, stage=stage, pid=None, port=None)

    def restart(self, repo_id: int) -> SpaceRow | None:
        row = self.states.get(repo_id)
        if row is None or row.build_dir is None or not Path(row.build_dir).is_dir():
            return None
        self.stop(repo_id, STOPPED)
        if row.sdk == "static":
            return self.states.set(repo_id, row.name, stage=RUNNING, error=None)
        row = self.states.set(repo_id, row.name, stage=APP_STARTING, error=None, restarts=0)
        self.start(row)
        return row

    def touch(self, repo_id: int) -> None:
        self._used[repo_id] = time.monotonic()

    @contextlib.contextmanager
    def serving(self, repo_id: int) -> Iterator[None]:
        """A request or WebSocket is being proxied: the space does not sleep meanwhile."""
        with self._lock:
            self._active[repo_id] = self._active.get(repo_id, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._active[repo_id] -= 1
            self.touch(repo_id)

    def ensure_running(self, repo_id: int, timeout: float | None = None) -> int:
        """The port of the space's app, waking it when it sleeps; SpaceUnavailable otherwise."""
        self.touch(repo_id)
        with self._lock:
            sup = self._running.get(repo_id)
        if sup is None:
            row = self.states.get(repo_id)
            if row is None:
                raise SpaceUnavailable(STOPPED, "this space has not been built yet")
            if row.stage not in WAKEABLE and row.stage not in (RUNNING, APP_STARTING):
                raise SpaceUnavailable(row.stage, row.error or f"the space is {row.stage.lower()}")
            if row.build_dir is None or not Path(row.build_dir).is_dir():
                raise SpaceUnavailable(row.stage, "the space has no build; push to it or restart it")
            sup = self.start(self.states.set(repo_id, row.name, stage=APP_STARTING))
        if not sup.ready.wait(self.settings.start_timeout + 5 if timeout is None else timeout):
            raise SpaceUnavailable(APP_STARTING, "the space is starting; try again shortly")
        if sup.port is None:
            row = self.states.get(repo_id)
            stage = row.stage if row else RUNTIME_ERROR
            raise SpaceUnavailable(stage, (row.error if row else None) or "the space is not running")
        return sup.port

    def running(self) -> list[int]:
        with self._lock:
            return [rid for rid, sup in self._running.items() if sup.alive()]

    # -- idle spaces and shutdown --------------------------------------------------------------
    def _start_reaper(self) -> None:
        if self._reaper is None or not self._reaper.is_alive():
            self._closing.clear()
            self._reaper = threading.Thread(target=self._reap, name="gitd-spaces-reaper", daemon=True)
            self._reaper.start()

    def _reap(self) -> None:
        while not self._closing.wait(1.0):
            now = time.monotonic()
            with self._lock:
                running = list(self._running)
            for repo_id in running:
                sup = self._running.get(repo_id)
                if sup is None or sup.port is None or self._active.get(repo_id):
                    continue  # still starting (or crashed, waiting to restart), or serving a request
                row = self.states.get(repo_id)
                idle = self.settings.sleep_time if row is None or row.sleep_time is None else row.sleep_time
                if idle > 0 and now - self._used.get(repo_id, now) > idle:
                    log.info("space %s idle for %.0fs: sleeping", row.name if row else repo_id, idle)
                    self.stop(repo_id, SLEEPING)

    def suspend_all(self) -> None:
        """The daemon starts: no app runs yet, so spaces that were up sleep until asked for."""
        for row in self.states.all():
            if row.runtime == "local" and row.stage in (RUNNING, APP_STARTING) and row.sdk != "static":
                self.states.set(row.repo_id, row.name, stage=SLEEPING, pid=None, port=None)

    def shutdown(self) -> None:
        self._closing.set()
        with self._lock:
            ids = list(self._running)
        for repo_id in ids:
            self.stop(repo_id, SLEEPING)


class Supervised:
    """One space's app process, kept running by its own thread."""

    def __init__(self, runner: LocalRunner, row: SpaceRow):
        self.runner = runner
        self.row = row
        self.ready = threading.Event()  # set once the app answered on its port, or gave up
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"gitd-space-{row.repo_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stopping.is_set()

    def stop(self, grace: float = 5.0) -> None:
        self._stopping.set()
        self._kill(grace)
        if self._thread is not threading.current_thread():
            self._thread.join(grace + 5)

    def _kill(self, grace: float) -> None:
        proc = self.proc
        if proc is not None:
            stop_group(proc, grace)

    def _command(self, port: int) -> list[str]:
        row, python = self.row, self.row.python or sys.executable
        if row.sdk == "streamlit":
            return [python, "-m", "streamlit", "run", row.app_file or "app.py", "--server.port", str(port),
                    "--server.address", "127.0.0.1", "--server.headless", "true",
                    "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
        return [python, row.app_file or "app.py"]

    def _home(self) -> str:
        """A writable home for the app: its build directory, or its own directory when it runs as
        another user (the build is the daemon's)."""
        run_as = self.runner.settings.run_as
        if not run_as:
            return str(self.row.build_dir)
        home = self.runner.homes / str(self.row.repo_id)
        home.mkdir(mode=0o700, exist_ok=True)
        user = pwd.getpwnam(run_as)
        os.chown(home, user.pw_uid, user.pw_gid)
        return str(home)

    def _env(self, port: int) -> dict[str, str]:
        row = self.row
        bindir = os.path.dirname(row.python or sys.executable)
        return {**self.runner.environment(row.repo_id),  # the runtime's own names below win
                "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin", "HOME": self._home(), "LANG": "C.UTF-8",
                "PYTHONUNBUFFERED": "1", "PORT": str(port), "SPACE_ID": row.name, "SYSTEM": "spaces",
                "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
                "GRADIO_ROOT_PATH": f"/spaces/{row.name}/app", "GRADIO_ANALYTICS_ENABLED": "False",
                "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false", "HF_HUB_OFFLINE": "1"}

    def _spawn(self, port: int) -> subprocess.Popen:
        s = self.runner.settings
        argv = limited(self._command(port), memory=int(s.memory), cpu=int(s.cpu_time), nofile=s.open_files,
                       nproc=s.processes)
        return spawn(argv, cwd=str(self.row.build_dir), env=self._env(port),
                     log=self.runner.log(self.row.repo_id, "run"), user=s.run_as or None,
                     name=f"gitd-space-log-{self.row.repo_id}")

    def _wait_port(self, proc: subprocess.Popen, port: int) -> str | None:
        """None once the app accepts connections; else why it did not."""
        deadline = time.monotonic() + self.runner.settings.start_timeout
        while not self._stopping.is_set():
            if proc.poll() is not None:
                return None
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return None
            except OSError:
                pass
            if time.monotonic() > deadline:
                return f"the app did not open its port within {self.runner.settings.start_timeout:.0f}s"
            self._stopping.wait(0.1)
        return "stopped"

    def _run(self) -> None:
        runner, row, states = self.runner, self.row, self.runner.states
        out = runner.log(row.repo_id, "run")
        crashes = 0
        try:
            while not self._stopping.is_set():
                port = free_port()
                started = time.monotonic()
                out.line(f"starting {row.sdk} app {row.app_file} at {(row.commit_id or '')[:12]}")
                try:
                    self.proc = proc = self._spawn(port)
                except OSError as exc:
                    states.set(row.repo_id, row.name, stage=RUNTIME_ERROR, error=f"the app cannot start: {exc}")
                    return
                states.set(row.repo_id, row.name, stage=APP_STARTING, pid=proc.pid, port=port)
                reason = self._wait_port(proc, port)
                if reason is None and proc.poll() is None:
                    self.port = port
                    runner.touch(row.repo_id)  # idle time counts from when it could first answer
                    states.set(row.repo_id, row.name, stage=RUNNING, error=None)
                    self.ready.set()
                    code = proc.wait()
                else:
                    self._kill(1.0)
                    code = proc.wait()
                self.port = None
                if self._stopping.is_set():
                    return
                reason = reason or exit_reason(code, "the app")
                out.line(reason)
                if time.monotonic() - started > STABLE_AFTER:
                    crashes = 0
                crashes += 1
                tail = out.tail(400).decode("utf-8", "replace").strip().splitlines()
                detail = f"{reason}; last output: {tail[-2] if len(tail) > 1 else ''}"[:1000]
                if crashes > runner.settings.max_restarts:
                    states.set(row.repo_id, row.name, stage=RUNTIME_ERROR, pid=None, port=None,
                               error=f"{detail} (gave up after {crashes - 1} restarts)")
                    return
                delay = min(60.0, runner.settings.backoff * 2 ** (crashes - 1))
                states.set(row.repo_id, row.name, stage=RUNTIME_ERROR, pid=None, port=None, error=detail,
                           restarts=crashes)
                self.ready.set()  # whoever waits hears of the crash; a later request waits again
                self._stopping.wait(delay)
                self.ready.clear()
        finally:
            self.port = None
            self.ready.set()
            with runner._lock:
                if runner._running.get(row.repo_id) is self and not self._stopping.is_set():
                    runner._running.pop(row.repo_id, None)


def _read_or_none(view: RepoView, commit: str, path: str) -> bytes | None:
    try:
        return view.read(commit, path, max_size=MAX_CARD)
    except NotFoundInTree:
        return None
    except LimitExceeded:  # a huge README: its front matter is at the start
        return view.read_range(commit, path, 0, MAX_CARD)
