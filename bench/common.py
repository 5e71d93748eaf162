"""What the benchmarks share: a deterministic large repository, an isolated git client,
a gitd daemon of their own, and statistics. Everything runs on loopback as the current
user; scratch data lives under bench/.work/ and results go to bench/results/.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / ".work"
RESULTS = BENCH / "results"
GITD = [sys.executable, "-m", "gitd.cli"]


# -- git ------------------------------------------------------------------------------------------
def git_env(home: Path) -> dict[str, str]:
    """An environment in which git reads no configuration but its own."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
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


def run(argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
        input: bytes | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, env=env, cwd=cwd, input=input, capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} ... failed ({proc.returncode}): "
                           f"{proc.stderr.decode(errors='replace')[-2000:]}")
    return proc


# -- the large repository -------------------------------------------------------------------------
def build_large_repo(dest: Path, *, commits: int = 2000, size_mb: int = 220, seed: int = 5,
                     env: dict[str, str]) -> Path:
    """A bare repository shaped like a model repo's history: ``commits`` commits on main,
    each rewriting one of 64 incompressible weight shards (about ``size_mb`` MB in all) and
    editing a config file and a README; a tag every 250 commits. Built with git
    fast-import and repacked with a bitmap, as a served repository is. The same arguments
    always give the same commit ids. Cached: returns at once when ``dest`` exists."""
    if (dest / "packed-refs").exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    run(["git", "init", "-q", "--bare", "-b", "main", str(tmp)], env=env)
    rng = random.Random(seed)
    mean = size_mb * 1_000_000 // max(commits, 1)
    config = {f"layer_{i}": {"hidden": 64 * (i + 1), "dropout": 0.1} for i in range(48)}
    readme = ["# Model card\n", *(f"Line {i} of the model card.\n" for i in range(80))]
    importer = subprocess.Popen(["git", "fast-import", "--quiet", "--done"], cwd=tmp, env=env,
                                stdin=subprocess.PIPE)
    assert importer.stdin is not None
    out = importer.stdin
    stamp = 1_650_000_000
    for n in range(1, commits + 1):
        stamp += 3600
        message = f"training step {n}\n".encode()
        out.write(b"commit refs/heads/main\nmark :%d\n" % n)
        out.write(b"author Bench <bench@example.com> %d +0000\n" % stamp)
        out.write(b"committer Bench <bench@example.com> %d +0000\n" % stamp)
        out.write(b"data %d\n%s" % (len(message), message))
        if n > 1:
            out.write(b"from :%d\n" % (n - 1))
        shard = rng.randrange(64)
        blob = rng.randbytes(max(1, int(mean * rng.uniform(0.5, 1.5))))
        out.write(b"M 100644 inline weights/shard-%02d.bin\ndata %d\n" % (shard, len(blob)) + blob + b"\n")
        layer = config[f"layer_{rng.randrange(48)}"]
        layer["dropout"] = round(rng.random(), 4)
        text = json.dumps(config, indent=2).encode()
        out.write(b"M 100644 inline config.json\ndata %d\n%s\n" % (len(text), text))
        readme[rng.randrange(1, len(readme))] = f"Updated at step {n}: {rng.randrange(10**9)}\n"
        text = "".join(readme).encode()
        out.write(b"M 100644 inline README.md\ndata %d\n%s\n" % (len(text), text))
        out.write(b"\n")
        if n % 250 == 0:
            out.write(b"reset refs/tags/step-%d\nfrom :%d\n\n" % (n, n))
    out.write(b"done\n")
    out.close()
    if importer.wait() != 0:
        raise RuntimeError("git fast-import failed")
    run(["git", "repack", "-a", "-d", "-b", "-q"], env=env, cwd=tmp)
    run(["git", "pack-refs", "--all"], env=env, cwd=tmp)
    tmp.rename(dest)
    return dest


def pack_bytes(repo: Path) -> int:
    return sum(p.stat().st_size for p in (repo / "objects" / "pack").glob("*.pack"))


def link_repository(source: Path, target: Path) -> None:
    """Make ``target`` (a bare repository, existing or not) serve exactly ``source``'s
    objects and refs; packs are hard-linked, so no bytes are copied."""
    if not target.exists():
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(target)], check=True,
                       capture_output=True)
    packs = target / "objects" / "pack"
    packs.mkdir(parents=True, exist_ok=True)
    for item in (source / "objects" / "pack").iterdir():
        dest = packs / item.name
        if not dest.exists():
            os.link(item, dest)
    shutil.copyfile(source / "packed-refs", target / "packed-refs")
    (target / "HEAD").write_text("ref: refs/heads/main\n")


# -- processes --------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


class Gitd:
    """``gitd serve`` on a data dir of its own, HTTP and SSH on random loopback ports."""

    def __init__(self, root: Path, settings: dict[str, str] | None = None):
        self.root = root
        self.data = root / "data"
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **(settings or {})}
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}

    def cli(self, *args: str, input: bytes | None = None) -> str:
        return run([*GITD, "--data", str(self.data), *args], env=self.env, input=input).stdout.decode()

    def repo_path(self, full_name: str) -> Path:
        ns, name = full_name.split("/")
        db = sqlite3.connect(self.data / "gitd.db")
        try:
            (repo_id,) = db.execute("SELECT r.id FROM repos r JOIN accounts a ON a.id = r.owner_id "
                                    "WHERE a.name = ? AND r.name = ?", [ns, name]).fetchone()
        finally:
            db.close()
        return self.data / "repos" / f"{repo_id % 256:02x}" / f"{repo_id}.git"

    def start(self) -> Gitd:
        info = self.data / "run" / "serve.json"
        with contextlib.suppress(FileNotFoundError):
            info.unlink()
        log = open(self.root / "gitd.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen([*GITD, "--data", str(self.data), "serve", "--http", "127.0.0.1:0",
                                      "--ssh", "127.0.0.1:0"], stdout=log, stderr=log, env=self.env,
                                     start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gitd serve exited; see {self.root / 'gitd.log'}")
            if info.exists():
                with contextlib.suppress(json.JSONDecodeError):
                    self.info = json.loads(info.read_text())
                    return self
            time.sleep(0.05)
        raise RuntimeError("gitd serve did not start")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def ssh_port(self) -> int:
        return int(self.info["ssh"].rsplit(":", 1)[1])

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and of the children it has reaped (the git processes gitd ran,
    the per-connection processes sshd forked), user and system."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


# -- statistics ---------------------------------------------------------------------------------------
def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def save_results(name: str, results: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path
