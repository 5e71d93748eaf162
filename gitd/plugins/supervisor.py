"""Supervised child processes that answer on a port, for plugins that run them (plugin API 1.4):
the spaces plugin's apps and the inference plugin's engines.

``Supervised`` keeps one process running on its own thread: it starts it (``spawn``) on a
free loopback port (its output pumped into a ``BoundedLog``), waits until it is ready (by default: its port
accepts connections), then for its exit, and restarts a crash with exponential backoff until
``max_restarts`` crashes in a row (a process that ran ``stable_after`` seconds starts a new
count). A subclass says what to run (``argv``, ``env``, ``cwd``, ``user``) and hears what
happens (``starting``, ``became_ready``, ``exited``, ``crashed``, ``gave_up``,
``spawn_failed``), to record it in the plugin's own state.

``Supervisor`` holds a plugin's running ``Supervised`` by key, notes when each was last used
and whether a request is being served through it (``serving``), and puts those idle longer
than their idle time to sleep (a reaper thread calling the plugin back): scale to zero.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from gitd.plugins.boundedlog import BoundedLog
from gitd.plugins.launch import free_port
from gitd.plugins.processes import exit_reason, spawn, stop_group

log = logging.getLogger("gitd.plugins.supervisor")


class Supervised:
    """One child process, kept running by its own thread. Subclass it: ``argv`` is required."""

    what = "process"  # how log lines and reasons name it ("app", "engine")
    not_ready = "did not get ready"  # the reason when it is not ready within start_timeout

    def __init__(self, key: Any, output: BoundedLog, *, start_timeout: float, max_restarts: int,
                 backoff: float = 1.0, stable_after: float = 60.0, supervisor: Supervisor | None = None):
        self.key = key
        self.output = output
        self.start_timeout = start_timeout
        self.max_restarts = max_restarts
        self.backoff = backoff
        self.stable_after = stable_after
        self.supervisor = supervisor
        self.ready = threading.Event()  # set once it answers on its port, or gave up
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"gitd-supervised-{key}", daemon=True)

    # -- what to run (override) ----------------------------------------------------------------
    def argv(self, port: int) -> list[str]:
        raise NotImplementedError

    def env(self, port: int) -> dict[str, str]:
        return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}

    def cwd(self) -> str | None:
        return None

    def user(self) -> str | None:
        return None

    def describe(self) -> str:
        """The log line written before each start."""
        return f"starting the {self.what}"

    def probe(self, proc: subprocess.Popen, port: int) -> bool:
        """Whether the process is ready now (default: its port accepts a connection)."""
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    # -- what happened (override to record it) -------------------------------------------------
    def starting(self, proc: subprocess.Popen, port: int) -> None:
        """The process was started; it is not ready yet."""

    def became_ready(self, port: int) -> None:
        """It answers on ``port``."""

    def exited(self, code: int) -> bool:
        """It exited (not stopped by us): True to count a crash and restart, False to give up now."""
        return True

    def crashed(self, detail: str, crashes: int) -> None:
        """It crashed; it is restarted after a backoff."""

    def gave_up(self, detail: str, crashes: int) -> None:
        """It crashed more than ``max_restarts`` times in a row: not restarted."""

    def spawn_failed(self, error: OSError) -> None:
        """It could not be started at all."""

    # -- the machinery -------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stopping.is_set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self, grace: float = 5.0) -> None:
        self._stopping.set()
        self.kill(grace)
        if self._thread is not threading.current_thread():
            self._thread.join(grace + 5)

    def kill(self, grace: float) -> None:
        """SIGTERM the process's session, SIGKILL after ``grace`` seconds (``stop_group``)."""
        if self.proc is not None:
            stop_group(self.proc, grace)

    def _spawn(self, port: int) -> subprocess.Popen:
        return spawn(self.argv(port), cwd=self.cwd() or ".", env=self.env(port), log=self.output, user=self.user(),
                     name=f"gitd-supervised-log-{self.key}")

    def _wait_ready(self, proc: subprocess.Popen, port: int) -> str | None:
        """None once the process is ready (or has exited); else why it did not get ready."""
        deadline = time.monotonic() + self.start_timeout
        while not self._stopping.is_set():
            if proc.poll() is not None:
                return None
            if self.probe(proc, port):
                return None
            if time.monotonic() > deadline:
                return f"the {self.what} {self.not_ready} within {self.start_timeout:.0f}s"
            self._stopping.wait(0.05)
        return "stopped"

    def _run(self) -> None:
        crashes = 0
        try:
            while not self._stopping.is_set():
                port = free_port()
                started = time.monotonic()
                self.output.line(self.describe())
                try:
                    self.proc = proc = self._spawn(port)
                except OSError as exc:
                    self.spawn_failed(exc)
                    return
                self.starting(proc, port)
                reason = self._wait_ready(proc, port)
                if reason is None and proc.poll() is None:
                    self.port = port
                    if self.supervisor is not None:
                        self.supervisor.touch(self.key)  # idle time counts from when it could first answer
                    self.became_ready(port)
                    self.ready.set()
                    code = proc.wait()
                else:
                    self.kill(1.0)
                    code = proc.wait()
                self.port = None
                if self._stopping.is_set() or not self.exited(code):
                    return
                reason = reason or exit_reason(code, f"the {self.what}")
                self.output.line(reason)
                if time.monotonic() - started > self.stable_after:
                    crashes = 0
                crashes += 1
                tail = self.output.tail(400).decode("utf-8", "replace").strip().splitlines()
                detail = f"{reason}; last output: {tail[-2] if len(tail) > 1 else ''}"[:1000]
                if crashes > self.max_restarts:
                    self.gave_up(f"{detail} (gave up after {crashes - 1} restarts)", crashes)
                    return
                self.crashed(detail, crashes)
                self.ready.set()  # whoever waits hears of the crash; a later request waits again
                self._stopping.wait(min(60.0, self.backoff * 2 ** (crashes - 1)))
                self.ready.clear()
        finally:
            self.port = None
            self.ready.set()
            if self.supervisor is not None and not self._stopping.is_set():
                self.supervisor.discard(self.key, self)


