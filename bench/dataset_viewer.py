"""The dataset viewer, side by side with DuckDB on the same files, on loopback.

    .venv/bin/python bench/dataset_viewer.py [--csv-gb 1] [--parquet-gb 1] [--search-rows 1000000] [--rounds 20]

It generates three datasets (DuckDB writes them: an id, a label, a score and a text of
twelve words from a 5,000-word vocabulary per row), starts a gitd daemon of its own, pushes
them with git and git-lfs, and measures:

* **conversion**: the CSV dataset (``--csv-gb``) converted to Parquet by the daemon's job
  (its log says how long the conversion took, the rest of the job apart), against
  ``COPY (SELECT * FROM read_csv(...)) TO ... (FORMAT parquet)`` in a DuckDB process of its
  own on the same file; the daemon's peak RSS during the job (kernel high-water mark);
* **first rows** of the Parquet dataset (``--parquet-gb``, already Parquet, so not
  converted): ``/first-rows`` cold (the first request to a freshly started daemon) and
  warm; ``/rows`` for pages not yet cached (DuckDB over the local file); DuckDB's own
  ``SELECT * ... LIMIT 100`` on a fresh connection (cold) and again (warm);
* **search and filter** over the search dataset (``--search-rows`` rows): ``/search`` and
  ``/filter?where=id = K`` with queries never asked before (so never cached), and the same
  query asked again; DuckDB running the same two statements (page and count) directly on the
  split's Parquet file.

Every HTTP figure is a request on a kept-alive connection, timed by the client. Results
go to bench/results/dataset-viewer-<time>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import http.client
import json
import random
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import WORK, Git, GitdServer, rss, save_results

V = "/api/plugins/datasets"
ROW_BYTES = {"csv": 129, "parquet": 41}  # about what one generated row takes


def generate(path: Path, rows: int, fmt: str) -> None:
    words = [f"w{chr(97 + i % 26)}{i:04d}{'abcdefghijklmnopqrstuvwxyz'[i % 7:i % 7 + (i % 5)]}" for i in range(5000)]
    text = " || ' ' || ".join(f"list_element($words, (hash(i * {k + 7}) % 5000)::BIGINT + 1)" for k in range(12))
    query = (f"SELECT i AS id, ['pos', 'neg', 'neu'][(hash(i) % 3)::BIGINT + 1] AS label, "
             f"(hash(i * 3) % 1000000) / 1000000.0 AS score, {text} AS text FROM range({rows}) t(i)")
    options = "FORMAT csv, HEADER true" if fmt == "csv" else "FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 100000"
    db = duckdb.connect()
    db.execute("SET VARIABLE words = ?", [words])
    select = query.replace("$words", "getvariable('words')")
    db.execute(f"COPY ({select}) TO '{path}' ({options})")
    db.close()


def dataset_file(work: Path, name: str, gb: float, fmt: str) -> Path:
    path = work / f"{name}.{fmt}"
    if not path.exists():
        rows = int(gb * 1e9 / ROW_BYTES[fmt])
        print(f"generating {path.name}: {rows:,} rows ...", flush=True)
        generate(path, rows, fmt)
    print(f"{path.name}: {path.stat().st_size / 1e9:.2f} GB", flush=True)
    return path


class Client:
    def __init__(self, url: str):
        parts = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)

    def get(self, path: str, **params: object) -> tuple[float, int, dict]:
        started = time.perf_counter()
        self.conn.request("GET", f"{path}?{urllib.parse.urlencode(params)}")
        resp = self.conn.getresponse()
        body = resp.read()
        elapsed = time.perf_counter() - started
        return elapsed, resp.status, json.loads(body) if body else {}


def push(server: GitdServer, git: Git, token: str, repo: str, work: Path, files: dict[str, Path]) -> str:
    tree = work / repo.replace("/", "-")
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=tree)
    git("lfs", "install", "--local", cwd=tree)
    git("lfs", "track", "*.csv", "*.parquet", cwd=tree)
    for name, source in files.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).hardlink_to(source)
    git("add", "-A", cwd=tree)
    git("commit", "-q", "-m", "data", cwd=tree)
    url = server.url.replace("http://", f"http://u:{token}@") + f"/datasets/{repo}.git"
    git("push", "-q", url, "main", cwd=tree)
    return git.out("rev-parse", "HEAD", cwd=tree)


def wait_processed(server: GitdServer, repo: str, head: str, timeout: float = 3600) -> float:
    client, started = Client(server.url), time.monotonic()
    while time.monotonic() - started < timeout:
        client.conn.request("GET", f"{V}/parquet?dataset={repo}")
        resp = client.conn.getresponse()
        resp.read()
        if resp.getheader("X-Revision") == head:
            return time.monotonic() - started
        time.sleep(0.2)
    raise RuntimeError(f"{repo} was not processed in {timeout}s")


DUCKDB_COPY = """import duckdb, resource, time
db = duckdb.connect()
db.execute("SET enable_progress_bar = false")
t = time.perf_counter()
db.execute("COPY (SELECT * FROM read_csv('%s')) TO '%s' (FORMAT parquet)")
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def duckdb_copy(csv: Path, out: Path) -> tuple[float, float]:
    """``COPY (SELECT * FROM read_csv(csv)) TO out (FORMAT parquet)`` in a DuckDB process of its
    own: (seconds, peak RSS in bytes)."""
    peer = subprocess.run([sys.executable, "-c", DUCKDB_COPY % (csv, out)], capture_output=True, text=True,
                          check=True)
    seconds, peak = (float(x) for x in peer.stdout.split()[-2:])
    return seconds, peak


