#!/usr/bin/env python3
"""Memory benchmark: the daemon's peak RSS while it takes a 1 GB push and serves a 1 GB
clone, against a small push.

    .venv/bin/python bench/push_rss.py [--size-mb 1024] [--blob-mb 8]

Starts its own gitd on loopback with a fresh data dir, pushes a commit of incompressible
files (each under the policy's blob limit, so the push passes the pre-receive checks
like any other) and clones it back. The daemon's RSS is sampled every 10 ms from
/proc/PID/status and checked against its kernel high-water mark (VmHWM, reset before
each step). git's own processes are not the daemon and are not counted: what is shown
is that the daemon streams, whatever the pack size.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import WORK, Git, GitdServer, PeakRSS, mib, save_results, timed


def make_work_tree(path: Path, git: Git, *, size_mb: int, blob_mb: int, seed: int) -> str:
    """A work tree with one commit of ``size_mb`` MiB in ``blob_mb`` MiB random files (cached)."""
    marker = path / ".done"
    if not marker.exists():
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        git("init", "-q", "-b", "main", cwd=path)
        rng = random.Random(seed)
        for i in range(size_mb // blob_mb):
            (path / f"shard-{i:04d}.bin").write_bytes(rng.randbytes(blob_mb * 1024 * 1024))
        # No compression: random data does not shrink, and zlib would only cost time.
        git("-c", "core.compression=0", "add", ".", cwd=path)
        git("commit", "-q", "-m", f"{size_mb} MiB of weights", cwd=path)
        marker.write_text("")
    return git.out("rev-parse", "HEAD", cwd=path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=int, default=1024, help="size of the big push, MiB")
    ap.add_argument("--blob-mb", type=int, default=8, help="size of each file, MiB (policy limit: 10 MiB)")
    ap.add_argument("--keep", action="store_true", help="keep the daemon's temporary directory")
    args = ap.parse_args()

    WORK.mkdir(parents=True, exist_ok=True)
    git = Git(WORK / "home")
    print(f"preparing a {args.size_mb} MiB commit (cached under {WORK}) ...", flush=True)
    big_tree = WORK / f"rss-tree-{args.size_mb}m-{args.blob_mb}m"
    head = make_work_tree(big_tree, git, size_mb=args.size_mb, blob_mb=args.blob_mb, seed=7)
    small_tree = WORK / "rss-tree-small"
    if not small_tree.exists():
        small_tree.mkdir()
        git("init", "-q", "-b", "main", cwd=small_tree)
        (small_tree / "README.md").write_text("a small model card\n")
        git("add", ".", cwd=small_tree)
        git("commit", "-q", "-m", "small", cwd=small_tree)

    tmp = Path(tempfile.mkdtemp(prefix="gitd-rss-", dir=WORK))
    gitd = GitdServer(tmp / "gitd", {"server.log_level": "warning"})
    try:
        gitd.start()
        assert gitd.proc is not None
        pid = gitd.proc.pid
        gitd.cli("user", "add", "bench")
        token = gitd.cli("token", "create", "bench").strip()
        for name in ("small", "big"):
            gitd.cli("repo", "create", f"bench/{name}", "--empty")
        auth = gitd.url.replace("http://", f"http://bench:{token}@")
        steps: dict[str, dict[str, float]] = {}

        def step(name: str, *cmd: str, cwd: Path | None = None) -> None:
            with PeakRSS(pid) as m, timed() as t:
                git(*cmd, cwd=cwd)
            steps[name] = {"rss_before": m.start, "rss_peak": m.peak, "growth": m.peak - m.start, "seconds": t[0],
                           "anon_before": m.anon_start, "anon_peak": m.anon_peak}
            print(f"{name:<12} {t[0]:7.1f}s   RSS {mib(m.start)} -> peak {mib(m.peak)} (+{mib(m.peak - m.start)}); "
                  f"anonymous {mib(m.anon_start)} -> {mib(m.anon_peak)}", flush=True)

        step("small push", "push", "-q", f"{auth}/bench/small.git", "main", cwd=small_tree)
        step("small clone", "clone", "-q", "--bare", f"{gitd.url}/bench/small.git", str(tmp / "small.git"))
        # pack.window=0: git would spend minutes looking for deltas between random files.
        step("big push", "-c", "pack.window=0", "-c", "pack.compression=0", "push", "-q",
             f"{auth}/bench/big.git", "main", cwd=big_tree)
        step("big clone", "clone", "-q", "--bare", f"{gitd.url}/bench/big.git", str(tmp / "big.git"))
        assert git.out("--git-dir", str(tmp / "big.git"), "rev-parse", "main") == head
        pack = sum(p.stat().st_size for p in (gitd.repo_path("bench/big") / "objects" / "pack").glob("*.pack"))

        baseline = max(steps["small push"]["rss_peak"], steps["small clone"]["rss_peak"])
        print(f"\npack size {mib(pack)}; daemon peak RSS with small transfers {mib(baseline)}")
        for name in ("big push", "big clone"):
            peak = steps[name]["rss_peak"]
            anon = steps[name]["anon_peak"] - steps["small push"]["anon_peak"]
            print(f"{name}: peak {mib(peak)} = {peak / baseline:.2f}x the small-transfer peak; "
                  f"growth {mib(peak - baseline)} = {(peak - baseline) / pack:.2%} of the pack "
                  f"(anonymous memory {anon / 2**20:+.1f} MiB)")
        path = save_results("push_rss", {"args": vars(args), "pack_bytes": pack, "steps": steps,
                                         "cpus": os.cpu_count()})
        print(f"results: {path}")
    finally:
        gitd.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
