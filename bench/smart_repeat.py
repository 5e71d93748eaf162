#!/usr/bin/env python3
"""Per-request cost of the Smart HTTP path: N small clones and N small pushes, one after another.

    .venv/bin/python bench/smart_repeat.py [--rounds 20] [--code DIR]

Starts its own gitd on loopback, then times ``--rounds`` ``git clone --bare`` of a small
repository and ``--rounds`` pushes of one new commit each, and reports the wall time per
operation and the daemon's own CPU time per operation (its git children not counted; on a
busy machine the CPU time is the steadier figure). ``--code DIR`` runs the daemon
from another source tree (e.g. ``git archive`` of an older commit), so a change's
per-request overhead shows as the difference between two runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import Git, GitdServer, save_results


def cpu_seconds(pid: int) -> float:
    """CPU time of process ``pid``'s threads (not its children), in nanoseconds from schedstat."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError):
            pass  # a thread that ended meanwhile
    return total / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--code", help="run the daemon from this source tree")
    args = parser.parse_args()
    if args.code:
        os.environ["PYTHONPATH"] = os.path.abspath(args.code)
        os.chdir(args.code)  # ``python -m`` puts the working directory first on sys.path
    with tempfile.TemporaryDirectory(prefix="gitd-repeat-") as tmp:
        root = Path(tmp)
        d = GitdServer(root / "gitd").start()
        try:
            git = Git(root / "home")
            d.cli("user", "add", "alice")
            token = d.cli("token", "create", "alice").strip()
            d.cli("repo", "create", "alice/r", "--empty")
            url = d.url.replace("http://", f"http://alice:{token}@") + "/alice/r.git"
            work = root / "w"
            work.mkdir()
            git("init", "-q", "-b", "main", cwd=work)
            for i in range(20):
                (work / f"f{i}.txt").write_text(f"file {i}\n" * 50)
            git("add", "-A", cwd=work)
            git("commit", "-q", "-m", "c", cwd=work)
            git("push", "-q", url, "main", cwd=work)
            clones, pushes = [], []
            assert d.proc is not None
            cpu = [cpu_seconds(d.proc.pid)]
            for i in range(args.rounds):
                started = time.perf_counter()
                git("clone", "-q", "--bare", url, str(root / f"c{i}.git"))
                clones.append(time.perf_counter() - started)
            cpu.append(cpu_seconds(d.proc.pid))
            for i in range(args.rounds):
                (work / "f0.txt").write_text(f"round {i}\n")
                git("commit", "-q", "-am", f"r{i}", cwd=work)
                started = time.perf_counter()
                git("push", "-q", url, "main", cwd=work)
                pushes.append(time.perf_counter() - started)
            cpu.append(cpu_seconds(d.proc.pid))
        finally:
            d.stop()
    results = {"code": args.code or "this tree", "rounds": args.rounds,
               "clone_median_ms": round(statistics.median(clones) * 1000, 1),
               "clone_daemon_cpu_ms": round((cpu[1] - cpu[0]) / args.rounds * 1000, 2),
               "push_median_ms": round(statistics.median(pushes) * 1000, 1),
               "push_daemon_cpu_ms": round((cpu[2] - cpu[1]) / args.rounds * 1000, 2)}
    print(results)
    print("saved", save_results("smart_repeat", results))


if __name__ == "__main__":
    main()