class Timeline:
    """The daemon's RSS every 20 ms, with the wall-clock time, to find the peak of a phase."""

    def __init__(self, pid: int):
        self.pid, self.points, self._stop = pid, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            with contextlib.suppress(OSError, KeyError):
                self.points.append((time.time(), rss(self.pid), rss(self.pid, "RssAnon")))

    def peak(self, start: float, end: float) -> tuple[int, int]:
        inside = [(r, a) for t, r, a in self.points if start <= t <= end] or [(0, 0)]
        return max(r for r, _ in inside), max(a for _, a in inside)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def log_phases(log: str, repo: str) -> list[tuple[float, float, float]]:
    """(start, end, seconds) of each conversion of ``repo``'s train split the daemon logged."""
    out = []
    for stamp, seconds in re.findall(rf"^(\S+ \S+) INFO gitd.plugins.datasets: dataset {re.escape(repo)}: "
                                     r"default/train converted: .* in ([0-9.]+)s$", log, re.M):
        end = datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
        out.append((end - float(seconds), end, float(seconds)))
    return out


def stats(values: list[float]) -> dict[str, float]:
    ms = sorted(v * 1000 for v in values)
    return {"p50_ms": round(statistics.median(ms), 2), "max_ms": round(ms[-1], 2), "n": len(ms)}


