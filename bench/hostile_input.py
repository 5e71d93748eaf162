#!/usr/bin/env python3
"""Hostile input to the Hub API (issue #19): per attack, the time to the answer, the daemon's RSS
before, at its peak and after, and the worst /healthz latency while the attack ran.

    .venv/bin/python bench/hostile_input.py [--only NAME ...] [--scale small|full]

Each attack gets a fresh daemon on loopback (benchlib.GitdServer). A thread asks /healthz
every 20 ms on fresh connections while the attack runs: its worst answer is how long the
event loop was unavailable to everyone else. ``--scale small`` runs smaller attacks, for
code that does not survive the full ones in reasonable time (the unfixed daemon).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import itertools
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pygit2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import WORK, Git, GitdServer, PeakRSS, mib, rss, save_results

HEALTH_EVERY = 0.02


def call(url: str, method: str, target: str, body: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 600) -> tuple[int, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class Health(threading.Thread):
    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url
        self.worst = 0.0
        self.count = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                call(self.url, "GET", "/healthz", timeout=600)
            except OSError:
                pass
            self.worst = max(self.worst, time.monotonic() - started)
            self.count += 1
            if self.stop.wait(HEALTH_EVERY):
                return


def measure(server: GitdServer, attack: Callable[[], str]) -> dict:
    pid = server.proc.pid
    before = rss(pid)
    health = Health(server.url)
    with PeakRSS(pid) as peak:
        health.start()
        time.sleep(0.1)
        started = time.monotonic()
        answer = attack()
        took = time.monotonic() - started
        health.stop.set()
        health.join()
    time.sleep(0.5)
    return {"answer": answer, "seconds": round(took, 3), "rss_before": mib(before), "rss_peak": mib(peak.peak),
            "rss_after": mib(rss(pid)), "healthz_worst_ms": round(health.worst * 1000, 1),
            "healthz_probes": health.count}


def user_and_repo(server: GitdServer) -> tuple[str, str, str]:
    server.cli("user", "add", "alice")
    token = server.cli("token", "create", "alice", "--scope", "write", "--name", "t").strip()
    server.cli("repo", "create", "alice/r", "--empty")
    return "alice", token, "alice/r"


def push_commit(server: GitdServer, token: str, build: Callable[[pygit2.Repository], pygit2.Oid], root: Path) -> None:
    bare = pygit2.init_repository(str(root / "src.git"), bare=True)
    tree = build(bare)
    sig = pygit2.Signature("b", "b@example.com", 0, 0)
    commit = bare.create_commit(None, sig, sig, "m\n", tree, [])
    url = server.url.replace("http://", f"http://alice:{token}@") + "/alice/r.git"
    Git(root / "home")("push", url, f"{commit}:refs/heads/main", cwd=root / "src.git")


def status_of(reply: tuple[int, bytes]) -> str:
    status, body = reply
    return f"{status} ({len(body)} bytes) {body[:90].decode(errors='replace')}"


# -- attacks --------------------------------------------------------------------------------------------
def validate_yaml(server: GitdServer, root: Path, scale: str) -> dict:
    mapping = "".join(f"key{i}:\n  - name: value {i}\n    tags: [a, b, c]\n" for i in range(25000))[:1 << 20]
    mapping = mapping[:mapping.rindex("\nkey")]
    body = json.dumps({"content": f"---\n{mapping}\n---\n"}).encode()
    result = measure(server, lambda: status_of(call(server.url, "POST", "/api/validate-yaml", body,
                                                    {"Content-Type": "application/json"})))
    return {"attack": f"POST /api/validate-yaml, {len(mapping) / 1e6:.2f} MB of YAML, anonymous", **result}


def alias_bomb(server: GitdServer, root: Path, scale: str) -> dict:
    levels = 8 if scale == "small" else 9
    names = "abcdefghij"[:levels]
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [" + ", ".join([f"*{p}"] * 9) + "]\n" for p, c in itertools.pairwise(names))
    _, token, repo = user_and_repo(server)

    def build(bare: pygit2.Repository) -> pygit2.Oid:
        builder = bare.TreeBuilder()
        builder.insert("README.md", bare.create_blob(f"---\n{bomb}---\n".encode()), pygit2.GIT_FILEMODE_BLOB)
        return builder.write()

    push_commit(server, token, build, root)
    result = measure(server, lambda: status_of(call(server.url, "GET", f"/api/models/{repo}")))
    return {"attack": f"README front matter alias bomb, {len(bomb)} bytes (9**{levels} nodes), "
                      "anonymous GET /api/models/{repo}", **result}


def tree_bomb(server: GitdServer, root: Path, scale: str) -> dict:
    depth = 5 if scale == "small" else 10
    _, token, repo = user_and_repo(server)

    def build(bare: pygit2.Repository) -> pygit2.Oid:
        node, mode = bare.create_blob(b"x\n"), pygit2.GIT_FILEMODE_BLOB
        for _ in range(depth):
            builder = bare.TreeBuilder()
            for i in range(10):
                builder.insert(f"d{i}", node, mode)
            node, mode = builder.write(), pygit2.GIT_FILEMODE_TREE
        return node

    push_commit(server, token, build, root)
    result = measure(server, lambda: status_of(call(server.url, "GET", f"/api/models/{repo}")))
    return {"attack": f"tree bomb: {depth + 1} objects describing 10**{depth} paths, anonymous "
                      "GET /api/models/{repo}", **result}


def redos(server: GitdServer, root: Path, scale: str) -> dict:
    length = 80 if scale == "small" else 200
    _, token, repo = user_and_repo(server)
    body = json.dumps({"files": [{"path": "a" * length, "size": 1, "sample": ""}], "gitIgnore": "**a" * 6 + "b"})
    result = measure(server, lambda: status_of(call(server.url, "POST", f"/api/models/{repo}/preupload/main",
                                                    body.encode(), {"Authorization": f"Bearer {token}",
                                                                    "Content-Type": "application/json"})))
    return {"attack": f'preupload gitIgnore "**a"*6+"b" against a {length}-character path', **result}


def ndjson(server: GitdServer, root: Path, scale: str) -> dict:
    size = (16 if scale == "small" else 60) * 1024 * 1024
    _, token, repo = user_and_repo(server)
    line = json.dumps({"key": "file", "value": {"content": base64.b64encode(os.urandom(size)).decode(),
                                                "path": "x.bin", "encoding": "base64"}}).encode()
    bad = json.dumps({"key": "header", "value": {"summary": "s"}}).encode() + b"\n" + line + b"\n{broken\n"
    replies: list[str] = []

    def attack() -> str:
        threads = [threading.Thread(target=lambda: replies.append(status_of(call(
            server.url, "POST", f"/api/models/{repo}/commit/main", bad,
            {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"})))) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return " | ".join(sorted(set(replies)))

    path = server.repo_path(repo)
    result = measure(server, attack)
    loose = sum(1 for d in (path / "objects").iterdir() if len(d.name) == 2 for _ in d.iterdir())
    return {"attack": f"4 concurrent NDJSON commits, each a {len(line) / 1e6:.0f} MB line then a broken one",
            **result, "loose_objects_left": loose}


def paths_info(server: GitdServer, root: Path, scale: str) -> dict:
    _, token, repo = user_and_repo(server)
    push_commit(server, token, lambda bare: bare.TreeBuilder().write(), root)
    body = json.dumps({"paths": [f"p{i}" for i in range(700_000)]}).encode()
    result = measure(server, lambda: status_of(call(server.url, "POST", f"/api/models/{repo}/paths-info/main", body,
                                                    {"Content-Type": "application/json"})))
    return {"attack": f"paths-info with 700,000 paths ({len(body) / 1e6:.1f} MB JSON), anonymous", **result}


ATTACKS = {"validate_yaml": validate_yaml, "alias_bomb": alias_bomb, "tree_bomb": tree_bomb, "redos": redos,
           "ndjson": ndjson, "paths_info": paths_info}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(ATTACKS))
    parser.add_argument("--scale", choices=("small", "full"), default="full")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in args.only or list(ATTACKS):
        with tempfile.TemporaryDirectory(dir=WORK) as tmp:
            server = GitdServer(Path(tmp), {"jobs.workers": "1"}).start()
            try:
                results[name] = ATTACKS[name](server, Path(tmp), args.scale)
            finally:
                server.stop()
        print(json.dumps({name: results[name]}, indent=2), flush=True)
    print("saved", save_results(f"hostile-input-{args.scale}", results))


if __name__ == "__main__":
    main()
