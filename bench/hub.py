"""Hub API benchmarks, side by side with a peer, on loopback.

    .venv/bin/python bench/hub.py resolve [--loadgen wrk|aiohttp] [--concurrency 64 4] [--rounds 3]
    .venv/bin/python bench/hub.py snapshot [--small 500] [--lfs-files 2] [--lfs-mb 512] [--rounds 3]

``resolve``: HEAD /resolve latency and throughput. Starts a gitd daemon (fresh data
dir, one model repo with a few files committed through the Hub API) and nginx serving
the same file as a static file, the floor any HTTP server on this machine can reach.
The load generator is ``wrk`` (C, event loop; `apt-get install wrk`) with a small Lua
script that sends HEAD, or, without wrk or with ``--loadgen aiohttp``, an aiohttp
closed loop (which itself tops out near 4k req/s on 2 cores, so it measures itself as
much as the server). Each concurrency level is run against each peer, alternating, in
rounds; it reports p50/p99 latency and requests per second (medians over rounds) and
the ratios to nginx. A third peer, a bare aiohttp handler that answers at once, shows
the floor of any single-process aiohttp server on the machine.

Closed-loop latency obeys Little's law (p50 ~ connections / throughput): with 64
connections, a p50 under 5 ms needs more than ~13k req/s. The lighter load (4
connections) shows the per-request service time with little queueing.

``snapshot``: see bench/hub_snapshot.py.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import wait_for_port

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
    gitd(data, "repo", "create", "bench/model", "--empty")
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
        yield json.loads(info.read_text())["http"], token, proc.pid
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
    with open(prefix / "stderr.log", "wb") as stderr:
        proc = subprocess.Popen([nginx, "-p", str(prefix), "-c", str(conf)], stdout=subprocess.DEVNULL,
                                stderr=stderr, start_new_session=True)
    try:
        wait_for_port(port, proc, prefix / "stderr.log", timeout=10)
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


BARE_AIOHTTP = """
import sys
from aiohttp import web

async def handle(request):
    headers = {"X-Repo-Commit": "0" * 40, "ETag": '"' + "0" * 40 + '"', "Content-Length": sys.argv[2]}
    return web.Response(headers=headers) if request.method == "HEAD" else web.Response(body=b"x" * int(sys.argv[2]))

app = web.Application()
app.router.add_route("*", "/{tail:.*}", handle)
try:  # the loop gitd runs on by default (server.event_loop = "auto")
    import uvloop
    loop = uvloop.new_event_loop()
except ImportError:
    loop = None
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None, loop=loop)
"""


@contextlib.contextmanager
def bare_aiohttp_peer(tmp: Path):
    """The floor for any aiohttp server here: one handler that answers at once (no routing, no
    lookups), on the same event loop as gitd's default (uvloop when installed; one process)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = tmp / "bare_aiohttp.py"
    script.write_text(BARE_AIOHTTP)
    proc = subprocess.Popen([sys.executable, str(script), str(port), str(len(CONTENT))], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc, timeout=20)
        yield f"http://127.0.0.1:{port}", proc.pid
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
            "rps": len(latencies) / elapsed, "n": len(latencies)}


def group_cpu(pgid: int) -> float:
    """CPU seconds used so far by every process of process group ``pgid`` (the server and its workers)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def summary(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def ab(url: str, connections: int, seconds: int, headers: dict[str, str], scratch: Path) -> dict[str, float]:
    """One ApacheBench run of keep-alive HEAD requests (-i): p50/p99 in ms and req/s."""
    csv = scratch / "ab.csv"
    cmd = ["ab", "-q", "-k", "-i", "-c", str(connections), "-t", str(seconds), "-n", "100000000", "-e", str(csv)]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    found: dict[str, float] = {}
    for line in out.splitlines():
        if line.startswith("Requests per second:"):
            found["rps"] = float(line.split()[3])
        elif line.startswith("Complete requests:"):
            found["n"] = int(line.split()[2])
        elif line.startswith(("Failed requests:", "Non-2xx responses:")) and line.split()[-1] != "0":
            raise RuntimeError(f"ab saw errors from {url}: {line.strip()}")
    for line in csv.read_text().splitlines()[1:]:
        pct, ms = line.split(",")
        if pct in ("50", "99"):
            found[f"p{pct}_ms"] = float(ms)
    return found


def wrk(url: str, connections: int, seconds: int, headers: dict[str, str]) -> dict[str, float]:
    """One wrk run of keep-alive GET requests: p50/p99 in ms and req/s. (Debian's wrk 4.1.0 cannot
    send HEAD: it waits for the body a HEAD response's Content-Length announces, and counts nothing.)"""
    cmd = ["wrk", "-t", str(min(2, connections)), "-c", str(connections), "-d", f"{seconds}s", "--latency"]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    found: dict[str, float] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("50%", "99%"):
            number = parts[1].rstrip("usm")
            found[f"p{parts[0][:-1]}_ms"] = float(number) * _UNITS[parts[1][len(number):]]
        elif line.startswith("Requests/sec:"):
            found["rps"] = float(parts[1])
        elif "requests in" in line:
            found["n"] = int(parts[0])
        elif "Non-2xx or 3xx responses" in line:
            raise RuntimeError(f"wrk saw errors from {url}: {line.strip()}")
    return found


def default_loadgen() -> str:
    return "ab" if shutil.which("ab") else "aiohttp"


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="part")
    res = sub.add_parser("resolve", help="HEAD /resolve latency and req/s, gitd vs nginx")
    res.add_argument("--loadgen", choices=("ab", "wrk", "aiohttp"), default=default_loadgen(),
                     help="ab: HEAD with ApacheBench (apt-get install apache2-utils), the default when installed; "
                          "wrk: GET of the same URL (apt-get install wrk); aiohttp: HEAD from Python")
    res.add_argument("--concurrency", type=int, nargs="+", default=[64, 4])
    res.add_argument("--seconds", type=int, default=8, help="length of one ab or wrk run")
    res.add_argument("--requests", type=int, default=20000, help="requests per aiohttp run")
    res.add_argument("--rounds", type=int, default=3)
    res.add_argument("--json", help="also write the results to this file")
    snap = sub.add_parser("snapshot", help="snapshot_download vs git clone + git lfs pull")
    snap.add_argument("--small", type=int, default=500)
    snap.add_argument("--lfs-files", type=int, default=2)
    snap.add_argument("--lfs-mb", type=int, default=512)
    snap.add_argument("--rounds", type=int, default=3)
    snap.add_argument("--work", help="scratch directory (default $TMPDIR or /tmp); needs ~4x the repo size free")
    snap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    if args.part == "snapshot":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from hub_snapshot import run

        report = run(args)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2))
        return
    if args.part is None:
        args = ap.parse_args(["resolve", *sys.argv[1:]])
    tool = {"ab": ("ab", "apache2-utils"), "wrk": ("wrk", "wrk")}.get(args.loadgen)
    if tool and not shutil.which(tool[0]):
        raise SystemExit(f"{tool[0]} is not installed: apt-get install {tool[1]} (or use --loadgen aiohttp)")
    await resolve_bench(args)


