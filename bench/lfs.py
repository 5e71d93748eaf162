"""Git LFS transfer benchmark: gitd side by side with its peers, in one run.

    .venv/bin/python bench/lfs.py [--rounds 3] [--big-mb 2048] [--small 200] [--only local|s3]

Workloads: upload and download of one big object (2 GiB) and of many small ones
(200 x 1 MiB), each as the LFS basic transfer does it: batch request, then PUT or GET
of every object (curl, 8 transfers at a time, like git-lfs's ``lfs.concurrenttransfers``),
then the verify calls.

* local storage: gitd vs giftless 0.6.2 (local storage, under uWSGI as its docs show,
  with HTTP keep-alive on), vs a raw ``cp`` of the same bytes, and (downloads) vs nginx
  sending the very files gitd stores, the ceiling for any HTTP server;
* S3 storage (SeaweedFS ``weed mini``): gitd (uploads stream through the daemon;
  downloads both presigned and streamed by the daemon) vs the minio client putting and
  getting the same files directly.

Every contender runs each workload ``--rounds`` times, interleaved. The report gives
median seconds, MB/s and gitd's throughput divided by the peer's (>1: gitd faster);
for servers on this machine also the server's CPU seconds and the peer's CPU divided
by gitd's (>1: gitd cheaper), which stays meaningful on a busy machine; and the
daemon's peak RSS before and after each workload. Targets (issue 4): download >= 0.9
of the raw baseline, upload >= giftless. Everything runs on loopback under
bench/.work/lfs; results are also written to bench/results/lfs-<time>.json.
Needs curl and nginx, and the bench extra: pip install -e '.[bench]'.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lfs_peers import (
    ROOT,
    Objects,
    giftless,
    gitd_empty,
    group_cpu,
    nginx,
    peak_rss,
    start_gitd,
    static_download,
    via_daemon,
)

from tests.lfs_support import sha256_file
from tests.seaweed import start_seaweed

MB = 1000 * 1000
MIB = 1024 * 1024


# -- data --------------------------------------------------------------------------------------
def make_file(path: Path, size: int) -> None:
    if path.exists() and path.stat().st_size == size:
        return
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(16 * MIB, left))
            f.write(block)
            left -= len(block)


def objects_in(paths: list[Path]) -> Objects:
    return [(p, sha256_file(p), p.stat().st_size) for p in paths]


def check_download(objects: Objects, into: Path) -> None:
    for path, oid, size in objects[:: max(1, len(objects) // 5)]:
        got = into / path.name
        if got.stat().st_size != size or (size <= 64 * MIB and sha256_file(got) != oid):
            raise RuntimeError(f"download of {path.name} is wrong")


def fresh(work: Path, name: str) -> Path:
    path = work / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


# -- measuring ----------------------------------------------------------------------------------
class Results:
    def __init__(self) -> None:
        self.times: dict[tuple[str, str, str], list[float]] = {}
        self.cpu: dict[tuple[str, str, str], list[float]] = {}
        self.bytes: dict[str, int] = {}
        self.notes: dict[str, object] = {}

    def measure(self, key: tuple[str, str, str], cpu: Callable[[], float] | None, run: Callable[..., object],
                *args: object) -> None:
        print(f"  {' / '.join(key)} ...", end="", flush=True, file=sys.stderr)
        cpu_before = cpu() if cpu else 0.0
        started = time.perf_counter()
        run(*args)
        elapsed = time.perf_counter() - started
        self.times.setdefault(key, []).append(elapsed)
        if cpu is not None:
            self.cpu.setdefault(key, []).append(cpu() - cpu_before)
        print(f" {elapsed:.2f}s", file=sys.stderr)

    def report(self, comparisons: list[tuple[str, str, str, str]]) -> list[dict]:
        rows = []
        for workload, direction, ours, theirs in comparisons:
            mine, peer = (workload, direction, ours), (workload, direction, theirs)
            if mine not in self.times or peer not in self.times:
                continue
            a, b = statistics.median(self.times[mine]), statistics.median(self.times[peer])
            size = self.bytes[workload]
            row = {"workload": workload, "direction": direction, "gitd": ours, "peer": theirs,
                   "gitd_s": round(a, 3), "peer_s": round(b, 3), "gitd_MBps": round(size / a / MB),
                   "peer_MBps": round(size / b / MB), "ratio": round(b / a, 2)}
            if mine in self.cpu and peer in self.cpu:
                ca, cb = statistics.median(self.cpu[mine]), statistics.median(self.cpu[peer])
                row.update(gitd_cpu_s=round(ca, 2), peer_cpu_s=round(cb, 2),
                           cpu_ratio=round(cb / ca, 2) if ca else None)
            rows.append(row)
        return rows


def cp(sources: list[Path], into: Path) -> None:
    subprocess.run(["cp", *map(str, sources), str(into)], check=True)


def minio_put(client, bucket: str, objects: Objects) -> None:
    for path, oid, _ in objects:
        client.fput_object(bucket, oid, str(path))


def minio_get(client, bucket: str, objects: Objects, into: Path) -> None:
    for path, oid, _ in objects:
        client.fget_object(bucket, oid, str(into / path.name))


# -- the runs -----------------------------------------------------------------------------------
def run_local(work: Path, workloads: dict[str, Objects], rounds: int, results: Results) -> None:
    d, gitd, _ = start_gitd(work, "gitd-local", {})
    gitd_cpu = lambda: group_cpu(d.proc.pid)  # noqa: E731
    reset_gitd = gitd_empty(d)
    try:
        with giftless(work) as (peer, peer_storage, label, peer_cpu), \
                nginx(work, d.data / "lfs" / "objects") as (static, static_cpu):
            results.notes["giftless server"] = label

            def reset_peer() -> None:
                shutil.rmtree(peer_storage)
                peer_storage.mkdir()

            for workload, objects in workloads.items():
                rss_before = peak_rss(d)
                sources = [p for p, _, _ in objects]
                for n in range(rounds):
                    print(f"local {workload}, round {n + 1}/{rounds}", file=sys.stderr)
                    for name, lfs, reset, cpu in (("gitd-local", gitd, reset_gitd, gitd_cpu),
                                                  ("giftless", peer, reset_peer, peer_cpu)):
                        reset()
                        results.measure((workload, "upload", name), cpu, lfs.upload, objects)
                        into = fresh(work, "down")
                        results.measure((workload, "download", name), cpu, lfs.download, objects, into)
                        check_download(objects, into)
                    into = fresh(work, "down")  # gitd's files, sent by nginx
                    results.measure((workload, "download", "nginx"), static_cpu, static_download, static,
                                    objects, into)
                    check_download(objects, into)
                    uploaded = fresh(work, "cp-up")
                    results.measure((workload, "upload", "cp"), None, cp, sources, uploaded)
                    results.measure((workload, "download", "cp"), None, cp, [uploaded / p.name for p in sources],
                                    fresh(work, "cp-down"))
                results.notes[f"gitd-local peak RSS MiB before/after {workload}"] = [rss_before // MIB,
                                                                                     peak_rss(d) // MIB]
    finally:
        d.stop()


def run_s3(work: Path, workloads: dict[str, Objects], rounds: int, results: Results) -> None:
    seaweed = start_seaweed(work / "seaweed")
    try:
        d, gitd, token = start_gitd(work, "gitd-s3", seaweed.gitd_settings(seaweed.make_bucket("bench-gitd")))
        gitd_cpu = lambda: group_cpu(d.proc.pid)  # noqa: E731
        streamed = via_daemon(gitd, token)
        reset_gitd = gitd_empty(d)
        client = seaweed.client()
        direct = seaweed.make_bucket("bench-direct")
        try:
            for workload, objects in workloads.items():
                rss_before = peak_rss(d)
                for n in range(rounds):
                    print(f"s3 {workload}, round {n + 1}/{rounds}", file=sys.stderr)
                    reset_gitd()
                    results.measure((workload, "upload", "gitd-s3"), gitd_cpu, gitd.upload, objects)
                    for name, lfs in (("gitd-s3 presigned", gitd), ("gitd-s3 via daemon", streamed)):
                        into = fresh(work, "down")
                        results.measure((workload, "download", name), gitd_cpu, lfs.download, objects, into)
                        check_download(objects, into)
                    results.measure((workload, "upload", "minio"), None, minio_put, client, direct, objects)
                    into = fresh(work, "down")
                    results.measure((workload, "download", "minio"), None, minio_get, client, direct, objects, into)
                    check_download(objects, into)
                results.notes[f"gitd-s3 peak RSS MiB before/after {workload}"] = [rss_before // MIB,
                                                                                  peak_rss(d) // MIB]
        finally:
            d.stop()
    finally:
        seaweed.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--big-mb", type=int, default=2048, help="size of the big object in MiB (default 2048)")
    parser.add_argument("--small", type=int, default=200, help="how many 1 MiB objects (default 200)")
    parser.add_argument("--only", choices=("local", "s3"))
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / ".work" / "lfs")
    args = parser.parse_args()
    for tool in ("curl", "nginx"):
        if shutil.which(tool) is None:
            sys.exit(f"bench/lfs.py needs {tool}")
    data = args.work / "data"
    (data / "small").mkdir(parents=True, exist_ok=True)
    make_file(data / "big.bin", args.big_mb * MIB)
    smalls = [data / "small" / f"s{i:04d}.bin" for i in range(args.small)]
    for path in smalls:
        make_file(path, MIB)
    workloads = {f"1x{args.big_mb}MiB": objects_in([data / "big.bin"]), f"{args.small}x1MiB": objects_in(smalls)}
    results = Results()
    results.bytes = {name: sum(size for _, _, size in objects) for name, objects in workloads.items()}

    comparisons = []
    if args.only in (None, "local"):
        run_local(args.work, workloads, args.rounds, results)
        for w in workloads:
            comparisons += [(w, "upload", "gitd-local", "giftless"), (w, "upload", "gitd-local", "cp"),
                            (w, "download", "gitd-local", "giftless"), (w, "download", "gitd-local", "nginx"),
                            (w, "download", "gitd-local", "cp")]
    if args.only in (None, "s3"):
        run_s3(args.work, workloads, args.rounds, results)
        for w in workloads:
            comparisons += [(w, "upload", "gitd-s3", "minio"), (w, "download", "gitd-s3 presigned", "minio"),
                            (w, "download", "gitd-s3 via daemon", "minio")]
    rows = results.report(comparisons)

    print(f"\nLFS benchmark, medians of {args.rounds} rounds. ratio: gitd throughput / peer throughput; "
          "cpu ratio: peer server CPU / gitd server CPU (>1 is better for gitd in both)")
    print(f"{'workload':<11} {'dir':<8} {'gitd':<19} {'peer':<8} {'gitd MB/s':>9} {'peer MB/s':>9} {'ratio':>6} "
          f"{'gitd cpu':>8} {'peer cpu':>8} {'cpu ratio':>9}")
    for r in rows:
        cpu = (f"{r['gitd_cpu_s']:>7.2f}s {r['peer_cpu_s']:>7.2f}s {r['cpu_ratio']:>9}" if "cpu_ratio" in r
               else f"{'-':>8} {'-':>8} {'-':>9}")
        print(f"{r['workload']:<11} {r['direction']:<8} {r['gitd']:<19} {r['peer']:<8} {r['gitd_MBps']:>9} "
              f"{r['peer_MBps']:>9} {r['ratio']:>6.2f} {cpu}")
    for key, value in results.notes.items():
        print(f"{key}: {value}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"lfs-{time.strftime('%Y%m%d-%H%M%S')}.json"
    target.write_text(json.dumps({"rounds": args.rounds, "rows": rows, "notes": results.notes,
                                  "seconds": {" / ".join(k): v for k, v in results.times.items()},
                                  "cpu_seconds": {" / ".join(k): v for k, v in results.cpu.items()}}, indent=2))
    print(f"results: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
