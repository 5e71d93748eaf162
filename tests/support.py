"""Test support: a real gitd daemon on random loopback ports, and the real git client."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import io
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from gitd import cli

_counter = itertools.count(1)


def tampered(data: bytes) -> bytes:
    """``data`` with its first byte changed, so it always differs (a fixed first byte matches 1 in 256 random ones)."""
    return bytes([data[0] ^ 0xFF]) + data[1:]


def unique(prefix: str = "t") -> str:
    """A name no other test in this session uses."""
    return f"{prefix}{os.getpid() % 1000}x{next(_counter)}"


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_cli(data: Path, *args: str, check: bool = True) -> tuple[int, str, str]:
    """Run a ``gitd`` command in-process (same code path as the console script)."""
    out, err = io.StringIO(), io.StringIO()

    def main() -> int:
        try:
            return cli.main(["--data", str(data), *args])
        except SystemExit as exc:  # argparse usage errors
            return int(exc.code or 0)

    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        if _loop_running():
            # The console script never runs inside an event loop; a test can (Playwright's sync
            # API runs one on the main thread), and commands that use asyncio.run need their own.
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                code = pool.submit(main).result()
        else:
            code = main()
    if check and code != 0:
        raise AssertionError(f"gitd {' '.join(args)} failed ({code}): {err.getvalue()}")
    return code, out.getvalue(), err.getvalue()


@dataclass
class Daemon:
    data: Path
    log_path: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    url: str = ""
    info: dict = field(default_factory=dict)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> Daemon:
        info_file = self.data / "run" / "serve.json"
        with contextlib.suppress(FileNotFoundError):
            info_file.unlink()
        env = {**os.environ, **self.extra_env, "PYTHONUNBUFFERED": "1"}
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gitd.cli", "--data", str(self.data), "serve", "--http", "127.0.0.1:0",
             "--ssh", "127.0.0.1:0", *self.args],
            stdout=log, stderr=log, env=env, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gitd serve exited {self.proc.returncode}:\n{self.log()}")
            if info_file.exists():
                with contextlib.suppress(json.JSONDecodeError):
                    self.info = json.loads(info_file.read_text())
                    self.url = self.info["http"]
                    return self
            time.sleep(0.05)
        raise RuntimeError(f"gitd serve did not become ready:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        # A daemon still running after a third of the time leaves its signal state and the
        # stacks of all its threads in its log (while it is stuck, not only when killed).
        for wait in (timeout / 3, timeout * 2 / 3):
            try:
                return self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                self._log_signal_state()
                self.proc.send_signal(signal.SIGUSR1)
        time.sleep(0.5)
        os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.wait()

    def _log_signal_state(self) -> None:
        """Pending, blocked and caught signals of every thread, for a daemon that would not stop."""
        assert self.proc is not None
        lines = []
        for task in sorted(Path(f"/proc/{self.proc.pid}/task").glob("*")):
            with contextlib.suppress(OSError):
                status = (task / "status").read_text()
                keys = ("Name", "SigPnd", "ShdPnd", "SigBlk", "SigCgt")
                wanted = [ln for ln in status.splitlines() if ln.startswith(keys)]
                lines.append(f"{task.name}: " + " ".join(wanted))
        with open(self.log_path, "a") as log:
            log.write("test harness: daemon did not stop; signal state per thread:\n" + "\n".join(lines) + "\n")

    def kill(self) -> None:
        """SIGKILL the daemon (a crash)."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def ssh_host(self) -> str:
        """The host of the SSH listener (serve.json's "ssh"); KeyError when SSH is off."""
        return self.info["ssh"].rsplit(":", 1)[0].strip("[]")

    @property
    def ssh_port(self) -> int:
        return int(self.info["ssh"].rsplit(":", 1)[1])

    # -- administration ---------------------------------------------------------------------------
    def cli(self, *args: str, check: bool = True) -> tuple[int, str, str]:
        return run_cli(self.data, *args, check=check)

    def user(self, name: str | None = None, *, admin: bool = False, scope: str = "write") -> tuple[str, str]:
        """Create a user and a token; returns (name, token)."""
        name = name or unique("u")
        self.cli("user", "add", name, *(["--admin"] if admin else []))
        _, token, _ = self.cli("token", "create", name, "--scope", scope, "--name", unique("tok"))
        return name, token.strip()

    def repo(self, owner: str, name: str | None = None, *, repo_type: str = "model",
             private: bool = False, empty: bool = True) -> str:
        """A new repository; empty (``gitd repo create --empty``) unless ``empty=False``, so a test
        can push any history into it (with its first commit, as the Hub API makes it, a push of
        unrelated history is a non-fast-forward)."""
        name = name or unique("r")
        self.cli("repo", "create", f"{owner}/{name}", "--type", repo_type, *(["--private"] if private else []),
                 *(["--empty"] if empty else []))
        return f"{owner}/{name}"

    def repo_id(self, full_name: str, repo_type: str = "model") -> int:
        """The database id of repository ``full_name`` (read straight from the database)."""
        namespace, name = full_name.split("/")
        db = sqlite3.connect(self.data / "gitd.db")
        try:
            row = db.execute("SELECT r.id FROM repos r JOIN accounts a ON a.id = r.owner_id "
                             "WHERE a.name = ? AND r.name = ? AND r.type = ?", [namespace, name, repo_type]).fetchone()
        finally:
            db.close()
        if row is None:
            raise AssertionError(f"no {repo_type} repository {full_name}")
        return row[0]

    def repo_path(self, full_name: str, repo_type: str = "model") -> Path:
        """The bare repository on disk behind ``full_name`` (its id from the database)."""
        repo_id = self.repo_id(full_name, repo_type)
        return self.data / "repos" / f"{repo_id % 256:02x}" / f"{repo_id}.git"

    # -- URLs -------------------------------------------------------------------------------------
    def repo_url(self, full_name: str, *, token: str | None = None, repo_type: str = "model",
                 suffix: str = ".git") -> str:
        prefix = {"model": "", "dataset": "datasets/", "space": "spaces/", "code": "codes/"}[repo_type]
        url = f"{self.url}/{prefix}{full_name}{suffix}"
        return with_token(url, token) if token else url


