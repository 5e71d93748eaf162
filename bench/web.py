#!/usr/bin/env python3
"""The web UI's render time: a repository page and a folder of 10,000 files, against the
Hub API's JSON answers for the same data and a floor (a static file the same server
answers from memory).

    .venv/bin/python bench/web.py [--files 10000] [--requests 200] [--rounds 3] [--tree-page N]

A ``gitd serve`` of its own on loopback, with one public model: a card with front
matter (license, base model, tags) and a few paragraphs, a ``src/`` folder, and a
``files/`` folder of ``--files`` entries written by ``git fast-import``. One aiohttp
client on a kept-alive connection asks each URL ``--requests`` times in a row, after
warm-up requests; rounds alternate the URLs. Timed: from sending the request to the last
byte of the answer, so the figures are the server's time plus a loopback round trip
(the floor shows that part). Reported per URL: p50 and p90 in milliseconds (over every
round's requests), and the ratios of the pages' p50 to their JSON peers' (the Hub API's
``model_info`` and tree listing of the same folder).

Goals (issue 17): p50 < 30 ms for the repository page, < 100 ms for the 10,000-file tree
(the page shows the first ``[web] tree_page`` entries, 1000 by default, with a link to the
next page, and counts them all; ``--tree-page 10000`` draws the whole folder on one page).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import WORK, Git, GitdServer, save_results

CARD = """---
license: apache-2.0
base_model: someone/base
pipeline_tag: text-generation
library_name: transformers
tags: [bench, web]
---
# A model for the web bench

{paragraphs}

```python
from transformers import AutoModel
model = AutoModel.from_pretrained("bench/model")
```
"""


def make_history(git: Git, work: Path, files: int) -> None:
    git("init", "-q", "-b", "main", str(work))
    paragraph = "This model is described in some detail here, with *emphasis* and a [link](docs/x.md). " * 6
    card = CARD.format(paragraphs="\n\n".join(paragraph for _ in range(8))).encode()
    code = b"def main():\n    return 1\n" * 20
    script = [b"blob", b"mark :1", b"data 3", b"hi", b"blob", b"mark :2", f"data {len(card)}".encode(), card,
              b"blob", b"mark :3", f"data {len(code)}".encode(), code,
              b"commit refs/heads/main", b"mark :4", b"committer B <b@example.com> 1700000000 +0000", b"data 4",
              b"many", b"M 100644 :2 README.md", b"M 100644 :3 src/app.py"]
    script += [f"M 100644 :1 files/f{n:06d}.txt".encode() for n in range(files)]
    subprocess.run(["git", "fast-import", "--quiet"], input=b"\n".join(script) + b"\n", cwd=work, env=git.env,
                   check=True, capture_output=True)


async def measure(base: str, urls: dict[str, str], requests: int, rounds: int, sizes: dict[str, int]
                  ) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in urls}
    async with aiohttp.ClientSession(base, connector=aiohttp.TCPConnector(limit=1)) as session:
        for name, url in urls.items():  # warm-up: caches, templates, the connection
            for _ in range(5):
                async with session.get(url) as resp:
                    assert resp.status == 200, (name, resp.status, (await resp.text())[:300])
                    sizes[name] = len(await resp.read())
        for _ in range(rounds):
            for name, url in urls.items():
                for _ in range(requests):
                    started = time.perf_counter()
                    async with session.get(url) as resp:
                        await resp.read()
                    times[name].append((time.perf_counter() - started) * 1000)
    return times


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tree-page", type=int, default=None, help="[web] tree_page (default: the daemon's)")
    args = parser.parse_args()

    root = WORK / "web"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    git = Git(root / "home")
    settings = {"web.tree_page": str(args.tree_page)} if args.tree_page else {}
    server = GitdServer(root, settings).start()
    try:
        server.cli("user", "add", "bench")
        token = server.cli("token", "create", "bench", "--scope", "write", "--name", "t").strip()
        server.cli("repo", "create", "bench/model", "--empty")
        work = root / "work"
        make_history(git, work, args.files)
        url = server.url.replace("http://", f"http://bench:{token}@") + "/bench/model.git"
        git("push", "-q", url, "main", cwd=work)
        page = subprocess.run(["curl", "-s", server.url + "/bench/model"], capture_output=True, text=True).stdout
        static = re.search(r'href="(/static/style\.css\?v=[0-9a-f]+)"', page).group(1)
        urls = {"repo_page": "/bench/model", "repo_api": "/api/models/bench/model",
                "tree_page": "/bench/model/tree/main/files", "tree_api": "/api/models/bench/model/tree/main/files",
                "floor_static": static}
        sizes: dict[str, int] = {}
        times = asyncio.run(measure(server.url, urls, args.requests, args.rounds, sizes))
    finally:
        server.stop()

    results: dict = {"files": args.files, "tree_page": args.tree_page, "requests": args.requests,
                     "rounds": args.rounds, "urls": urls}
    for name, values in times.items():
        results[name] = {"bytes": sizes[name], "p50_ms": round(statistics.median(values), 2),
                         "p90_ms": round(pct(values, 90), 2)}
    results["ratio_repo_page_to_api"] = round(results["repo_page"]["p50_ms"] / results["repo_api"]["p50_ms"], 2)
    results["ratio_tree_page_to_api"] = round(results["tree_page"]["p50_ms"] / results["tree_api"]["p50_ms"], 2)
    results["goals"] = {"repo_page_p50_under_30ms": results["repo_page"]["p50_ms"] < 30,
                        "tree_page_p50_under_100ms": results["tree_page"]["p50_ms"] < 100}
    for name in times:
        r = results[name]
        print(f"{name:14} {r['bytes']:9,} bytes  p50 {r['p50_ms']:8.2f} ms   p90 {r['p90_ms']:8.2f} ms")
    print(f"repo page / model_info JSON: {results['ratio_repo_page_to_api']}   "
          f"tree page / tree JSON: {results['ratio_tree_page_to_api']}")
    print(f"results: {save_results('web', results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
