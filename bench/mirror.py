#!/usr/bin/env python3
"""Mirror benchmark: gitd's pull mirror against the plain git client doing the same copy.

    .venv/bin/python bench/mirror.py --redis /path/to/redis.git [--rounds 3] [--lfs-mb 512]

Three measurements, each side by side with its peer, rounds alternating which goes first:

* **initial mirror**: `gitd mirror add bench/redisN PEER/redis.git --refs refs/` (every
  ref: 12k commits on the default branch, 8.5k refs) until the sync has published,
  against `git clone --mirror PEER/redis.git`; PEER is git http-backend behind nginx +
  fcgiwrap (bench/clone.py's peer). The upstream is a real redis repository: a bare
  clone, as the `fetch` tool stores it (refs whose objects it lacks are left out).
* **incremental sync**: one new commit on one branch upstream, then `POST
  .../mirror/sync` until it is published (absolute seconds; the issue asks < 2 s).
* **LFS model**: a model of `--lfs-files` x `--lfs-mb` MB Git LFS files on another gitd,
  mirrored with `--from-hub SRC --repo-id bench/model` into a fresh daemon, against
  `GIT_LFS_SKIP_SMUDGE=1 git clone SRC/bench/model.git` + `git lfs pull`.

Ratios are gitd/peer (below 1.0: gitd is faster), the median of the per-round ratios.
Needs git, git-lfs, nginx and fcgiwrap.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import WORK, Git, GitdServer, median, save_results, timed
from clone import HttpBackendPeer

SOURCE = WORK / "redis-mirror-source.git"


# -- the upstream ----------------------------------------------------------------------------------
def prepare_source(redis: Path, dest: Path, git: Git) -> Path:
    """A complete bare copy of ``redis`` (a partial clone may lack a few objects: the refs
    that reach them are left out), repacked with a bitmap as a served repository is."""
    if (dest / "packed-refs").exists():
        return dest
    missing = [line[1:] for line in git.out("--git-dir", str(redis), "rev-list", "--objects", "--missing=print",
                                            "--all").splitlines() if line.startswith("?")]
    bad_refs: set[str] = set()
    if missing:
        bad_refs = refs_reaching(redis, set(missing), git)
    refs = [r for r in git.out("--git-dir", str(redis), "for-each-ref", "--format=%(refname)").splitlines()
            if r not in bad_refs]
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    git("init", "-q", "--bare", str(tmp))
    git("--git-dir", str(tmp), "fetch", "-q", "--stdin", f"file://{redis}",
        input="".join(f"+{r}:{r}\n" for r in refs).encode())
    git("--git-dir", str(tmp), "repack", "-q", "-a", "-d", "-b")
    git("--git-dir", str(tmp), "pack-refs", "--all")
    head = "refs/heads/unstable" if "refs/heads/unstable" in refs else next(r for r in refs if "/heads/" in r)
    git("--git-dir", str(tmp), "symbolic-ref", "HEAD", head)
    tmp.rename(dest)
    print(f"prepared {dest}: {len(refs)} refs ({len(bad_refs)} left out: they reach missing objects)", flush=True)
    return dest


def refs_reaching(repo: Path, missing: set[str], git: Git) -> set[str]:
    import pygit2

    handle = pygit2.Repository(str(repo))
    listing = git.out("--git-dir", str(repo), "cat-file", "--batch-all-objects",
                      "--batch-check=%(objectname) %(objecttype)").splitlines()
    parents: dict[str, list[str]] = {}
    for line in listing:
        oid, kind = line.split()
        if kind == "tree":
            for entry in handle[oid]:
                parents.setdefault(str(entry.id), []).append(oid)
    bad, stack = set(missing), list(missing)
    while stack:
        for parent in parents.get(stack.pop(), []):
            if parent not in bad:
                bad.add(parent)
                stack.append(parent)
    commits = [line.split()[0] for line in listing if line.endswith(" commit")]
    bad_commits = [c for c in commits if str(handle[c].tree_id) in bad]
    out: set[str] = set()
    for commit in bad_commits:
        out |= set(git.out("--git-dir", str(repo), "for-each-ref", "--format=%(refname)", "--contains",
                           commit).splitlines())
    return out


# -- gitd ----------------------------------------------------------------------------------------
def mirror_row(server: GitdServer, repo: str) -> dict | None:
    db = sqlite3.connect(f"file:{server.data / 'gitd.db'}?mode=ro", uri=True)
    try:
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT * FROM plugin_mirror_pull WHERE repo = ?", [repo]).fetchone()
        return dict(row) if row else None
    finally:
        db.close()


def wait_success(server: GitdServer, repo: str, after: float, timeout: float = 3600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = mirror_row(server, repo)
        if row and row["state"] == "idle" and (row["last_attempt"] or 0) > after:
            if row["last_error"]:
                raise RuntimeError(f"mirror {repo} failed: {row['last_error']}")
            return row
        time.sleep(0.02)
    raise RuntimeError(f"mirror {repo}: no sync finished in {timeout}s")


def gitd_server(root: Path) -> GitdServer:
    return GitdServer(root, {"server.log_level": "warning", "jobs.poll_interval": "0.1", "jobs.workers": "3",
                             "plugins.mirror.jitter": "0", "plugins.mirror.interval": "0",
                             "plugins.mirror.allow_local_networks": "true"})


def api_call(method: str, url: str, token: str, body: dict | None = None) -> None:
    data = json.dumps(body).encode() if body is not None else b""
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as resp:
        resp.read()


# -- the measurements ------------------------------------------------------------------------------
def initial_and_incremental(args: argparse.Namespace, git: Git, tmp: Path) -> dict:
    source = prepare_source(args.redis.resolve(), SOURCE, git)
    peer = HttpBackendPeer(tmp / "peer", buffering=False, workers=8)
    peer.add_repo("redis", source, git)
    gitd = gitd_server(tmp / "gitd")
    out: dict = {"initial": {"gitd": [], "peer": []}, "incremental": []}
    try:
        peer.start()
        gitd.start()
        gitd.cli("user", "add", "bench")
        token = gitd.cli("token", "create", "bench", "--scope", "write", "--name", "bench").strip()
        url = f"{peer.url}/redis.git"
        work = tmp / "work"
        git("clone", "-q", "--branch", "unstable", url, str(work))
        git("clone", "-q", "--mirror", url, str(tmp / "warm.git"))  # warms the page cache
        shutil.rmtree(tmp / "warm.git")
        last = ""
        for r in range(args.rounds):
            order = ["gitd", "peer"] if r % 2 == 0 else ["peer", "gitd"]
            for side in order:
                if side == "peer":
                    dest = tmp / f"clone{r}.git"
                    with timed() as t:
                        git("clone", "-q", "--mirror", url, str(dest))
                    shutil.rmtree(dest)
                else:
                    last = f"bench/redis{r}"
                    gitd.cli("repo", "create", "--empty", last)
                    started = time.time()
                    with timed() as t:
                        api_call("PUT", f"{gitd.url}/api/models/{last}/mirror", token, {"url": url, "refs": ["refs/"]})
                        row = wait_success(gitd, last, started)
                    result = json.loads(row["last_result"])
                    assert result["refs_changed"] > 8000, result
                    print(f"  gitd's phases: {result.get('phases')}", flush=True)
                out["initial"][side].append(t[0])
            print(f"round {r + 1}/{args.rounds}: initial mirror {out['initial']['gitd'][-1]:.1f}s, "
                  f"git clone --mirror {out['initial']['peer'][-1]:.1f}s", flush=True)
        for n in range(args.rounds * 2):
            (work / "bench-mirror.txt").write_text(f"change {n}\n")
            git("add", "bench-mirror.txt", cwd=work)
            git("commit", "-q", "-m", f"bench change {n}", cwd=work)
            git("push", "-q", str(peer.repos / "redis.git"), "unstable", cwd=work)  # the upstream moves
            before = time.time()
            with timed() as t:
                api_call("POST", f"{gitd.url}/api/models/{last}/mirror/sync", token)
                row = wait_success(gitd, last, before)
            result = json.loads(row["last_result"])
            assert result["refs_changed"] == 1, result
            out["incremental"].append(t[0])
            print(f"incremental sync {n + 1}: {t[0]:.2f}s ({result['objects']} objects)", flush=True)
    finally:
        gitd.stop()
        peer.stop()
    return out


def lfs_model(args: argparse.Namespace, git: Git, tmp: Path) -> dict:
    src = gitd_server(tmp / "src")
    out: dict = {"gitd": [], "peer": []}
    try:
        src.start()
        src.cli("user", "add", "bench")
        token = src.cli("token", "create", "bench", "--scope", "write", "--name", "bench").strip()
        src.cli("repo", "create", "--empty", "bench/model")
        work = tmp / "model-work"
        work.mkdir()
        git("init", "-q", "-b", "main", cwd=work)
        git("lfs", "install", "--local", cwd=work)
        git("lfs", "track", "*.safetensors", cwd=work)
        for i in range(args.lfs_files):
            with open(work / f"model-{i}.safetensors", "wb") as f:
                for _ in range(args.lfs_mb):
                    f.write(os.urandom(1 << 20))
        (work / "config.json").write_text('{"model_type": "bench"}\n')
        git("add", "-A", cwd=work)
        git("commit", "-q", "-m", "model", cwd=work)
        push_url = src.url.replace("http://", f"http://bench:{token}@") + "/bench/model.git"
        git("push", "-q", push_url, "main", cwd=work)
        shutil.rmtree(work)
        url = f"{src.url}/bench/model.git"
        for r in range(args.rounds):
            order = ["gitd", "peer"] if r % 2 == 0 else ["peer", "gitd"]
            for side in order:
                if side == "peer":
                    dest = tmp / f"model-clone{r}"
                    env = {**git.env, "GIT_LFS_SKIP_SMUDGE": "1"}
                    with timed() as t:
                        subprocess.run(["git", "clone", "-q", url, str(dest)], env=env, check=True)
                        git("lfs", "pull", cwd=dest)
                    size = sum(p.stat().st_size for p in dest.glob("*.safetensors"))
                    assert size == args.lfs_files * args.lfs_mb << 20, size
                    shutil.rmtree(dest)
                else:
                    dst = gitd_server(tmp / f"dst{r}")
                    try:
                        dst.start()
                        dst.cli("user", "add", "bench")
                        dst_token = dst.cli("token", "create", "bench", "--name", "bench").strip()
                        dst.cli("repo", "create", "--empty", "bench/model")
                        started = time.time()
                        with timed() as t:
                            api_call("PUT", f"{dst.url}/api/models/bench/model/mirror", dst_token,
                                     {"hub_url": src.url, "repo_id": "bench/model"})
                            row = wait_success(dst, "bench/model", started)
                        assert json.loads(row["last_result"])["lfs_objects"] == args.lfs_files, row
                    finally:
                        dst.stop()
                        shutil.rmtree(tmp / f"dst{r}", ignore_errors=True)
                out[side].append(t[0])
            print(f"round {r + 1}/{args.rounds}: LFS mirror {out['gitd'][-1]:.1f}s, "
                  f"git clone + git lfs pull {out['peer'][-1]:.1f}s", flush=True)
    finally:
        src.stop()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--redis", type=Path, help="a bare redis repository (the fetch tool's github:redis/redis)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--lfs-mb", type=int, default=512, help="size of each LFS file, MB")
    ap.add_argument("--lfs-files", type=int, default=2)
    ap.add_argument("--skip-redis", action="store_true")
    ap.add_argument("--skip-lfs", action="store_true")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if not args.skip_redis and args.redis is None and not SOURCE.exists():
        ap.error("--redis PATH is needed once (the prepared copy is then kept in bench/.work)")
    WORK.mkdir(parents=True, exist_ok=True)
    git = Git(WORK / "home")
    git("lfs", "install", "--skip-repo")
    tmp = Path(tempfile.mkdtemp(prefix="gitd-bench-mirror-", dir=WORK))
    results: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "cpus": os.cpu_count()}
    try:
        if not args.skip_redis:
            if args.redis is None:
                args.redis = SOURCE
            found = initial_and_incremental(args, git, tmp)
            ratios = [g / p for g, p in zip(found["initial"]["gitd"], found["initial"]["peer"], strict=True)]
            results["initial"] = {"gitd_s": median(found["initial"]["gitd"]),
                                  "peer_s": median(found["initial"]["peer"]), "ratio": median(ratios),
                                  "runs": found["initial"],
                                  "peer": "git clone --mirror from nginx + fcgiwrap + git http-backend"}
            results["incremental"] = {"median_s": median(found["incremental"]), "max_s": max(found["incremental"]),
                                      "runs": found["incremental"]}
        if not args.skip_lfs:
            found = lfs_model(args, git, tmp)
            ratios = [g / p for g, p in zip(found["gitd"], found["peer"], strict=True)]
            results["lfs"] = {"gitd_s": median(found["gitd"]), "peer_s": median(found["peer"]),
                              "ratio": median(ratios), "runs": found,
                              "files": f"{args.lfs_files} x {args.lfs_mb} MB",
                              "peer": "GIT_LFS_SKIP_SMUDGE=1 git clone + git lfs pull from the source gitd"}
        print()
        for name in ("initial", "lfs"):
            if name in results:
                r = results[name]
                print(f"{name:<10} gitd {r['gitd_s']:8.2f}s   peer {r['peer_s']:8.2f}s   ratio {r['ratio']:.2f}")
        if "incremental" in results:
            r = results["incremental"]
            print(f"incremental sync: median {r['median_s']:.2f}s, worst {r['max_s']:.2f}s")
        print(f"\nresults: {save_results('mirror', results)}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