def with_token(url: str, token: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"user:{token}@{parts.netloc}"))


def settings_env(settings: dict[str, object] | None) -> dict[str, str]:
    """{"jobs.workers": 1} -> {"GITD_JOBS__WORKERS": "1"}: how tests configure a daemon."""
    env = {}
    for dotted, value in (settings or {}).items():
        key = "GITD_" + "__".join(part.upper() for part in dotted.split("."))
        if isinstance(value, bool):
            env[key] = "true" if value else "false"
        elif isinstance(value, list | dict):
            env[key] = json.dumps(value)
        else:
            env[key] = str(value)
    return env


class Git:
    """The real git client, isolated from the user's configuration."""

    def __init__(self, home: Path):
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.env = {
            "PATH": os.environ["PATH"],
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": "Test Author",
            "GIT_AUTHOR_EMAIL": "author@example.com",
            "GIT_COMMITTER_NAME": "Test Author",
            "GIT_COMMITTER_EMAIL": "author@example.com",
            "LANG": "C",
        }

    def __call__(self, *args: str, cwd: Path | str | None = None, check: bool = True,
                 env: dict[str, str] | None = None, input: bytes | None = None,
                 timeout: float = 600) -> subprocess.CompletedProcess:
        proc = subprocess.run(["git", *args], cwd=cwd, env={**self.env, **(env or {})}, input=input,
                              capture_output=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"git {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout.decode(errors='replace')}\n"
                f"{proc.stderr.decode(errors='replace')}"
            )
        return proc

    def out(self, *args: str, cwd: Path | str | None = None) -> str:
        return self(*args, cwd=cwd).stdout.decode().strip()

    def init_work(self, path: Path, files: dict[str, bytes | str] | None = None, *,
                  message: str = "initial") -> Path:
        """A work tree on branch main with one commit of ``files``."""
        path.mkdir(parents=True, exist_ok=True)
        self("init", "-q", "-b", "main", cwd=path)
        self.commit(path, files or {"README.md": "hello\n"}, message=message)
        return path

    def commit(self, path: Path, files: dict[str, bytes | str], *, message: str = "change") -> str:
        for name, content in files.items():
            target = path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content.encode() if isinstance(content, str) else content)
        self("add", "-A", cwd=path)
        self("commit", "-q", "--allow-empty", "-m", message, cwd=path)
        return self.out("rev-parse", "HEAD", cwd=path)




def new_daemon(root: Path, settings: dict[str, object] | None = None, env: dict[str, str] | None = None,
               args: list[str] | None = None) -> Daemon:
    """An initialised (not yet started) daemon under ``root``.

    ``settings`` are dotted config keys, passed as GITD_* environment variables.
    """
    data = root / "data"
    run_cli(data, "init", str(data))
    return Daemon(data=data, log_path=root / "gitd.log", extra_env={**settings_env(settings), **(env or {})},
                  args=args or [])
