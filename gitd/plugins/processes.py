"""Supervised child processes for plugins (API 1.3): what the spaces plugin's apps and the
fine-tune plugin's training jobs share, with ``BoundedLog`` and ``limited_argv`` beside them.

* ``spawn(argv, ...)``: the process in its own session (so it and everything it starts can be
  stopped together), its environment built from scratch (the caller's ``env`` alone),
  standard input from /dev/null, stdout and stderr pumped into a ``BoundedLog`` by a thread;
* ``stop_group(proc, grace)``: SIGTERM to the whole process group, SIGKILL after ``grace``;
* ``exit_reason(code, what)``: an exit status in words (signals named, with a hint for the
  usual ones: a CPU time limit, memory).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path

from gitd.plugins.boundedlog import BoundedLog


def spawn(argv: list[str], *, cwd: str | Path, env: Mapping[str, str], log: BoundedLog, user: str | None = None,
          name: str = "gitd-child") -> subprocess.Popen:
    """Start ``argv`` in a new session with exactly ``env``, its output appended to ``log`` by a
    thread named ``name``; ``user`` runs it as another user. Wrap ``argv`` with
    ``limited_argv`` first for resource limits."""
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
