#!/usr/bin/env python3
"""Routing: gitd's routes in aiohttp's dispatcher against the raw-path router gitd had before.

    .venv/bin/python bench/routing.py resolve [--requests 10000] [--rounds 7]
    .venv/bin/python bench/routing.py http [--seconds 5] [--rounds 5] [--concurrency 4 32]

gitd used to route on the raw path with a router of its own (split on '/', then
percent-decode each segment; matches remembered per method and path), because aiohttp
decoded %2F before routing and Hub clients send revisions such as ``refs%2Fpr%2F1`` in one
segment. aiohttp 3.10.6 and later match on ``URL.path_safe`` (%2F and %25 left encoded),
so gitd now registers its routes in aiohttp's ``UrlDispatcher`` (gitd/http/routing.py).
The peer is that removed router, read from git history (``--peer-commit``, default
ffe6034: the last commit with it), fed the same route table: the daemon's, from
``build_router`` on a fresh data dir.

``resolve``: the cost of routing one request, in a tight loop over fresh requests (a
``yarl.URL`` caches ``path_safe``; the URL is built as aiohttp's HTTP parser builds it),
for a mix of the daemon's URLs, one of them new each time (the raw-path router could not
answer those from its memo). aiohttp's way: ``UrlDispatcher.resolve`` and the route's
endpoint building the ``Match``; the raw-path way: aiohttp resolving its one catch-all
route, then the raw-path router. Rounds alternate; reported: CPU microseconds per request
(median) and the ratio aiohttp/raw-path (below 1.0: aiohttp's is cheaper).

``http``: end to end. Two daemons on the same kind of data dir, one as this tree builds
it, one whose app routes with the raw-path router (this script starts it with
``build_app`` replaced), answer ``HEAD /{repo}/resolve/main/{file}`` to ``ab``
(apache2-utils) or, without it, an aiohttp client, and ``--requests`` HEADs of paths each
new to the daemon (404s, from an aiohttp client); rounds alternate. Reported: requests/s
and the daemon's CPU time per request (user + system, read from /proc; less sensitive to
a busy machine than throughput), medians, and the ratios aiohttp/raw-path.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
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
from types import ModuleType
from typing import Any

from aiohttp import web
from yarl import URL

from gitd.config import Config
from gitd.http.routing import Match, Router

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import save_results

ROOT = Path(__file__).resolve().parent.parent
PEER_COMMIT = "ffe6034"

# A mix of what clients send: the Hub's download path first (every file download starts
# with HEAD /resolve), the same for a file not asked for before, git's three requests,
# Hub API calls (one with %2F), LFS, a path no route matches.
REQUESTS = [
    ("HEAD", "/alice/tiny-model/resolve/main/config.json"),
    ("HEAD", "/alice/tiny-model/resolve/main/shard-{i}.bin"),
    ("GET", "/alice/tiny-model.git/info/refs?service=git-upload-pack"),
    ("POST", "/alice/tiny-model.git/git-upload-pack"),
    ("GET", "/api/models/alice/tiny-model/revision/refs%2Fpr%2F1"),
    ("GET", "/api/datasets/alice/data/tree/main/sub/dir?recursive=1"),
    ("POST", "/datasets/alice/data.git/info/lfs/objects/batch"),
    ("GET", "/api/whoami-v2"),
    ("GET", "/nobody/here/at/all/x"),
]


# -- the real route table, and the raw-path router from git history ------------------------------
def real_router(data: Path) -> Router:
    from gitd.compose import Parts
    from gitd.datainit import init_data_dir
    from gitd.paths import DataDir

    init_data_dir(data)
    d = DataDir(data)
    return Parts(d, Config.load(d.config_file)).router()


def raw_path_module(commit: str) -> ModuleType:
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:gitd/http/routing.py"], check=True,
                            capture_output=True, text=True).stdout
    spec = importlib.util.spec_from_loader("raw_path_routing", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    exec(compile(source, f"{commit}:gitd/http/routing.py", "exec"), module.__dict__)
    return module


def raw_path_router(router: Router, module: ModuleType) -> Any:
    """The same routes, in the same order, in the raw-path router."""
    raw = module.Router()
    for r in router.routes:
        raw.add(tuple(r.methods), r.pattern, r.handler, style=r.style, name=r.name)
    return raw


# -- resolve: the routing cost alone -------------------------------------------------------------
class _Request:
    """What routing reads of a request: its method, raw path, URL (built as aiohttp's HTTP
    parser builds it: a fresh one per request, since yarl caches path_safe) and match_info."""

    __slots__ = ("match_info", "method", "raw_path", "rel_url")

    def __init__(self, method: str, raw_path: str):
        path, _, query = raw_path.partition("?")
        self.method, self.raw_path = method, raw_path
        self.rel_url = URL.build(path=path, query_string=query, encoded=True)
        self.match_info: Any = None


async def _capture(request: Any, match: Match | None, allowed: set[str]) -> Any:
    return match, allowed


async def _not_found(request: web.Request) -> web.StreamResponse:
    raise web.HTTPNotFound()


def _answer(match: Any, allowed: set[str]) -> tuple:
    if match is None:
        return None, sorted(allowed)
    repo = match.repo
    return match.route.name, match.params, (repo.type, repo.namespace, repo.name, repo.git_suffix) if repo else None


async def resolve_costs(router: Router, raw: Any, requests: int, rounds: int) -> dict[str, dict[str, list[float]]]:
    """CPU microseconds per request, per kind of request and way, one value per round."""
    ours = web.UrlDispatcher()
    router.install(ours, _capture)
    front = web.UrlDispatcher()  # what the raw-path router's app registered: one catch-all route
    front.add_route("*", "/{tail:.*}", _not_found)

    async def aiohttp_way(batch: list[Any]) -> None:
        for req in batch:
            info = await ours.resolve(req)
            req.match_info = info
            await info.handler(req)

    async def raw_path_way(batch: list[Any]) -> None:
        for req in batch:
            await front.resolve(req)
            raw.resolve(req.method, req.raw_path)

    # Both ways give the same answers for the mix.
    for method, path in REQUESTS:
        req = _Request(method, path.format(i=0))
        info = await ours.resolve(req)
        req.match_info = info
        assert _answer(*await info.handler(req)) == _answer(*raw.resolve(method, req.raw_path)), (method, path)

    ways = {"aiohttp": aiohttp_way, "raw-path": raw_path_way}
    per: dict[str, dict[str, list[float]]] = {f"{m} {p}": {w: [] for w in ways} for m, p in REQUESTS}
    for r in range(rounds):
        for kind, (method, path) in zip(per, REQUESTS, strict=True):
            for way in (("aiohttp", "raw-path") if r % 2 == 0 else ("raw-path", "aiohttp")):
                batch = [_Request(method, path.format(i=f"{r}-{i}")) for i in range(requests)]
                started = time.process_time()
                await ways[way](batch)
                per[kind][way].append((time.process_time() - started) / requests * 1e6)
    return per


def cmd_resolve(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="routing-") as tmp:
        router = real_router(Path(tmp) / "data")
        raw = raw_path_router(router, raw_path_module(args.peer_commit))
        per = asyncio.run(resolve_costs(router, raw, args.requests, args.rounds))
    print(f"{len(router.routes)} routes; {args.requests} requests of each kind per round, {args.rounds} rounds; "
          f"CPU us per request (median), ratio = median of per-round aiohttp/raw-path")
    print(f"{'request':<62}{'aiohttp':>9}{'raw-path':>10}{'ratio':>7}")
    results = {}
    for kind, ways in per.items():
        ratios = [a / g for a, g in zip(ways["aiohttp"], ways["raw-path"], strict=True)]
        row = {"aiohttp_us": statistics.median(ways["aiohttp"]), "raw_path_us": statistics.median(ways["raw-path"]),
               "ratio": statistics.median(ratios)}
        results[kind] = row
        print(f"{kind[:61]:<62}{row['aiohttp_us']:>9.2f}{row['raw_path_us']:>10.2f}{row['ratio']:>7.2f}")
    saved = save_results("routing-resolve", {"benchmark": "routing resolve", "peer_commit": args.peer_commit,
                                              "routes": len(router.routes), "requests": results})
    print(f"\nresults: {saved}")


# -- http: end to end ---------------------------------------------------------------------------
def serve_with_raw_path_router(commit: str, argv: list[str]) -> int:
    """``gitd serve`` whose app routes with the raw-path router of ``commit`` (the peer of ``http``)."""
    from gitd import cli
    from gitd.http import app as app_module
    from gitd.http.context import AUTHENTICATOR

    module = raw_path_module(commit)

    from gitd.limits.rates import RateLimits

    def build_app(router, auth, metrics, *, rates=None, body_timeout=60.0):  # type: ignore[no-untyped-def]
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app[app_module.METRICS] = metrics
        app[AUTHENTICATOR] = auth
        app[app_module.RATES] = rates if rates is not None else RateLimits()
        app[app_module.BODY_TIMEOUT] = body_timeout
        raw = raw_path_router(router, module)

        async def dispatch(request: web.Request) -> web.StreamResponse:
            match, allowed = raw.resolve(request.method, request.raw_path)
            return await app_module.run_match(request, match, allowed)

        app.router.add_route("*", "/{tail:.*}", dispatch)
        return app

    app_module.build_app = build_app  # the composition root imports it when it builds the app
    return cli.main(argv)


@contextlib.contextmanager
def daemon(tmp: Path, way: str, peer_commit: str):
    """A daemon with hub.py's data (user bench, repo bench/model); yields (url, token, pid)."""
    from hub import gitd

    data = tmp / way
    gitd(data, "init", str(data))
    gitd(data, "user", "add", "bench")
    token = gitd(data, "token", "create", "bench", "--name", "bench")
    gitd(data, "repo", "create", "bench/model", "--empty")
    serve = ["--data", str(data), "serve", "--http", "127.0.0.1:0", "--ssh", ""]
    argv = [sys.executable, "-m", "gitd.cli", *serve] if way == "aiohttp" else \
        [sys.executable, str(Path(__file__).resolve()), "_serve-raw-path", peer_commit, *serve]
    log = open(tmp / f"{way}.log", "wb")  # noqa: SIM115 - owned by the process
    proc = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True,
                            env={**os.environ, "GITD_SERVER__ACCESS_LOG": "false"})
    info = data / "run" / "serve.json"
    try:
        deadline = time.monotonic() + 30
        while not info.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((tmp / f"{way}.log").read_text())
            time.sleep(0.05)
        yield json.loads(info.read_text())["http"], token, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