def duckdb_times(fn, rounds: int) -> list[float]:
    out = []
    for i in range(rounds):
        started = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv-gb", type=float, default=1.0)
    parser.add_argument("--parquet-gb", type=float, default=1.0)
    parser.add_argument("--search-rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--conversions", type=int, default=3, help="conversions of the CSV, each beside DuckDB's")
    parser.add_argument("--work", type=Path, default=WORK / "dataset_viewer")
    args = parser.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    csv = dataset_file(work, f"text-{args.csv_gb:g}gb", args.csv_gb, "csv")
    big = dataset_file(work, f"big-{args.parquet_gb:g}gb", args.parquet_gb, "parquet")
    search_csv = work / f"search-{args.search_rows}.csv"
    if not search_csv.exists():
        generate(search_csv, args.search_rows, "csv")
    results: dict = {"files": {"csv_bytes": csv.stat().st_size, "parquet_bytes": big.stat().st_size,
                               "search_rows": args.search_rows}}

    root = work / "gitd"
    shutil.rmtree(root, ignore_errors=True)
    server = GitdServer(root, {"jobs.timeout": "0", "jobs.workers": "1", "plugins.datasets.cache_size": "40GiB"})
    server.start()
    try:
        server.cli("user", "add", "bench")
        token = server.cli("token", "create", "bench", "--scope", "write", "--name", "bench").strip()
        git = Git(work / "home")
        for name in ("text", "big", "search"):
            server.cli("repo", "create", f"bench/{name}", "--type", "dataset", "--empty")

        # -- conversion, interleaved with the peer ---------------------------------------------------
        idle = rss(server.proc.pid)
        timeline = Timeline(server.proc.pid)
        jobs, peers = [], []
        started = time.time()
        head = push(server, git, token, "bench/text", work, {"data/train.csv": csv})
        jobs.append(wait_processed(server, "bench/text", head))
        job_ends = [time.time()]
        for _ in range(args.conversions - 1):
            peers.append(duckdb_copy(csv, work / "duckdb-copy.parquet"))
            queued = time.monotonic()
            job = server.cli("datasets", "refresh", "bench/text").split("job ")[1].split()[0]
            while not re.search(rf"^{job}\s+done\b", server.cli("jobs", "list", "--limit", "20"), re.M):
                time.sleep(0.5)
            jobs.append(time.monotonic() - queued)
            job_ends.append(time.time())
        peers.append(duckdb_copy(csv, work / "duckdb-copy.parquet"))
        timeline.stop()
        phases = log_phases((root / "gitd.log").read_text(), "bench/text")
        conversion_peak = max(timeline.peak(start, end) for start, end, _ in phases)
        job_peak = timeline.peak(started, job_ends[-1])
        gitd_seconds = statistics.median(p[2] for p in phases)
        duck_seconds = statistics.median(p[0] for p in peers)
        results["conversion"] = {
            "gitd_job_seconds_each": [round(j, 1) for j in jobs],
            "gitd_seconds_each": [round(p[2], 2) for p in phases],
            "duckdb_copy_seconds_each": [round(p[0], 2) for p in peers],
            "ratio_of_medians": round(gitd_seconds / duck_seconds, 2),
            "gitd_idle_rss_mib": round(idle / 2**20),
            "gitd_peak_rss_mib_converting": round(conversion_peak[0] / 2**20),
            "gitd_peak_anon_rss_mib_converting": round(conversion_peak[1] / 2**20),
            "gitd_peak_rss_mib_whole_jobs": round(job_peak[0] / 2**20),
            "duckdb_peak_rss_mib": round(max(p[1] for p in peers) / 2**20)}
        print("conversion", results["conversion"], flush=True)

        head = push(server, git, token, "bench/big", work, {"data/train.parquet": big})
        results["big_job_seconds"] = round(wait_processed(server, "bench/big", head), 1)
        head = push(server, git, token, "bench/search", work, {"data/train.csv": search_csv})
        results["search_job_seconds"] = round(wait_processed(server, "bench/search", head), 1)

        # -- first rows of the 1 GB Parquet split ---------------------------------------------------
        split = {"dataset": "bench/big", "config": "default", "split": "train"}
        cold = []
        for _ in range(3):
            server.stop()
            server.start()
            cold.append(Client(server.url).get(f"{V}/first-rows", **split)[0])
        client = Client(server.url)
        warm = [client.get(f"{V}/first-rows", **split)[0] for _ in range(args.rounds)]
        pages = [client.get(f"{V}/rows", **split, offset=1000 * (i + 1), length=100)[0] for i in range(args.rounds)]
        again = [client.get(f"{V}/rows", **split, offset=1000, length=100)[0] for _ in range(args.rounds)]
        local = max((root / "data" / "plugins" / "datasets" / "files").glob("[0-9a-f]*.parquet"),
                    key=lambda p: p.stat().st_size)

        def duck_cold(i: int) -> None:
            duckdb.connect().execute("SELECT * FROM read_parquet(?) LIMIT 100", [str(local)]).fetchall()

        db = duckdb.connect()

        def duck_warm(i: int) -> None:
            db.execute("SELECT * FROM read_parquet(?) LIMIT 100 OFFSET ?", [str(local), 1000 * (i + 1)]).fetchall()

        results["first_rows_1gb"] = {
            "gitd_first_rows_cold": stats(cold), "gitd_first_rows_warm": stats(warm),
            "gitd_rows_uncached_page": stats(pages), "gitd_rows_cached_page": stats(again),
            "duckdb_fresh_connection": stats(duckdb_times(duck_cold, 5)),
            "duckdb_warm_connection": stats(duckdb_times(duck_warm, args.rounds))}
        print("first rows", results["first_rows_1gb"], flush=True)

        # -- search and filter over 1M rows ---------------------------------------------------------
        split = {"dataset": "bench/search", "config": "default", "split": "train"}
        vocabulary = duckdb.execute(f"SELECT DISTINCT split_part(text, ' ', 1) FROM read_csv('{search_csv}') "
                                    "LIMIT 200").fetchall()
        words = [w for (w,) in vocabulary]
        random.Random(1).shuffle(words)
        searched = [client.get(f"{V}/search", **split, query=words[i].upper())[0] for i in range(args.rounds)]
        repeated = [client.get(f"{V}/search", **split, query=words[0].upper())[0] for _ in range(args.rounds)]
        total = client.get(f"{V}/search", **split, query=words[0])[2]["num_rows_total"]
        ids = random.Random(2).sample(range(args.search_rows), args.rounds)
        filtered = [client.get(f"{V}/filter", **split, where=f"id = {k}")[0] for k in ids]
        refiltered = [client.get(f"{V}/filter", **split, where=f"id = {ids[0]}")[0] for _ in range(args.rounds)]
        files = (root / "data" / "plugins" / "datasets" / "files").glob("[0-9a-f]*.parquet")
        split_file = str(next(p for p in files if pq.read_metadata(p).num_rows == args.search_rows))
        peer = duckdb.connect(config={"threads": "2"})

        def duck_search(i: int) -> None:
            q = words[i].lower()
            peer.execute("SELECT count(*) FROM read_parquet(?) WHERE contains(lower(text), ?)", [split_file, q])
            peer.execute("SELECT * FROM read_parquet(?) WHERE contains(lower(text), ?) LIMIT 100",
                         [split_file, q]).fetchall()

        def duck_filter(i: int) -> None:
            peer.execute("SELECT count(*) FROM read_parquet(?) WHERE id = ?", [split_file, ids[i]])
            peer.execute("SELECT * FROM read_parquet(?) WHERE id = ? LIMIT 100", [split_file, ids[i]]).fetchall()

        results["search_1m"] = {"matches_of_a_query": total, "gitd_search_uncached": stats(searched),
                                "gitd_search_cached": stats(repeated),
                                "duckdb_same_statements": stats(duckdb_times(duck_search, args.rounds))}
        results["filter_1m"] = {"gitd_filter_uncached": stats(filtered), "gitd_filter_cached": stats(refiltered),
                                "duckdb_same_statements": stats(duckdb_times(duck_filter, args.rounds))}
        print("search", results["search_1m"], flush=True)
        print("filter", results["filter_1m"], flush=True)
    finally:
        server.stop()
    print(json.dumps(results, indent=2))
    print("results:", save_results("dataset-viewer", results))


if __name__ == "__main__":
    main()
