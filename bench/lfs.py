"""Git LFS transfer benchmark: gitd side by side with its peers, in one run.

    .venv/bin/python bench/lfs.py [--rounds 3] [--big-mb 2048] [--small 200] [--only local|s3]

Workloads: upload and download of one big object (2 GB) and of many small ones
(200 x 1 MB), each as the LFS basic transfer does it: batch request, then PUT or GET
of every object (curl, 8 transfers at a time for the small ones, like git-lfs's
``lfs.concurrenttransfers``), then the verify calls.

* local storage: gitd vs giftless 0.6.2 (local storage, run under uWSGI as its docs
  show, with HTTP keep-alive on; or gunicorn with the same 2 processes x 2 threads if
  uWSGI is missing)
  vs a raw ``cp`` of the same bytes;
* S3 storage (SeaweedFS ``weed mini``): gitd (uploads stream through the daemon;
  downloads both as presigned URLs and streamed by the daemon) vs the minio client
  putting and getting the same files directly.

Every contender runs each workload ``--rounds`` times, interleaved; the report gives
median seconds, MB/s and gitd's throughput divided by the peer's (>1: gitd faster),
plus the daemon's peak RSS before and after the big object. Targets (issue 4):
download >= 0.9 of the raw baseline, upload >= giftless. Everything runs on loopback
under bench/.work/lfs; results are also written to bench/results/lfs-<time>.json.
Needs curl, and the bench extra: pip install -e '.[bench]'.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.lfs_support import http, sha256_file, write_settings  # noqa: E402
from tests.seaweed import SeaweedS3, start_seaweed  # noqa: E402
from tests.support import Daemon, new_daemon  # noqa: E402

MB = 1000 * 1000
MIB = 1024 * 1024
LFS_JSON = "application/vnd.git-lfs+json"
PARALLEL = 8
BATCH = 100


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


def objects_in(paths: list[Path]) -> list[tuple[Path, str, int]]:
    return [(p, sha256_file(p), p.stat().st_size) for p in paths]


# -- an LFS server spoken to through its batch API, bytes moved by curl -------------------------
def curl(config: list[str]) -> None:
    """Run one curl with a config of transfers separated by ``next``, PARALLEL at a time."""
    with tempfile.NamedTemporaryFile("w", suffix=".curl", delete=False) as f:
        f.write("\nnext\n".join(config))
    try:
        subprocess.run(["curl", "--no-progress-meter", "--parallel", "--parallel-max", str(PARALLEL), "-K", f.name],
                       check=True, stdout=subprocess.DEVNULL)
    finally:
        os.unlink(f.name)


def _transfer(url: str, headers: dict[str, str], *, upload: Path | None = None, output: Path | None = None,
              data: str | None = None) -> str:
    lines = [f'url = "{url}"', "fail", 'header = "Expect:"']
    lines += [f'header = "{k}: {v}"' for k, v in headers.items()]
    if upload is not None:
        lines.append(f'upload-file = "{upload}"')
    if output is not None:
        lines.append(f'output = "{output}"')
    if data is not None:
        lines += ['request = "POST"', f"data = {json.dumps(data)}"]
    return "\n".join(lines)


class LfsServer:
    def __init__(self, endpoint: str, headers: dict[str, str] | None = None):
        self.endpoint = endpoint  # .../info/lfs
        self.headers = headers or {}

    def batch(self, operation: str, objects: list[tuple[Path, str, int]]) -> list[dict]:
        answered = []
        for i in range(0, len(objects), BATCH):
            # git-lfs sends the ref it pushes; giftless 0.6.2 refuses the spec's "ref": null with 422
            body = {"operation": operation, "transfers": ["basic"], "ref": {"name": "refs/heads/main"},
                    "hash_algo": "sha256",
                    "objects": [{"oid": oid, "size": size} for _, oid, size in objects[i:i + BATCH]]}
            reply = http("POST", f"{self.endpoint}/objects/batch", json.dumps(body).encode(),
                         {"Accept": LFS_JSON, "Content-Type": LFS_JSON, **self.headers})
            if reply.status != 200:
                raise RuntimeError(f"batch {operation} failed: {reply.status} {reply.body[:300]!r}")
            answered += reply.json()["objects"]
        return answered

    def upload(self, objects: list[tuple[Path, str, int]]) -> None:
        answered = self.batch("upload", objects)
        puts, verifies = [], []
        for (path, oid, size), obj in zip(objects, answered, strict=True):
            actions = obj.get("actions") or {}
            if "upload" not in actions:
                raise RuntimeError(f"{oid} is already stored: the benchmark must start from empty storage")
            up = actions["upload"]
            puts.append(_transfer(up["href"], up.get("header", {}), upload=path))
            if "verify" in actions:
                v = actions["verify"]
                verifies.append(_transfer(v["href"], {"Content-Type": LFS_JSON, **v.get("header", {})},
                                          data=json.dumps({"oid": oid, "size": size})))
        curl(puts)
        if verifies:
            curl(verifies)

    def download(self, objects: list[tuple[Path, str, int]], into: Path) -> None:
        answered = self.batch("download", objects)
        gets = []
        for (path, _, _), obj in zip(objects, answered, strict=True):
            action = obj["actions"]["download"]
            gets.append(_transfer(action["href"], action.get("header", {}), output=into / path.name))
        curl(gets)


def via_daemon(server: LfsServer, token: str) -> LfsServer:
    """Downloads streamed by the daemon even when it would presign: GET the object URL."""

    class Streamed(LfsServer):
        def download(self, objects: list[tuple[Path, str, int]], into: Path) -> None:
            auth = {"Authorization": f"Bearer {token}"}
            curl([_transfer(f"{self.endpoint}/objects/{oid}", auth, output=into / path.name)
                  for path, oid, _ in objects])

    return Streamed(server.endpoint, server.headers)


# -- peers --------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def giftless(work: Path) -> Iterator[tuple[LfsServer, Path, str]]:
    storage = work / "giftless-storage"
    shutil.rmtree(storage, ignore_errors=True)
    storage.mkdir(parents=True)
    config = work / "giftless.yaml"
    config.write_text(
        "AUTH_PROVIDERS:\n  - giftless.auth.allow_anon:read_write\n"
        "TRANSFER_ADAPTERS:\n  basic:\n    factory: giftless.transfer.basic_streaming:factory\n"
        f"    options:\n      storage_class: giftless.storage.local_storage:LocalStorage\n"
        f"      storage_options:\n        path: {storage}\n"
    )
    port = free_port()
    env = {**os.environ, "GIFTLESS_CONFIG_FILE": str(config), "PYTHONWARNINGS": "ignore"}
    uwsgi = Path(sys.executable).parent / "uwsgi"
    if uwsgi.exists():
        # giftless's documented command line, plus HTTP keep-alive: without it uWSGI's router
        # closes every connection after one response and clients reusing it (curl, git-lfs) fail.
        server = "uWSGI -M -T --threads 2 -p 2 --http-keepalive (giftless's documented setup)"
        cmd = [str(uwsgi), "-M", "-T", "--threads", "2", "-p", "2", "--manage-script-name", "--module",
               "giftless.wsgi_entrypoint", "--callable", "app", "--http", f"127.0.0.1:{port}",
               "--http-keepalive", "--die-on-term", "--disable-logging"]
    else:
        server = "gunicorn -w 2 --threads 2 (uWSGI is not installed)"
        cmd = [sys.executable, "-m", "gunicorn", "-w", "2", "--threads", "2", "-b", f"127.0.0.1:{port}",
               "giftless.wsgi_entrypoint:app"]
    log = open(work / "giftless.log", "wb")  # noqa: SIM115 - owned by the process
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, cwd=work, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"giftless did not start:\n{(work / 'giftless.log').read_text()[-3000:]}")
            time.sleep(0.1)
        yield LfsServer(f"http://127.0.0.1:{port}/bench/repo.git/info/lfs"), storage, server
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def start_gitd(work: Path, name: str, settings: dict[str, object]) -> tuple[Daemon, LfsServer, str]:
    root = work / name
    shutil.rmtree(root, ignore_errors=True)
    d = new_daemon(root)
    write_settings(d.data, {"server.log_level": "warning", **settings})
    d.start()
    user, token = d.user("bench")
    d.repo(user, "repo")
    return d, LfsServer(f"{d.url}/bench/repo.git/info/lfs", {"Authorization": f"Bearer {token}"}), token


def peak_rss(d: Daemon) -> int:
    assert d.proc is not None
    for line in Path(f"/proc/{d.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def gitd_empty(d: Daemon) -> Callable[[], None]:
    """Make gitd forget every object, so the next upload stores it again."""

    def reset() -> None:
        d.cli("repo", "delete", "bench/repo")
        d.cli("lfs", "gc", "--grace", "0")
        d.cli("repo", "create", "bench/repo")

    return reset


# -- measuring ----------------------------------------------------------------------------------
class Results:
    def __init__(self) -> None:
        self.times: dict[tuple[str, str, str], list[float]] = {}
        self.bytes: dict[str, int] = {}
        self.notes: dict[str, object] = {}

    def time(self, workload: str, direction: str, contender: str, run: Callable[..., object], *args: object) -> None:
        started = time.perf_counter()
        run(*args)
        self.times.setdefault((workload, direction, contender), []).append(time.perf_counter() - started)

    def median(self, workload: str, direction: str, contender: str) -> float | None:
        found = self.times.get((workload, direction, contender))
        return statistics.median(found) if found else None

    def report(self, comparisons: list[tuple[str, str, str, str]]) -> list[dict]:
        rows = []
        for workload, direction, ours, theirs in comparisons:
            a, b = self.median(workload, direction, ours), self.median(workload, direction, theirs)
            if a is None or b is None:
                continue
            size = self.bytes[workload]
            rows.append({"workload": workload, "direction": direction, "gitd": ours, "peer": theirs,
                         "gitd_s": round(a, 3), "peer_s": round(b, 3), "gitd_MBps": round(size / a / MB),
                         "peer_MBps": round(size / b / MB), "ratio": round(b / a, 3)})
        return rows


def check_download(objects: list[tuple[Path, str, int]], into: Path) -> None:
    for path, oid, size in objects[:: max(1, len(objects) // 5)]:
        got = into / path.name
        if got.stat().st_size != size or (size <= 64 * MIB and sha256_file(got) != oid):
            raise RuntimeError(f"download of {path.name} is wrong")


def fresh(work: Path, name: str) -> Path:
    path = work / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def cp(sources: list[Path], into: Path) -> None:
    subprocess.run(["cp", *map(str, sources), str(into)], check=True)


def minio_put(client, bucket: str, objects: list[tuple[Path, str, int]]) -> None:
    for path, oid, _ in objects:
        client.fput_object(bucket, oid, str(path))


def minio_get(client, bucket: str, objects: list[tuple[Path, str, int]], into: Path) -> None:
    for path, oid, _ in objects:
        client.fget_object(bucket, oid, str(into / path.name))


def run_local(work: Path, workloads: dict[str, list], rounds: int, results: Results) -> None:
    d, gitd, _ = start_gitd(work, "gitd-local", {})
    reset_gitd = gitd_empty(d)
    try:
        with giftless(work) as (peer, peer_storage, server):
            results.notes["giftless_server"] = server

            def reset_peer() -> None:
                shutil.rmtree(peer_storage)
                peer_storage.mkdir()

            for workload, objects in workloads.items():
                rss_before = peak_rss(d)
                sources = [p for p, _, _ in objects]
                for _ in range(rounds):
                    for name, lfs, reset in (("gitd-local", gitd, reset_gitd), ("giftless", peer, reset_peer)):
                        reset()
                        results.time(workload, "upload", name, lfs.upload, objects)
                        into = fresh(work, "down")
                        results.time(workload, "download", name, lfs.download, objects, into)
                        check_download(objects, into)
                    uploaded = fresh(work, "cp-up")
                    results.time(workload, "upload", "cp", cp, sources, uploaded)
                    results.time(workload, "download", "cp", cp, [uploaded / p.name for p in sources],
                                 fresh(work, "cp-down"))
                results.notes[f"gitd-local peak RSS MiB, {workload}"] = [rss_before // MIB, peak_rss(d) // MIB]
    finally:
        d.stop()


def run_s3(work: Path, workloads: dict[str, list], rounds: int, results: Results) -> None:
    seaweed: SeaweedS3 = start_seaweed(work / "seaweed")
    try:
        bucket = seaweed.make_bucket("bench-gitd")
        d, gitd, token = start_gitd(work, "gitd-s3", seaweed.gitd_settings(bucket))
        streamed = via_daemon(gitd, token)
        reset_gitd = gitd_empty(d)
        client = seaweed.client()
        direct_bucket = seaweed.make_bucket("bench-direct")
        try:
            for workload, objects in workloads.items():
                rss_before = peak_rss(d)
                for _ in range(rounds):
                    reset_gitd()
                    results.time(workload, "upload", "gitd-s3", gitd.upload, objects)
                    for name, lfs in (("gitd-s3 presigned", gitd), ("gitd-s3 via daemon", streamed)):
                        into = fresh(work, "down")
                        results.time(workload, "download", name, lfs.download, objects, into)
                        check_download(objects, into)
                    results.time(workload, "upload", "minio", minio_put, client, direct_bucket, objects)
                    into = fresh(work, "down")
                    results.time(workload, "download", "minio", minio_get, client, direct_bucket, objects, into)
                    check_download(objects, into)
                results.notes[f"gitd-s3 peak RSS MiB, {workload}"] = [rss_before // MIB, peak_rss(d) // MIB]
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
    if shutil.which("curl") is None:
        sys.exit("bench/lfs.py needs curl")
    args.work.mkdir(parents=True, exist_ok=True)
    data = args.work / "data"
    (data / "small").mkdir(parents=True, exist_ok=True)
    make_file(data / "big.bin", args.big_mb * MIB)
    smalls = []
    for i in range(args.small):
        make_file(data / "small" / f"s{i:04d}.bin", MIB)
        smalls.append(data / "small" / f"s{i:04d}.bin")
    workloads = {f"1x{args.big_mb}MiB": objects_in([data / "big.bin"]), f"{args.small}x1MiB": objects_in(smalls)}
    results = Results()
    for name, objects in workloads.items():
        results.bytes[name] = sum(size for _, _, size in objects)

    comparisons = []
    if args.only in (None, "local"):
        run_local(args.work, workloads, args.rounds, results)
        for w in workloads:
            comparisons += [(w, "upload", "gitd-local", "giftless"), (w, "download", "gitd-local", "giftless"),
                            (w, "upload", "gitd-local", "cp"), (w, "download", "gitd-local", "cp")]
    if args.only in (None, "s3"):
        run_s3(args.work, workloads, args.rounds, results)
        for w in workloads:
            comparisons += [(w, "upload", "gitd-s3", "minio"), (w, "download", "gitd-s3 presigned", "minio"),
                            (w, "download", "gitd-s3 via daemon", "minio")]
    rows = results.report(comparisons)

    print(f"\nLFS benchmark, median of {args.rounds} rounds (ratio = gitd throughput / peer throughput)")
    print(f"{'workload':<12} {'dir':<9} {'gitd':<20} {'peer':<9} {'gitd MB/s':>9} {'peer MB/s':>9} {'ratio':>6}")
    for r in rows:
        print(f"{r['workload']:<12} {r['direction']:<9} {r['gitd']:<20} {r['peer']:<9} {r['gitd_MBps']:>9} "
              f"{r['peer_MBps']:>9} {r['ratio']:>6.2f}")
    for key, value in results.notes.items():
        print(f"{key}: {value}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"lfs-{time.strftime('%Y%m%d-%H%M%S')}.json"
    target.write_text(json.dumps({"rounds": args.rounds, "rows": rows, "notes": results.notes,
                                  "raw": {" / ".join(k): v for k, v in results.times.items()}}, indent=2))
    print(f"results: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
