"""Real faults for the operations tests: another process holding the database's write lock,
a small filesystem mounted over part of a data directory, timing helpers."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")

_HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
conn.execute("BEGIN IMMEDIATE")
conn.execute("UPDATE accounts SET email = email")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
print("released", flush=True)
"""


@contextlib.contextmanager
def write_lock_held(db_file: Path, seconds: float) -> Iterator[subprocess.Popen]:
    """Another process (as an administrator's sqlite3 shell would) takes the database's write
    lock and keeps it ``seconds``; yields once it holds it."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(db_file), str(seconds)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def timed(call: Callable[[], T]) -> tuple[float, T]:
    started = time.monotonic()
    value = call()
    return time.monotonic() - started, value


@contextlib.contextmanager
def small_filesystem(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (created empty) for as long as the block runs:
    a disk that fills for real. Skips where mounting is not allowed (not root, no CAP_SYS_ADMIN)."""
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs for a real full disk here: {proc.stderr.strip() or proc.returncode}")
    try:
        yield path
    finally:
        for _ in range(50):
            if subprocess.run(["umount", str(path)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        else:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path: Path, leave: int) -> Path:
    """Fill the filesystem of ``path`` with one file until about ``leave`` bytes are free."""
    import os

    filler = path / "filler.bin"
    st = os.statvfs(path)
    free = st.f_bavail * st.f_frsize
    with open(filler, "ab") as f:
        remaining = max(0, free - leave)
        block = b"\0" * (1 << 20)
        while remaining > 0:
            n = min(remaining, len(block))
            try:
                f.write(block[:n])
                f.flush()
            except OSError:
                break
            remaining -= n
    return filler


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children of any of its threads, recursively)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found += children
            todo += children
    return found


def crash(daemon) -> None:
    """SIGKILL the daemon and every process it started, at once: what a supervisor does when
    a stop times out (systemd kills the unit's whole cgroup), or a power cut."""
    import os
    import signal

    assert daemon.proc is not None
    pids = [daemon.proc.pid, *descendants(daemon.proc.pid)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    daemon.proc.wait()
