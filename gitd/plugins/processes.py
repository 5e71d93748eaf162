"""Supervised child processes for plugins (API 1.3): what the spaces plugin's apps, a
fine-tune job and a model server all need from a process they start.

* ``BoundedLog``: a process's output kept on disk up to a size, with one older generation;
* ``Limits`` and ``limited(argv, limits)``: resource limits set by a tiny launcher in the
  fresh process, which then execs the program (the daemon is multi-threaded, so limits are
  never set in a ``preexec_fn``);
* ``spawn(argv, ...)``: the process in its own session, its environment built from scratch
  (the caller's ``env`` alone), stdout and stderr pumped into a ``BoundedLog`` by a thread;
* ``stop_group(proc, grace)``: SIGTERM to the whole process group, SIGKILL after ``grace``;
* ``exit_reason(code)``: an exit status in words (signals named, with a hint for the usual
  ones: CPU time, memory).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class BoundedLog:
    """A process's output on disk: past ``limit`` bytes the file becomes ``NAME.1`` (replacing
    the previous one) and a new one starts, so a process that prints a gigabyte costs at most
    ``2 * limit`` bytes of disk."""

    def __init__(self, path: Path, limit: int):
        self.path = path
        self.limit = max(4096, int(limit))
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self._lock:
            size = self.path.stat().st_size if self.path.exists() else 0
            if size + len(data) > self.limit:
                if size:
                    os.replace(self.path, self.path.with_name(self.path.name + ".1"))
                data = data[-self.limit:]
            with open(self.path, "ab") as f:
                f.write(data)

    def line(self, text: str) -> None:
        self.write(f"[gitd] {text}\n".encode())

    def clear(self) -> None:
        with self._lock:
            for p in (self.path, self.path.with_name(self.path.name + ".1")):
                p.unlink(missing_ok=True)

    def tail(self, size: int = 64 * 1024) -> bytes:
        """The last ``size`` bytes across both generations."""
        out = b""
        for p in (self.path, self.path.with_name(self.path.name + ".1")):
            if len(out) >= size:
                break
            try:
                with open(p, "rb") as f:
                    f.seek(0, os.SEEK_END)
                    end = f.tell()
                    f.seek(max(0, end - (size - len(out))))
                    out = f.read() + out
            except FileNotFoundError:
                continue
        return out[-size:]

    def pump(self, fd: int) -> None:
        """Copy a pipe into the log until it closes (a thread's body)."""
        try:
            while chunk := os.read(fd, 65536):
                self.write(chunk)
        except OSError:
            pass
        finally:
            os.close(fd)


@dataclass(frozen=True)
class Limits:
    """Resource limits for a child (0: no limit of that kind)."""

    memory: int = 0      # RLIMIT_AS, bytes of address space
    cpu_time: int = 0    # RLIMIT_CPU, seconds (soft: SIGXCPU)
    open_files: int = 0  # RLIMIT_NOFILE
    processes: int = 0   # RLIMIT_NPROC (counts the user's processes: meant for another user)


LAUNCHER = """
import os, resource, sys
names = ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_NOFILE", "RLIMIT_NPROC")
for name, value in zip(names, sys.argv[1:5]):
    value = int(value)
    if value > 0:
        soft, hard = resource.getrlimit(getattr(resource, name))
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(getattr(resource, name), (value, value if name != "RLIMIT_CPU" else hard))
os.execvp(sys.argv[6], sys.argv[6:])
"""


def limited(argv: list[str], limits: Limits) -> list[str]:
    """``argv`` (a Python interpreter and its arguments) wrapped in the launcher, run by that
    same interpreter (stdlib only, so any interpreter the child's user can run will do)."""
    return [argv[0], "-c", LAUNCHER, str(int(limits.memory)), str(int(limits.cpu_time)), str(limits.open_files),
            str(limits.processes), "--", *argv]


def spawn(argv: list[str], *, cwd: str | Path, env: Mapping[str, str], log: BoundedLog,
          limits: Limits | None = None, user: str | None = None, name: str = "gitd-child") -> subprocess.Popen:
    """Start ``argv`` in a new session (its own process group) with exactly ``env``, standard
    input from /dev/null and its output appended to ``log`` by a thread named ``name``.
    With ``limits``, ``argv[0]`` must be a Python interpreter (see ``limited``)."""
    if limits is not None:
        argv = limited(argv, limits)
    read, write = os.pipe()
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=write, stderr=write,
                                start_new_session=True, close_fds=True, user=user or None)
    except BaseException:
        os.close(read)
        raise
    finally:
        os.close(write)
    threading.Thread(target=log.pump, args=(read,), name=name, daemon=True).start()
    return proc


def stop_group(proc: subprocess.Popen, grace: float = 5.0) -> int | None:
    """End ``proc`` and everything it started (its process group): SIGTERM, then SIGKILL
    after ``grace`` seconds. Returns its exit status (None if it would not die)."""
    if proc.poll() is not None:
        return proc.returncode
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            return proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue
    return proc.poll()


def exit_reason(code: int, what: str = "the process") -> str:
    """``code`` (a ``Popen.returncode``) in words: "the app exited with status 1", "the app
    was killed by SIGKILL (killed; out of memory?)"."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        hint = {"SIGXCPU": " (its CPU time limit)", "SIGKILL": " (killed; out of memory?)"}.get(name, "")
        return f"{what} was killed by {name}{hint}"
    return f"{what} exited with status {code}"
