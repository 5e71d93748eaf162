#!/usr/bin/env python3
"""Spaces: push to first answer, proxy overhead, wake time (issue #15's figures).

    .venv/bin/python bench/spaces.py [--requests 2000] [--concurrency 32] [--echoes 500]

Starts a daemon (``plugins.spaces.python = "daemon"``: the Gradio "warm cache" case, no
download) on a fresh data dir and measures:

* push to first HTTP 200 through the proxy: a static space, and a minimal Gradio space;
* proxy overhead: the same request asked directly on the app's port, through
  ``/spaces/NS/NAME/app/``, and through nginx (one worker, upstream keep-alive), with
  ``--concurrency`` connections: p50 and p99 latency, ratios to direct, and the daemon's
  CPU time per proxied request. Two apps: a stdlib ThreadingHTTPServer (HTTP/1.0: a
  connection per request, a listen backlog of 5) and the Gradio space's FastAPI route
  ``/ping`` (uvicorn, connections kept);
* WebSocket echo round trip, through the proxy and directly (the Gradio space's FastAPI
  ``/ws``), median, ratio; beside them nginx as a WebSocket reverse proxy in front of the
  same app (one worker, the usual ``Upgrade``/``Connection`` headers), as a peer, and socat
  as a bare byte relay (where installed): any proxy adds a process and two loopback hops to
  a round trip of about 0.1 ms;
* sleep and wake: with the sleep time at 1 s the app process goes away; the first request
  afterwards wakes it (plain app and Gradio);
* 20 sleeping spaces: the app processes left (the daemon's children running an app; the
  issue asks for none), and the first answer of one of them woken.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.spaces.apps import GRADIO_APP, card, plain_app  # noqa: E402
from tests.http_peer import free_port  # noqa: E402
from tests.support import Git, new_daemon, unique  # noqa: E402


def get(url: str, token: str) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"}),
                                    timeout=60) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as exc:
        print(f"{url}: {exc.code} {exc.read()[:200]!r}", file=sys.stderr)
        return exc.code
    except OSError as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 0


def push_and_time(d, git, tmp: Path, user: str, token: str, files: dict, path: str = "") -> tuple[str, float]:
    full = d.repo(user, unique("b"), repo_type="space")
    work = git.init_work(tmp / full.replace("/", "_"), files)
    started = time.monotonic()
    git("push", "-q", d.repo_url(full, token=token, repo_type="space"), "main", cwd=work)
    while get(f"{d.url}/spaces/{full}/app/{path}", token) != 200:
        time.sleep(0.02)
    return full, time.monotonic() - started


async def latencies(url: str, headers: dict, n: int, conc: int) -> list[float]:
    out: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conc)) as s:
        async def worker(count: int) -> None:
            for _ in range(count):
                t = time.perf_counter()
                async with s.get(url, headers=headers) as r:
                    await r.read()
                out.append(time.perf_counter() - t)
        await asyncio.gather(*(worker(n // conc) for _ in range(conc)))
    return sorted(out)


async def echoes(url: str, headers: dict, n: int) -> float:
    async with aiohttp.ClientSession() as s, s.ws_connect(url, headers=headers) as ws:
        times = []
        for i in range(n):
            t = time.perf_counter()
            await ws.send_str(str(i))
            await ws.receive()
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def daemon_cpu(pid: int) -> float:
    """The daemon's own CPU seconds so far (user and system; its children not counted)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def app_processes(daemon_pid: int) -> int:
    """The daemon's child processes that run a space's app (``python ... app.py``)."""
    count = 0
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == daemon_pid and b"app.py" in (proc / "cmdline").read_bytes():
                count += 1
        except (OSError, ValueError, IndexError):
            continue
    return count