async def resolve_bench(args) -> None:
    with tempfile.TemporaryDirectory(prefix="gitd-bench-hub-") as t:
        tmp = Path(t)
        tmp.chmod(0o755)  # nginx workers run as an unprivileged user
        with gitd_peer(tmp) as (gitd_url, token, gitd_pid), nginx_peer(tmp) as (nginx_url, nginx_pid), \
                bare_aiohttp_peer(tmp) as (bare_url, bare_pid):
            sha = await seed(gitd_url, token)
            targets = {
                "gitd HEAD /resolve/main": (f"{gitd_url}/bench/model/resolve/main/{FILE}", {}),
                "gitd HEAD /resolve/<sha>": (f"{gitd_url}/bench/model/resolve/{sha}/{FILE}", {}),
                "gitd HEAD /resolve/main (token)": (f"{gitd_url}/bench/model/resolve/main/{FILE}",
                                                    {"Authorization": f"Bearer {token}"}),
                "aiohttp bare handler (floor)": (f"{bare_url}/{FILE}", {}),
                "nginx HEAD static file": (f"{nginx_url}/{FILE}", {}),
            }
            pids = {"nginx HEAD static file": nginx_pid, "aiohttp bare handler (floor)": bare_pid}
            results: dict[str, dict[int, list[dict[str, float]]]] = {
                name: {c: [] for c in args.concurrency} for name in targets}
            for _ in range(args.rounds):
                for conc in args.concurrency:
                    for name, (url, headers) in targets.items():
                        server = pids.get(name, gitd_pid)
                        cpu0 = group_cpu(server)
                        if args.loadgen == "ab":
                            run = await asyncio.to_thread(ab, url, conc, args.seconds, headers, tmp)
                        elif args.loadgen == "wrk":
                            run = await asyncio.to_thread(wrk, url, conc, args.seconds, headers)
                        else:
                            run = await load(url, conc, args.requests, headers)
                        run["server_cpu_us_per_req"] = (group_cpu(server) - cpu0) / max(1, run.pop("n")) * 1e6
                        results[name][conc].append(run)
    report = {name: {str(c): summary(runs) for c, runs in r.items()} for name, r in results.items()}
    base = report["nginx HEAD static file"]
    method = "GET" if args.loadgen == "wrk" else "HEAD"
    print(f"{method} /resolve with {args.loadgen}, median of {args.rounds} rounds")
    for conc in args.concurrency:
        print(f"\n{conc} connections (closed loop)")
        print(f"{'target':34} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'p50 ratio':>10} {'rps ratio':>10} "
              f"{'Little p50':>11} {'server CPU/req':>15}")
        for name, r in report.items():
            c = r[str(conc)]
            print(f"{name:34} {c['p50_ms']:8.2f} {c['p99_ms']:8.2f} {c['rps']:8.0f} "
                  f"{c['p50_ms'] / base[str(conc)]['p50_ms']:9.2f}x {c['rps'] / base[str(conc)]['rps']:9.2f}x "
                  f"{conc / c['rps'] * 1000:9.2f}ms {c['server_cpu_us_per_req']:12.0f} us")
    if args.json:
        Path(args.json).write_text(json.dumps({"loadgen": args.loadgen, **report}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
