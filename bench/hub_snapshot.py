"""Hub API benchmark, downloads: ``snapshot_download`` against ``git clone`` + ``git lfs pull``.

    .venv/bin/python bench/hub.py snapshot [--small 500] [--lfs-mb 512] [--lfs-files 2] [--rounds 3]

Starts its own gitd (fresh data dir, local LFS storage) on loopback and pushes one
model repository to it with git and git-lfs: ``--small`` small files (1-8 KiB) and
``--lfs-files`` LFS files of ``--lfs-mb`` MiB each. Then, alternating, in rounds:

* the Hub route: huggingface_hub's ``snapshot_download`` (its defaults: 8 threads,
  HEAD + GET per file) into an empty cache;
* the git route: ``git clone`` (LFS smudge skipped) then ``git lfs pull`` (git-lfs'
  defaults: 8 concurrent transfers) into an empty directory.

Both fetch the same bytes from the same daemon, which serves LFS objects with
sendfile on both routes. It reports wall time, throughput and the daemon's CPU time
per route (medians over rounds) and the median ratio Hub / git (target: <= 1.2).
Every download is checked (sha256 of the LFS files, byte count of the rest).
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import statistics
import time
from pathlib import Path

from benchlib import Git, GitdServer

MIB = 1024 * 1024


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * MIB):
            h.update(block)
    return h.hexdigest()


def build_repo(work: Path, git: Git, small: int, lfs_files: int, lfs_mb: int) -> dict[str, tuple[int, str]]:
    """A work tree with the files; returns {path: (size, sha256 for LFS files or '')}."""
    rng = random.Random(7)
    git("init", "-q", "-b", "main", str(work))
    git("lfs", "track", "*.safetensors", cwd=work)
    expected: dict[str, tuple[int, str]] = {}
    for i in range(small):
        path = work / f"shard{i % 10}" / f"file{i:04d}.json"
        path.parent.mkdir(exist_ok=True)
        data = rng.randbytes(rng.randint(1024, 8192)).hex()[: rng.randint(1024, 8192)].encode()
        path.write_bytes(data)
        expected[str(path.relative_to(work))] = (len(data), "")
    for i in range(lfs_files):
        path = work / f"model-{i + 1:05d}-of-{lfs_files:05d}.safetensors"
        h = hashlib.sha256()
        block = os.urandom(MIB)
        with open(path, "wb") as f:
            for n in range(lfs_mb):
                piece = block[n % 1024:] + block[:n % 1024]  # every MiB different, cheaply
                f.write(piece)
                h.update(piece)
        expected[path.name] = (lfs_mb * MIB, h.hexdigest())
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "model", cwd=work)
    return expected


def check(root: Path, expected: dict[str, tuple[int, str]]) -> None:
    for name, (size, sha) in expected.items():
        path = root / name
        if path.stat().st_size != size or (sha and sha256_file(path) != sha):
            raise RuntimeError(f"{name}: wrong content downloaded")


def hub_route(url: str, token: str, repo: str, into: Path) -> Path:
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo, endpoint=url, token=token, cache_dir=into))


def git_route(git: Git, url: str, into: Path) -> Path:
    git("-c", "filter.lfs.smudge=git-lfs smudge --skip -- %f", "-c", "filter.lfs.process=git-lfs filter-process --skip",
        "clone", "-q", url, str(into))
    git("lfs", "pull", cwd=into)
    return into


def run(args) -> dict:
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    base = Path(args.work) if args.work else Path(os.environ.get("TMPDIR", "/tmp"))
    work = base / f"gitd-bench-snapshot-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    git = Git(work / "home")
    git("lfs", "install", "--skip-repo")
    server = GitdServer(work / "gitd", {"server.access_log": "false", "server.log_level": "warning"})
    try:
        server.start()
        assert server.proc is not None
        server.cli("user", "add", "bench")
        token = server.cli("token", "create", "bench", "--name", "bench").strip()
        server.cli("repo", "create", "bench/model", "--empty")
        authed = server.url.replace("://", f"://bench:{token}@")
        repo_url = f"{authed}/bench/model.git"
        print(f"building the repository: {args.small} small files + {args.lfs_files} x {args.lfs_mb} MiB LFS files")
        expected = build_repo(work / "src", git, args.small, args.lfs_files, args.lfs_mb)
        t0 = time.perf_counter()
        git("push", "-q", repo_url, "main", cwd=work / "src")
        print(f"pushed in {time.perf_counter() - t0:.1f}s")
        total = sum(size for size, _ in expected.values())
        times: dict[str, list[float]] = {"hub": [], "git": []}
        cpu: dict[str, list[float]] = {"hub": [], "git": []}
        for n in range(args.rounds):
            for route in ("hub", "git") if n % 2 == 0 else ("git", "hub"):
                into = work / f"{route}-{n}"
                subprocess_sync()
                c0, t0 = cpu_seconds(server.proc.pid), time.perf_counter()
                if route == "hub":
                    root = hub_route(server.url, token, "bench/model", into)
                else:
                    root = git_route(git, repo_url, into)
                elapsed = time.perf_counter() - t0
                cpu[route].append(cpu_seconds(server.proc.pid) - c0)
                times[route].append(elapsed)
                check(root, expected)
                print(f"  round {n + 1} {route:3}: {elapsed:6.2f}s  daemon CPU {cpu[route][-1]:5.2f}s")
                shutil.rmtree(into)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    hub, gitt = statistics.median(times["hub"]), statistics.median(times["git"])
    ratios = [h / g for h, g in zip(times["hub"], times["git"], strict=True)]
    report = {
        "files": len(expected), "bytes": total, "rounds": args.rounds,
        "hub_s": hub, "git_s": gitt, "hub_MiB_s": total / MIB / hub, "git_MiB_s": total / MIB / gitt,
        "hub_daemon_cpu_s": statistics.median(cpu["hub"]), "git_daemon_cpu_s": statistics.median(cpu["git"]),
        "ratio_median": statistics.median(ratios),
    }
    print(f"\n{len(expected)} files, {total / MIB:.0f} MiB, median of {args.rounds} rounds")
    print(f"{'route':34} {'seconds':>8} {'MiB/s':>8} {'daemon CPU s':>13}")
    print(f"{'snapshot_download':34} {hub:8.2f} {report['hub_MiB_s']:8.0f} {report['hub_daemon_cpu_s']:13.2f}")
    print(f"{'git clone + git lfs pull':34} {gitt:8.2f} {report['git_MiB_s']:8.0f} {report['git_daemon_cpu_s']:13.2f}")
    print(f"snapshot_download / git route: {report['ratio_median']:.2f}x (median of per-round ratios; target <= 1.2x)")
    return report


def subprocess_sync() -> None:
    """Flush dirty pages of the previous round so it does not slow down this one."""
    os.sync()
