"""The local runtime: spaces run as supervised processes on the daemon's host.

``deploy`` checks the pushed commit out into ``builds/ID/COMMIT`` (static spaces are
then served from there by the proxy), builds or reuses the virtualenv its
requirements.txt names (``venvs/HASH``, one per distinct set of requirements), and
starts the app under resource limits. An ``AppProcess`` (``gitd.Supervised``, shared
with the inference plugin's engines) per running space waits for the app's port, then for
its exit, and restarts a crashed app with exponential backoff until ``max_restarts`` crashes
in a row. The runner's ``gitd.Supervisor`` puts spaces idle for their sleep time to sleep;
the next request wakes them (``ensure_running``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pwd
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from gitd.plugin_api import BoundedLog, LimitExceeded, NotFoundInTree, RepoInfo, RepoView, Supervised, Supervisor
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
        # Running apps, their last use, proxied requests and WebSockets in progress, the idle reaper.
        self.procs = Supervisor("spaces", self._idle_time, self._sleep)
        self._deploying: dict[int, threading.Lock] = {}
        self._venv_locks: dict[str, threading.Lock] = {}
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
                python = self._venv(card, target, build, base_python(card.python_version))
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

    def _venv(self, card: SpaceCard, build_dir: Path, build: BoundedLog, base: str) -> str:
        requirements = build_dir / "requirements.txt"
        reqs = requirements.read_bytes() if requirements.is_file() else b""
        sdk = card.sdk + (f"=={card.sdk_version}" if card.sdk_version else "")
        pip_args = list(self.settings.pip_args or [])
        key = hashlib.sha256("\0".join([sys.version, base, sdk, *pip_args]).encode() + b"\0" + reqs).hexdigest()[:24]
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
            cmds = [[base, "-m", "venv", "--without-pip", str(venv)],
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
        return self.procs.start(row.repo_id, lambda: AppProcess(self, row))

    def stop(self, repo_id: int, stage: str) -> None:
        sup = self.procs.pop(repo_id)
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
        self.procs.touch(repo_id)

    def serving(self, repo_id: int) -> contextlib.AbstractContextManager[None]:
        """A request or WebSocket is being proxied: the space does not sleep meanwhile."""
        return self.procs.serving(repo_id)

    def hold(self, repo_id: int) -> Callable[[], None]:
        """``serving`` for a request whose end comes by callback: call what it returns then."""
        return self.procs.hold(repo_id)

    def ready_port(self, repo_id: int) -> int | None:
        """The port of the space's app when it is up and ready now (memory only: no waiting,
        no database), noting the use; None otherwise (then ``ensure_running``)."""
        return self.procs.port(repo_id)

    def ensure_running(self, repo_id: int, timeout: float | None = None) -> int:
        """The port of the space's app, waking it when it sleeps; SpaceUnavailable otherwise."""
        self.touch(repo_id)
        sup = self.procs.get(repo_id)
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
        return self.procs.running()

    # -- idle spaces and shutdown --------------------------------------------------------------
    def _idle_time(self, repo_id: int) -> float:
        row = self.states.get(repo_id)
        return self.settings.sleep_time if row is None or row.sleep_time is None else row.sleep_time

    def _sleep(self, repo_id: int) -> None:
        row = self.states.get(repo_id)
        log.info("space %s idle for %.0fs: sleeping", row.name if row else repo_id, self._idle_time(repo_id))
        self.stop(repo_id, SLEEPING)

    def suspend_all(self) -> None:
        """The daemon starts: no app runs yet, so spaces that were up sleep until asked for."""
        for row in self.states.all():
            if row.runtime == "local" and row.stage in (RUNNING, APP_STARTING) and row.sdk != "static":
                self.states.set(row.repo_id, row.name, stage=SLEEPING, pid=None, port=None)

    def shutdown(self) -> None:
        self.procs.close()
        for repo_id in self.procs.ids():
            self.stop(repo_id, SLEEPING)


