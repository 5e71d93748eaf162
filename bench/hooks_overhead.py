#!/usr/bin/env python3
"""What the receive hooks and plugins cost a push.

One push of COMMITS small commits (one file changed per commit) to a fresh repository,
over Smart HTTP with the stock git client, against gitd daemons started side by side
on loopback:

  a  hooks disabled (hooks.enabled = false): the peer everything is compared with
  b  hooks on, no plugins (the built-in policy plugin disabled)
  c  hooks on, five no-op plugins (bench/plugins/gitd-bench-noop, installed with
     pip --target like any third-party plugin), policy disabled
  d  hooks on, the shipped defaults (policy plugin on): for information
  e  hooks on, but the installed hook programs replaced by two empty shell scripts
     that do not call the daemon: the floor, what it costs git to run two hooks at all

Runs alternate between the daemons (a b c d e, b c d e a, ...), so drift in the
machine's load hits all of them alike. Reported: the median push time (wall clock) of
each, and the median over rounds of the paired ratios to a; the target is b/a and c/a
<= 1.10 (e/a shows how much of that git itself takes). Also reported, because it
hardly depends on what else the machine is doing: the mean CPU time a push cost, the
git client's plus the daemon's (git receive-pack and the hooks included; the kernel
counts the daemon's in 10 ms ticks, hence means over all rounds rather than medians),
and its ratio to a's.

    .venv/bin/python bench/hooks_overhead.py [--rounds 15] [--commits 200] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
NOOP_PACKAGE = ROOT / "bench" / "plugins" / "gitd-bench-noop"
TARGET = 1.10
EMPTY_HOOK = "#!/bin/sh\nexec cat >/dev/null\n"


def gitd_cli(data: Path, *args: str) -> str:
    """Run a ``gitd`` command in-process; returns its stdout."""
    from gitd import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["--data", str(data), *args])
    if code != 0:
        raise RuntimeError(f"gitd {' '.join(args)}: {err.getvalue()}")
    return out.getvalue()


def install_noop_plugins(work: Path) -> Path:
    target, src = work / "noop-site", work / "noop-src"
    shutil.copytree(NOOP_PACKAGE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    base = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
            "--target", str(target)]
    if subprocess.run([*base, "--no-build-isolation", "--no-index", str(src)], capture_output=True).returncode:
        subprocess.run([*base, str(src)], check=True, capture_output=True)
    return target


@dataclass
class Peer:
    label: str
    what: str
    root: Path
    env: dict[str, str]
    empty_hooks: bool = False
    proc: subprocess.Popen | None = None
    url: str = ""
    token: str = ""
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def start(self) -> None:
        gitd_cli(self.data, "init", str(self.data))
        env = {**os.environ, "GITD_SERVER__LOG_LEVEL": "warning", "GITD_SERVER__SSH": "", **self.env}
        log = open(self.root / "gitd.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen([sys.executable, "-m", "gitd.cli", "--data", str(self.data), "serve",
                                      "--http", "127.0.0.1:0"], stdout=log, stderr=log, env=env,
                                     start_new_session=True)
        info = self.data / "run" / "serve.json"
        deadline = time.monotonic() + 60
        while not info.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daemon {self.label} did not start:\n{(self.root / 'gitd.log').read_text()}")
            time.sleep(0.05)
        self.url = json.loads(info.read_text())["http"]
        if self.empty_hooks:  # after `serve` installed the real ones
            for name in ("pre-receive", "post-receive"):
                (self.data / "hooks" / name).write_text(EMPTY_HOOK)
        gitd_cli(self.data, "user", "add", "bench")
        self.token = gitd_cli(self.data, "token", "create", "bench", "--name", "bench").strip()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def cpu_seconds(self) -> float:
        """CPU time of the daemon and of its children it has reaped (git, and the hooks git ran)."""
        assert self.proc is not None
        fields = (Path("/proc") / str(self.proc.pid) / "stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")

    def fresh_repo_url(self, name: str) -> str:
        gitd_cli(self.data, "repo", "create", f"bench/{name}", "--empty")
        parts = urlsplit(f"{self.url}/bench/{name}.git")
        return urlunsplit(parts._replace(netloc=f"bench:{self.token}@{parts.netloc}"))


def make_source(path: Path, commits: int, env: dict[str, str]) -> None:
    """A repository on branch main with ``commits`` small commits, built with fast-import."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True, env=env)
    stream = io.BytesIO()
    for i in range(commits):
        content = f"line {i}\n".encode() * 3
        message = f"commit {i}\n".encode()
        stream.write(b"commit refs/heads/main\n")
        stream.write(f"committer Bench <bench@example.com> {1700000000 + i} +0000\n".encode())
        stream.write(b"data %d\n%s" % (len(message), message))  # each commit follows the previous one
        stream.write(f"M 100644 inline file{i % 20}.txt\n".encode())
        stream.write(b"data %d\n%s\n" % (len(content), content))
    subprocess.run(["git", "fast-import", "--quiet"], input=stream.getvalue(), cwd=path, check=True, env=env)


