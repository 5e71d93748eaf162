"""The public API's supervised processes (API 1.3): spawn under limits into a bounded log, stopping a group."""

from __future__ import annotations

import os
import sys
import time

import gitd
from gitd import BoundedLog, exit_reason, limited_argv, spawn, stop_group


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_child_runs_with_only_its_environment_under_its_limits_and_its_output_is_logged(tmp_path):
    assert tuple(map(int, gitd.API_VERSION.split("."))) >= (1, 3)
    log = BoundedLog(tmp_path / "out.log", 4096)
    code = ("import os, resource; print(sorted(os.environ)); "
            "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0], resource.getrlimit(resource.RLIMIT_AS)[0])")
    argv = limited_argv([sys.executable, "-c", code], memory=2 << 30, cpu=0, nofile=64, nproc=0)
    proc = spawn(argv, cwd=tmp_path, env={"ONLY": "1"}, log=log)
    assert proc.wait(30) == 0
    wait_for(lambda: b"64" in log.tail())
    lines = log.tail().decode().splitlines()
    assert "ONLY" in lines[0] and "PATH" not in lines[0]
    assert lines[1] == f"64 {2 << 30}"


def test_stop_group_ends_the_child_and_what_it_started(tmp_path):
    log = BoundedLog(tmp_path / "out.log", 4096)
    code = ("import subprocess, sys, time; "
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            "print(p.pid, flush=True); time.sleep(60)")
    proc = spawn([sys.executable, "-c", code], cwd=tmp_path, env={}, log=log)
    wait_for(lambda: log.tail().strip() != b"")
    grandchild = int(log.tail().split()[0])
    assert stop_group(proc, grace=2.0) == -15
    wait_for(lambda: not _alive(grandchild))
    assert exit_reason(-15, "the job") == "the job was killed by SIGTERM"
    assert exit_reason(-9) == "the process was killed by SIGKILL (killed; out of memory?)"
    assert exit_reason(3, "the app") == "the app exited with status 3"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie whose parent is gone is reaped by init soon; /proc says which it is
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