class Supervisor:
    """A plugin's running processes by key, their last use, and the idle reaper.

    ``idle_time(key)``: seconds of idleness after which ``on_idle(key)`` is called (0: never);
    asked once a second for each ready process not serving a request."""

    def __init__(self, name: str, idle_time: Callable[[Any], float], on_idle: Callable[[Any], None]):
        self.name = name
        self.idle_time = idle_time
        self.on_idle = on_idle
        self.lock = threading.RLock()
        self._running: dict[Any, Supervised] = {}
        self._used: dict[Any, float] = {}
        self._active: dict[Any, int] = {}
        self._closing = threading.Event()
        self._reaper: threading.Thread | None = None

    def get(self, key: Any) -> Supervised | None:
        return self._running.get(key)

    def start(self, key: Any, make: Callable[[], Supervised]) -> Supervised:
        """The running process of ``key``, or a new one from ``make()``, started."""
        with self.lock:
            current = self._running.get(key)
            if current is not None and current.alive():
                return current
            proc = make()
            self._running[key] = proc
            self._used[key] = time.monotonic()
            self._start_reaper()
        proc.start()
        return proc

    def pop(self, key: Any) -> Supervised | None:
        """Forget ``key``'s process (the caller stops it)."""
        with self.lock:
            return self._running.pop(key, None)

    def discard(self, key: Any, proc: Supervised) -> None:
        """``proc`` ended by itself: forget it if it is still ``key``'s."""
        with self.lock:
            if self._running.get(key) is proc:
                self._running.pop(key, None)

    def ids(self) -> list[Any]:
        with self.lock:
            return list(self._running)

    def running(self) -> list[Any]:
        with self.lock:
            return [key for key, proc in self._running.items() if proc.alive()]

    def touch(self, key: Any) -> None:
        self._used[key] = time.monotonic()

    def port(self, key: Any) -> int | None:
        """The port of ``key``'s process when it is ready now (no waiting), noting the use."""
        proc = self._running.get(key)
        if proc is not None and proc.port is not None and proc.alive():
            self.touch(key)
            return proc.port
        return None

    @contextlib.contextmanager
    def serving(self, key: Any) -> Iterator[None]:
        """A request is being served through ``key``'s process: it does not sleep meanwhile."""
        done = self.hold(key)
        try:
            yield
        finally:
            done()

    def hold(self, key: Any) -> Callable[[], None]:
        """``serving`` without the ``with``: ``key``'s process does not sleep until the
        function returned is called (once)."""
        with self.lock:
            self._active[key] = self._active.get(key, 0) + 1
        held = [True]

        def done() -> None:
            if held:
                held.clear()
                with self.lock:
                    self._active[key] -= 1
                self.touch(key)

        return done

    def _start_reaper(self) -> None:
        if self._reaper is None or not self._reaper.is_alive():
            self._closing.clear()
            self._reaper = threading.Thread(target=self._reap, name=f"gitd-{self.name}-reaper", daemon=True)
            self._reaper.start()

    def _reap(self) -> None:
        while not self._closing.wait(1.0):
            now = time.monotonic()
            with self.lock:
                running = list(self._running.items())
            for key, proc in running:
                if proc.port is None or self._active.get(key):
                    continue  # still starting (or crashed, waiting to restart), or serving a request
                idle = self.idle_time(key)
                if idle > 0 and now - self._used.get(key, now) > idle:
                    try:
                        self.on_idle(key)
                    except Exception:
                        log.exception("%s: putting %s to sleep failed", self.name, key)

    def close(self) -> None:
        """Stop the reaper (the daemon stops; the caller stops the processes)."""
        self._closing.set()
