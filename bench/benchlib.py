"""Shared pieces of the benchmarks: an isolated git client, a gitd daemon of its own, memory
sampling and statistics. Everything runs on loopback as the current user."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

BENCH = Path(__file__).resolve().parent
WORK = BENCH / ".work"
RESULTS = BENCH / "results"
GITD = [sys.executable, "-m", "gitd.cli"]


def git_env(home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Bench",
        "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "Bench",
        "GIT_COMMITTER_EMAIL": "bench@example.com",
        "LANG": "C",
    }


class Git:
    """The stock git client with an empty configuration of its own."""

    def __init__(self, home: Path):
        self.env = git_env(home)

    def __call__(self, *args: str, cwd: Path | None = None, input: bytes | None = None,
                 check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(["git", *args], cwd=cwd, env=self.env, input=input, capture_output=True)
        if check and proc.returncode != 0:
            raise RuntimeError(f"git {' '.join(args[:3])}... failed: {proc.stderr.decode(errors='replace')}")
        return proc

    def out(self, *args: str, cwd: Path | None = None) -> str:
        return self(*args, cwd=cwd).stdout.decode().strip()

    def popen(self, *args: str, cwd: Path | None = None) -> subprocess.Popen:
        return subprocess.Popen(["git", *args], cwd=cwd, env=self.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)


class GitdServer:
    """``gitd serve`` on a fresh data dir under ``root``, on a random loopback port."""

    def __init__(self, root: Path, settings: dict[str, str] | None = None, *, ssh: str = ""):
        self.root = root
        self.data = root / "data"
        self.settings = settings or {}
        self.ssh = ssh  # the SSH listener ('' = off; '127.0.0.1:0' = a random port)
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.info: dict = {}

    def cli(self, *args: str) -> str:
        proc = subprocess.run([*GITD, "--data", str(self.data), *args], capture_output=True, text=True,
                              env=self._env())
        if proc.returncode != 0:
            raise RuntimeError(f"gitd {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GITD_")}
        for dotted, value in self.settings.items():
            env["GITD_" + "__".join(p.upper() for p in dotted.split("."))] = value
        return env

    def start(self) -> GitdServer:
        self.cli("init", str(self.data))
        info = self.data / "run" / "serve.json"
        with contextlib.suppress(FileNotFoundError):
            info.unlink()
        log = open(self.root / "gitd.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen([*GITD, "--data", str(self.data), "serve", "--http", "127.0.0.1:0",
                                      "--ssh", self.ssh],
                                     stdout=log, stderr=log, env=self._env(), start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gitd exited: {(self.root / 'gitd.log').read_text()[-2000:]}")
            if info.exists():
                with contextlib.suppress(json.JSONDecodeError, KeyError):
                    self.info = json.loads(info.read_text())
                    self.url = self.info["http"]
                    return self
            time.sleep(0.05)
        raise RuntimeError("gitd did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def repo_path(self, full_name: str) -> Path:
        ns, name = full_name.split("/")
        db = sqlite3.connect(self.data / "gitd.db")
        try:
            (repo_id,) = db.execute("SELECT r.id FROM repos r JOIN accounts a ON a.id = r.owner_id "
                                    "WHERE a.name = ? AND r.name = ? AND r.type = 'model'", [ns, name]).fetchone()
        finally:
            db.close()
        return self.data / "repos" / f"{repo_id % 256:02x}" / f"{repo_id}.git"

    def install_repo(self, full_name: str, source: Path) -> None:
        """Make repository ``full_name`` hold exactly ``source``'s objects and refs (hard links)."""
        target = self.repo_path(full_name)
        copy_objects_and_refs(source, target)


def wait_for_port(port: int, proc: subprocess.Popen | None = None, log: Path | None = None,
                  timeout: float = 30.0) -> None:
    """Wait until something accepts connections on 127.0.0.1:``port``; RuntimeError (with
    the tail of ``log``) once ``proc`` exits or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
            text = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
            what = proc.args[0] if proc is not None else f"a server on port {port}"
            raise RuntimeError(f"{what} did not start:\n{text}")
        time.sleep(0.05)


def copy_objects_and_refs(source: Path, target: Path) -> None:
    """Give bare repo ``target`` the objects (hard-linked) and refs of bare repo ``source``."""
    shutil.rmtree(target / "objects")
    subprocess.run(["cp", "-al", str(source / "objects"), str(target / "objects")], check=True)
    shutil.rmtree(target / "refs")
    shutil.copytree(source / "refs", target / "refs")
    if (source / "packed-refs").exists():
        shutil.copy2(source / "packed-refs", target / "packed-refs")
    shutil.copy2(source / "HEAD", target / "HEAD")


def rss(pid: int, key: str = "VmRSS") -> int:
    """A process's resident memory (VmRSS) or its high-water mark (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


class PeakRSS:
    """Peak RSS of ``pid`` while the block runs: the kernel's high-water mark (reset on entry
    when allowed) and 10 ms samples of VmRSS; also the sampled peak of RssAnon (VmRSS
    counts pages of files the process maps too, e.g. pack files libgit2 reads)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.start = self.peak = self.sampled = 0
        self.anon_start = self.anon_peak = 0  # RssAnon: heap and stacks, without mapped files
        self._stop = threading.Event()
        self._hwm_reset = False

    def __enter__(self) -> PeakRSS:
        with contextlib.suppress(OSError):
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            self._hwm_reset = True
        self.start = rss(self.pid)
        self.anon_start = self.anon_peak = rss(self.pid, "RssAnon")
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            with contextlib.suppress(OSError, KeyError):
                self.sampled = max(self.sampled, rss(self.pid))
                self.anon_peak = max(self.anon_peak, rss(self.pid, "RssAnon"))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.sampled, rss(self.pid, "VmHWM") if self._hwm_reset else 0)


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    box: list[float] = []
    started = time.perf_counter()
    yield box
    box.append(time.perf_counter() - started)


def median(values: list[float]) -> float:
    return statistics.median(values)


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def save_results(name: str, results: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    return path
