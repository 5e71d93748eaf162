"""Hub API benchmark (phase 1): HEAD /resolve latency and throughput, side by side with nginx.

    .venv/bin/python bench/hub.py [--concurrency 64] [--requests 20000] [--rounds 5]

Starts its own peers on loopback: a gitd daemon (fresh data dir, one model repo with
a few files committed through the Hub API) and nginx serving the same file as a
static file, the floor any HTTP server on this machine can reach. The same aiohttp
load generator (N concurrent clients in a closed loop, keep-alive) sends HEAD requests
to each, alternating rounds; it reports p50/p99 latency and requests per second for
each peer (medians over rounds) and the gitd/nginx ratios. A single-client run shows
the per-request service time without queueing.

Closed-loop latency obeys Little's law (p50 ~ concurrency / throughput), so with 64
clients on 2 shared cores the p50 is dominated by queueing in whichever process is
slower (often the load generator itself); the single-client p50 is the service time.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
FILE = "weights/config.json"
CONTENT = json.dumps({"hidden_size": 8, "vocab": list(range(200))}).encode()


def gitd(data: Path, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "gitd.cli", "--data", str(data), *args], capture_output=True,
                          text=True, check=True, cwd=ROOT)
    return proc.stdout.strip()


@contextlib.contextmanager
def gitd_peer(tmp: Path):
    data = tmp / "gitd"
    gitd(data, "init", str(data))
    gitd(data, "user", "add", "bench")
    token = gitd(data, "token", "create", "bench", "--name", "bench")
    gitd(data, "repo", "create", "bench/model")
    log = open(tmp / "gitd.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "gitd.cli", "--data", str(data), "serve", "--http",
                             "127.0.0.1:0", "--ssh", ""], stdout=log, stderr=log, cwd=ROOT,
                            env={**os.environ, "GITD_SERVER__ACCESS_LOG": "false"}, start_new_session=True)
    info = data / "run" / "serve.json"
    try:
        deadline = time.monotonic() + 30
        while not info.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((tmp / "gitd.log").read_text())
            time.sleep(0.05)
        yield json.loads(info.read_text())["http"], token
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextlib.contextmanager
def nginx_peer(tmp: Path):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    root = tmp / "www"
    (root / "weights").mkdir(parents=True)
    (root / FILE).write_bytes(CONTENT)
    prefix = tmp / "nginx"
    (prefix / "logs").mkdir(parents=True)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = prefix / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body; proxy_temp_path {prefix}/proxy; fastcgi_temp_path {prefix}/fcgi;
    uwsgi_temp_path {prefix}/uwsgi; scgi_temp_path {prefix}/scgi;
    keepalive_requests 1000000;
    server {{ listen 127.0.0.1:{port}; root {root}; }}
}}
""")
    proc = subprocess.Popen([nginx, "-p", str(prefix), "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"nginx did not start: {proc.stderr.read().decode() if proc.stderr else ''}")
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


async def seed(url: str, token: str) -> str:
    """Commit a few files through the Hub API; returns the head commit."""
    lines = [{"key": "header", "value": {"summary": "seed"}}]
    for path, data in ((FILE, CONTENT), ("README.md", b"# bench\n"), ("tokenizer.json", b"{}")):
        lines.append({"key": "file", "value": {"path": path, "content": base64.b64encode(data).decode(),
                                               "encoding": "base64"}})
    body = "\n".join(json.dumps(x) for x in lines).encode()
    async with aiohttp.ClientSession() as s, s.post(f"{url}/api/models/bench/model/commit/main", data=body,
                                                    headers={"Authorization": f"Bearer {token}",
                                                             "Content-Type": "application/x-ndjson"}) as r:
        r.raise_for_status()
        return (await r.json())["commitOid"]


async def load(url: str, concurrency: int, total: int, headers: dict[str, str]) -> dict[str, float]:
    latencies: list[float] = []
    remaining = total
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                t0 = time.perf_counter()
                async with session.head(url) as r:
                    if r.status != 200:
                        raise RuntimeError(f"HEAD {url} -> {r.status}")
                latencies.append(time.perf_counter() - t0)

        # warm up connections and caches
        for _ in range(3):
            async with session.head(url) as r:
                r.raise_for_status()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {"p50_ms": latencies[len(latencies) // 2] * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
            "rps": len(latencies) / elapsed}


def summary(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="gitd-bench-hub-") as t:
        tmp = Path(t)
        tmp.chmod(0o755)  # nginx workers run as an unprivileged user
        with gitd_peer(tmp) as (gitd_url, token), nginx_peer(tmp) as nginx_url:
            sha = await seed(gitd_url, token)
            targets = {
                "gitd HEAD /resolve/main": (f"{gitd_url}/bench/model/resolve/main/{FILE}", {}),
                "gitd HEAD /resolve/<sha>": (f"{gitd_url}/bench/model/resolve/{sha}/{FILE}", {}),
                "gitd HEAD /resolve/main (token)": (f"{gitd_url}/bench/model/resolve/main/{FILE}",
                                                    {"Authorization": f"Bearer {token}"}),
                "nginx HEAD static file": (f"{nginx_url}/{FILE}", {}),
            }
            results: dict[str, dict[str, list[dict[str, float]]]] = {name: {"c": [], "1": []} for name in targets}
            for _ in range(args.rounds):
                for name, (url, headers) in targets.items():
                    results[name]["c"].append(await load(url, args.concurrency, args.requests, headers))
                    results[name]["1"].append(await load(url, 1, max(500, args.requests // 20), headers))
    report = {name: {"concurrent": summary(r["c"]), "single": summary(r["1"])} for name, r in results.items()}
    base = report["nginx HEAD static file"]
    print(f"HEAD /resolve, {args.concurrency} concurrent clients x {args.requests} requests, "
          f"median of {args.rounds} rounds (single client: {max(500, args.requests // 20)} requests)")
    print(f"{'target':34} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'1-client p50':>13} "
          f"{'p50 ratio':>10} {'rps ratio':>10}")
    for name, r in report.items():
        c, s = r["concurrent"], r["single"]
        print(f"{name:34} {c['p50_ms']:8.2f} {c['p99_ms']:8.2f} {c['rps']:8.0f} {s['p50_ms']:11.3f}ms "
              f"{c['p50_ms'] / base['concurrent']['p50_ms']:9.2f}x {c['rps'] / base['concurrent']['rps']:9.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