class AppProcess(Supervised):
    """One space's app process (``gitd.Supervised``: restarts, readiness, its log)."""

    what = "app"
    not_ready = "did not open its port"

    def __init__(self, runner: LocalRunner, row: SpaceRow):
        s = runner.settings
        super().__init__(row.repo_id, runner.log(row.repo_id, "run"), start_timeout=s.start_timeout,
                         max_restarts=s.max_restarts, backoff=s.backoff, stable_after=STABLE_AFTER,
                         supervisor=runner.procs)
        self.runner = runner
        self.row = row

    def describe(self) -> str:
        row = self.row
        return f"starting {row.sdk} app {row.app_file} at {(row.commit_id or '')[:12]}"

    def _command(self, port: int) -> list[str]:
        row, python = self.row, self.row.python or sys.executable
        if row.sdk == "streamlit":
            return [python, "-m", "streamlit", "run", row.app_file or "app.py", "--server.port", str(port),
                    "--server.address", "127.0.0.1", "--server.headless", "true",
                    "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
        return [python, row.app_file or "app.py"]

    def argv(self, port: int) -> list[str]:
        s = self.runner.settings
        return limited(self._command(port), memory=int(s.memory), cpu=int(s.cpu_time), nofile=s.open_files,
                       nproc=s.processes)

    def cwd(self) -> str | None:
        return self.row.build_dir

    def user(self) -> str | None:
        return self.runner.settings.run_as or None

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

    def env(self, port: int) -> dict[str, str]:
        row = self.row
        bindir = os.path.dirname(row.python or sys.executable)
        return {**self.runner.environment(row.repo_id),  # the runtime's own names below win
                "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin", "HOME": self._home(), "LANG": "C.UTF-8",
                "PYTHONUNBUFFERED": "1", "PORT": str(port), "SPACE_ID": row.name, "SYSTEM": "spaces",
                "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
                "GRADIO_ROOT_PATH": f"/spaces/{row.name}/app", "GRADIO_ANALYTICS_ENABLED": "False",
                "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false", "HF_HUB_OFFLINE": "1"}

    # -- what happened: the space's stage ------------------------------------------------------
    def _set(self, **fields: object) -> None:
        self.runner.states.set(self.row.repo_id, self.row.name, **fields)

    def spawn_failed(self, error: OSError) -> None:
        self._set(stage=RUNTIME_ERROR, error=f"the app cannot start: {error}")

    def starting(self, proc: subprocess.Popen, port: int) -> None:
        self._set(stage=APP_STARTING, pid=proc.pid, port=port)

    def became_ready(self, port: int) -> None:
        self._set(stage=RUNNING, error=None)

    def crashed(self, detail: str, crashes: int) -> None:
        self._set(stage=RUNTIME_ERROR, pid=None, port=None, error=detail, restarts=crashes)

    def gave_up(self, detail: str, crashes: int) -> None:
        self._set(stage=RUNTIME_ERROR, pid=None, port=None, error=detail)


def _read_or_none(view: RepoView, commit: str, path: str) -> bytes | None:
    try:
        return view.read(commit, path, max_size=MAX_CARD)
    except NotFoundInTree:
        return None
    except LimitExceeded:  # a huge README: its front matter is at the start
        return view.read_range(commit, path, 0, MAX_CARD)


def base_python(version: str | None) -> str:
    """The interpreter a space's virtualenv is made from: the daemon's, or for a card's
    ``python_version`` that differs, ``pythonX.Y`` from PATH. SpaceUnavailable (a build
    error naming the version) when this host has no such Python."""
    have = f"{sys.version_info.major}.{sys.version_info.minor}"
    if version is None:
        return sys.executable
    want = ".".join(version.split(".")[:2])
    if want == have:
        return sys.executable
    found = shutil.which(f"python{want}")
    if found is None:
        raise SpaceUnavailable(BUILD_ERROR, f"the card asks for python_version {version}, which this host does not "
                                            f"have (python{want} is not on PATH; the daemon runs {have}); the "
                                            f"kubernetes runtime runs python:{want}-slim")
    return found