async def new_paths(prefix: str, total: int, concurrency: int = 4) -> int:
    """HEAD ``prefix<n>`` for ``total`` different n (each path new to the daemon: 404 EntryNotFound),
    from ``concurrency`` keep-alive connections; returns the number of requests."""
    import aiohttp

    counter = iter(range(total))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def worker() -> None:
            for n in counter:
                async with session.head(f"{prefix}{n}") as r:
                    if r.status != 404:
                        raise RuntimeError(f"HEAD {prefix}{n} -> {r.status}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total


async def http_bench(args: argparse.Namespace) -> dict:
    import aiohttp
    from hub import FILE, ab, group_cpu, load, seed

    ways = ("aiohttp", "raw-path")
    with tempfile.TemporaryDirectory(prefix="routing-http-") as t:
        tmp = Path(t)
        with daemon(tmp, "aiohttp", args.peer_commit) as (aio_url, aio_token, aio_pid), \
                daemon(tmp, "raw-path", args.peer_commit) as (raw_url, raw_token, raw_pid):
            targets = {"aiohttp": (aio_url, aio_pid), "raw-path": (raw_url, raw_pid)}
            for url, token in ((aio_url, aio_token), (raw_url, raw_token)):
                await seed(url, token)
            async with aiohttp.ClientSession() as s:  # a %2F revision is one segment on both
                for url, _ in targets.values():
                    async with s.get(f"{url}/api/models/bench/model/revision/refs%2Fpr%2F1") as r:
                        assert r.status == 404 and r.headers.get("X-Error-Code") == "RevisionNotFound", r.status
            runs: dict[str, dict[int, list[dict[str, float]]]] = {w: {c: [] for c in args.concurrency} for w in ways}
            misses: dict[str, list[float]] = {w: [] for w in ways}
            for r in range(args.rounds):
                order = ways if r % 2 == 0 else ways[::-1]
                for way in order:
                    url, pid = targets[way]
                    cpu0 = group_cpu(pid)
                    n = await new_paths(f"{url}/bench/model/resolve/main/r{r}-missing-", args.requests)
                    misses[way].append((group_cpu(pid) - cpu0) / n * 1e6)
                    print(f"round {r + 1} new paths {way}: {misses[way][-1]:.0f} us CPU/req", flush=True)
                for conc in args.concurrency:
                    for way in order:
                        url, pid = targets[way]
                        target = f"{url}/bench/model/resolve/main/{FILE}"
                        cpu0 = group_cpu(pid)
                        if args.loadgen == "ab":
                            run = await asyncio.to_thread(ab, target, conc, args.seconds, {}, tmp)
                        else:
                            run = await load(target, conc, args.requests, {})
                        run["cpu_us"] = (group_cpu(pid) - cpu0) / max(1, run.pop("n")) * 1e6
                        runs[way][conc].append(run)
                        print(f"round {r + 1} c={conc} {way}: {run['rps']:.0f} req/s, {run['cpu_us']:.0f} us CPU/req",
                              flush=True)
    return {"load": runs, "new_paths": misses}


def cmd_http(args: argparse.Namespace) -> None:
    if args.loadgen == "ab" and not shutil.which("ab"):
        raise SystemExit("ab is not installed: apt-get install apache2-utils (or use --loadgen aiohttp)")
    both = asyncio.run(http_bench(args))
    runs, misses = both["load"], both["new_paths"]
    print(f"\nHEAD /resolve with {args.loadgen}, {args.rounds} rounds; medians, ratio = median of per-round "
          "aiohttp/raw-path")
    print(f"{'connections':<12}{'aiohttp req/s':>14}{'raw-path':>10}{'ratio':>7}{'aiohttp CPU us':>16}"
          f"{'raw-path':>10}{'ratio':>7}")
    results: dict[str, Any] = {}
    for conc in args.concurrency:
        a, g = runs["aiohttp"][conc], runs["raw-path"][conc]
        row = {}
        for key in ("rps", "cpu_us"):
            row[key] = {"aiohttp": statistics.median(x[key] for x in a),
                        "raw_path": statistics.median(x[key] for x in g),
                        "ratio": statistics.median(x[key] / y[key] for x, y in zip(a, g, strict=True))}
        results[str(conc)] = row
        print(f"{conc:<12}{row['rps']['aiohttp']:>14.0f}{row['rps']['raw_path']:>10.0f}{row['rps']['ratio']:>7.2f}"
              f"{row['cpu_us']['aiohttp']:>16.0f}{row['cpu_us']['raw_path']:>10.0f}{row['cpu_us']['ratio']:>7.2f}")
    ratios = [a / g for a, g in zip(misses["aiohttp"], misses["raw-path"], strict=True)]
    results["new_paths"] = {"aiohttp_cpu_us": statistics.median(misses["aiohttp"]),
                            "raw_path_cpu_us": statistics.median(misses["raw-path"]),
                            "ratio": statistics.median(ratios)}
    print(f"a new path each request (404s; aiohttp client, 4 connections): CPU us/req aiohttp "
          f"{results['new_paths']['aiohttp_cpu_us']:.0f}, raw-path {results['new_paths']['raw_path_cpu_us']:.0f}, "
          f"ratio {results['new_paths']['ratio']:.2f}")
    saved = save_results("routing-http", {"benchmark": "routing http", "peer_commit": args.peer_commit,
                                           "loadgen": args.loadgen, **results})
    print(f"\nresults: {saved}")


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "_serve-raw-path":
        return serve_with_raw_path_router(sys.argv[2], sys.argv[3:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peer-commit", default=PEER_COMMIT, help="the commit whose gitd/http/routing.py is the peer")
    sub = ap.add_subparsers(dest="part", required=True)
    res = sub.add_parser("resolve", help="routing cost per request, in process")
    res.add_argument("--requests", type=int, default=10000)
    res.add_argument("--rounds", type=int, default=7)
    web_ = sub.add_parser("http", help="HEAD /resolve end to end, two daemons")
    web_.add_argument("--loadgen", choices=("ab", "aiohttp"), default="ab" if shutil.which("ab") else "aiohttp")
    web_.add_argument("--concurrency", type=int, nargs="+", default=[4, 32])
    web_.add_argument("--seconds", type=int, default=5, help="length of one ab run")
    web_.add_argument("--requests", type=int, default=5000, help="requests per aiohttp run (and new paths per round)")
    web_.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    if args.part == "resolve":
        cmd_resolve(args)
    else:
        cmd_http(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