def timed_push(source: Path, url: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(["git", "push", "-q", url, "main"], cwd=source, env=env, capture_output=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"push to {url} failed: {proc.stderr.decode()}")
    return elapsed


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measured_push(peer: Peer, source: Path, name: str, env: dict[str, str]) -> None:
    url = peer.fresh_repo_url(name)
    daemon_before, client_before = peer.cpu_seconds(), children_cpu()
    peer.times.append(timed_push(source, url, env))
    peer.cpu.append(peer.cpu_seconds() - daemon_before + children_cpu() - client_before)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--commits", type=int, default=200)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gitd-hooks-bench-"))
    git_env = {"PATH": os.environ["PATH"], "HOME": str(work / "home"), "GIT_CONFIG_NOSYSTEM": "1",
               "GIT_TERMINAL_PROMPT": "0", "LANG": "C"}
    (work / "home").mkdir()
    peers: list[Peer] = []
    try:
        site = install_noop_plugins(work)
        peers = [
            Peer("a", "hooks disabled", work / "a", {"GITD_HOOKS__ENABLED": "false"}),
            Peer("b", "hooks on, 0 plugins", work / "b", {"GITD_PLUGINS__DISABLED": "policy"}),
            Peer("c", "hooks on, 5 no-op plugins", work / "c",
                 {"GITD_PLUGINS__DISABLED": "policy", "PYTHONPATH": str(site)}),
            Peer("d", "hooks on, defaults (policy)", work / "d", {}),
            Peer("e", "floor: 2 empty sh hooks", work / "e", {"GITD_PLUGINS__DISABLED": "policy"},
                 empty_hooks=True),
        ]
        for peer in peers:
            peer.root.mkdir()
            peer.start()
        source = work / "source"
        make_source(source, args.commits, git_env)
        for peer in peers:  # warm-up push, not counted
            timed_push(source, peer.fresh_repo_url("warmup"), git_env)
        for round_no in range(args.rounds):
            order = peers[round_no % len(peers):] + peers[:round_no % len(peers)]
            for peer in order:
                measured_push(peer, source, f"r{round_no}", git_env)
            time.sleep(0.2)  # let post-receive jobs drain between rounds
    finally:
        for peer in peers:
            peer.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    base = peers[0]
    print(f"hooks overhead: one push of {args.commits} commits, {args.rounds} rounds, git over Smart HTTP")
    print(f"{'':3}{'daemon':30}{'median s':>10}{'ratio':>8}{'mean cpu ms':>13}{'cpu ratio':>10}")
    results: dict[str, object] = {"commits": args.commits, "rounds": args.rounds, "peers": {}}
    worst = 0.0
    for peer in peers:
        median = statistics.median(peer.times)
        ratio = statistics.median(t / b for t, b in zip(peer.times, base.times, strict=True))
        cpu = statistics.fmean(peer.cpu)
        cpu_ratio = cpu / statistics.fmean(base.cpu)
        results["peers"][peer.label] = {"what": peer.what, "median_s": median, "ratio_to_a": ratio,
                                        "cpu_mean_s": cpu, "cpu_ratio_to_a": cpu_ratio,
                                        "times_s": peer.times, "cpu_s": peer.cpu}
        mark = ""
        if peer.label in ("b", "c"):
            worst = max(worst, ratio)
            mark = "  ok" if ratio <= TARGET else f"  OVER {TARGET:.2f}"
        print(f"{peer.label:3}{peer.what:30}{median:10.3f}{ratio:8.3f}{cpu * 1000:13.1f}{cpu_ratio:10.3f}{mark}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if worst <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