def byte_relay(app_port: int) -> tuple[subprocess.Popen, int] | None:
    """socat copying bytes between a loopback port and the app (no HTTP, no frames: the least a
    proxy process can add to a WebSocket round trip); (process, its port), or None without socat."""
    import shutil
    import socket

    socat = shutil.which("socat")
    if socat is None:
        return None
    port = free_port()
    proc = subprocess.Popen([socat, f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork", f"TCP:127.0.0.1:{app_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        time.sleep(0.05)
    proc.kill()
    return None


def nginx_proxy(tmp: Path, app_port: int) -> tuple[subprocess.Popen, int]:
    """nginx proxying HTTP and WebSocket to 127.0.0.1:``app_port``; (process, its port)."""
    import getpass
    import os
    import shutil
    import socket

    root = tmp / f"nginx-{app_port}"
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    port = free_port()
    user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
    t = root / "tmp"
    (root / "nginx.conf").write_text(f"""
{user}
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {t}/body; fastcgi_temp_path {t}/fastcgi; proxy_temp_path {t}/proxy;
    uwsgi_temp_path {t}/uwsgi; scgi_temp_path {t}/scgi;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}
    upstream app {{ server 127.0.0.1:{app_port}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_buffering off;
        }}
    }}
}}
""")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = subprocess.Popen([nginx, "-p", str(root), "-c", str(root / "nginx.conf"), "-e", str(root / "error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("nginx did not start")


def sleeping_spaces(d, git, tmp: Path, user: str, token: str, auth: dict, n: int) -> dict[str, float]:
    names = [push_and_time(d, git, tmp, user, token, {"README.md": card("gradio"), "app.py": plain_app()}, "pid")[0]
             for _ in range(n)]
    awake = app_processes(d.proc.pid)
    for full in names:
        urllib.request.urlopen(urllib.request.Request(
            f"{d.url}/api/spaces/{full}/sleeptime", data=json.dumps({"seconds": 1}).encode(),
            headers={**auth, "Content-Type": "application/json"}), timeout=30).read()
    for full in names:
        while json.loads(urllib.request.urlopen(urllib.request.Request(
                f"{d.url}/api/spaces/{full}/runtime", headers=auth), timeout=30).read())["stage"] != "SLEEPING":
            time.sleep(0.2)
    asleep = app_processes(d.proc.pid)
    t = time.monotonic()
    status = get(f"{d.url}/spaces/{names[0]}/app/pid", token)
    return {f"awake_{n}_app_processes": float(awake), f"sleeping_{n}_app_processes": float(asleep),
            f"wake_one_of_{n}_s": time.monotonic() - t if status == 200 else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--echoes", type=int, default=500)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gitd-bench-spaces-"))
    d = new_daemon(tmp, settings={"plugins.spaces.python": "daemon"}).start()
    git = Git(tmp / "home")
    user, token = d.user()
    auth = {"Authorization": f"Bearer {token}"}
    res: dict[str, float] = {}
    try:
        _, res["push_to_200_static_s"] = push_and_time(d, git, tmp, user, token,
                                                       {"README.md": card("static"), "index.html": "hi"})
        gradio, res["push_to_200_gradio_s"] = push_and_time(d, git, tmp, user, token,
                                                            {"README.md": card("gradio"), "app.py": GRADIO_APP})
        plain, _ = push_and_time(d, git, tmp, user, token, {"README.md": card("gradio"), "app.py": plain_app()},
                                 "pid")
        rows = json.loads(subprocess.run(["sqlite3", "-json", str(d.data / "gitd.db"),
                                          "SELECT name, port FROM plugin_spaces_spaces"],
                                         capture_output=True, text=True, check=True).stdout)
        ports = {r["name"]: r["port"] for r in rows}
        for app, full, path in (("plain", plain, "pid"), ("gradio", gradio, "ping")):
            nginx, nginx_port = nginx_proxy(tmp / app, ports[full])
            try:
                targets = {"direct": (f"http://127.0.0.1:{ports[full]}/{path}", {}),
                           "proxy": (f"{d.url}/spaces/{full}/app/{path}", auth),
                           "nginx": (f"http://127.0.0.1:{nginx_port}/{path}", {})}
                for _round in range(3):  # alternate; keep the best p50 of each (a busy 2-core machine)
                    for name, (url, headers) in targets.items():
                        cpu = daemon_cpu(d.proc.pid)
                        lat = asyncio.run(latencies(url, headers, args.requests, args.concurrency))
                        per_request = (daemon_cpu(d.proc.pid) - cpu) / len(lat) * 1e6
                        p50, p99 = lat[len(lat) // 2] * 1e3, lat[int(len(lat) * 0.99)] * 1e3
                        key = f"{app}_{name}"
                        res[f"{key}_p50_ms"] = min(res.get(f"{key}_p50_ms", 1e9), p50)
                        res[f"{key}_p99_ms"] = min(res.get(f"{key}_p99_ms", 1e9), p99)
                        if name == "proxy":
                            res[f"{key}_daemon_cpu_us"] = min(res.get(f"{key}_daemon_cpu_us", 1e9), per_request)
            finally:
                nginx.terminate()
                nginx.wait()
            res[f"{app}_proxy_p50_ratio"] = res[f"{app}_proxy_p50_ms"] / res[f"{app}_direct_p50_ms"]
            res[f"{app}_nginx_p50_ratio"] = res[f"{app}_nginx_p50_ms"] / res[f"{app}_direct_p50_ms"]
        nginx, nginx_port = nginx_proxy(tmp, ports[gradio])
        relay = byte_relay(ports[gradio])
        try:
            echo = {"direct": f"ws://127.0.0.1:{ports[gradio]}/ws",
                    "proxy": f"{d.url.replace('http', 'ws', 1)}/spaces/{gradio}/app/ws",
                    "nginx": f"ws://127.0.0.1:{nginx_port}/ws"}
            if relay is not None:
                echo["socat"] = f"ws://127.0.0.1:{relay[1]}/ws"
            best: dict[str, float] = {}
            for _round in range(3):  # alternate; keep each one's best median (a busy 2-core machine)
                for name, url in echo.items():
                    took = asyncio.run(echoes(url, auth if name == "proxy" else {}, args.echoes))
                    best[name] = min(best.get(name, 1e9), took)
        finally:
            for proc in (nginx, *(relay[:1] if relay else ())):
                proc.terminate()
                proc.wait()
        for name, took in best.items():
            res[f"ws_echo_{name}_ms"] = took * 1e3
        if "socat" in best:
            res["ws_echo_socat_ratio"] = best["socat"] / best["direct"]
        res["ws_echo_ratio"] = best["proxy"] / best["direct"]
        res["ws_echo_nginx_ratio"] = best["nginx"] / best["direct"]
        res["ws_echo_proxy_vs_nginx"] = best["proxy"] / best["nginx"]
        for name, full, path in (("plain", plain, "pid"), ("gradio", gradio, "")):
            urllib.request.urlopen(urllib.request.Request(
                f"{d.url}/api/spaces/{full}/sleeptime", data=json.dumps({"seconds": 1}).encode(),
                headers={**auth, "Content-Type": "application/json"}), timeout=30).read()
            while json.loads(urllib.request.urlopen(urllib.request.Request(
                    f"{d.url}/api/spaces/{full}/runtime", headers=auth), timeout=30).read())["stage"] != "SLEEPING":
                time.sleep(0.2)
            t = time.monotonic()
            while get(f"{d.url}/spaces/{full}/app/{path}", token) != 200:  # 503 while a wake waits too long
                time.sleep(0.05)
            res[f"wake_{name}_s"] = time.monotonic() - t
        res.update(sleeping_spaces(d, git, tmp, user, token, auth, 20))
    finally:
        d.stop()
    for key, value in res.items():
        print(f"{key}\t{value:.3f}")


if __name__ == "__main__":
    main()
