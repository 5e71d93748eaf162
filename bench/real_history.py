#!/usr/bin/env python3
"""Real histories: push whole repositories to gitd and clone them back, against git
http-backend behind nginx + fcgiwrap.

    .venv/bin/python bench/real_history.py --source redis=PATH [--source flask=PATH] [--rounds 3]
                                           [--refs heads+tags|all] [--pull-refs N]

Each PATH is a git repository (bare or not) with the history to push, e.g. a mirror of
github.com/redis/redis. It is cloned once (hard links) under bench/.work/, so the push
never touches it. Per round and per server: a new empty repository, then

* push: ``git push`` of its branches and tags over HTTP, timed (``--pull-refs N``: plus N
  refs ``refs/pull/<n>/head`` spread over the history, as GitHub repositories carry
  thousands; ``--refs all``: every ref of the source, which must then hold every object
  they reach: snapshot mirrors may lack some of old pull requests);
* clone back: ``git clone --mirror`` of what the server now holds, timed, then compared
  with the source: the refs pushed (``git for-each-ref``) and every reachable object
  (``git rev-list --all --objects``, sorted and hashed) must be identical.

Both servers check pushed objects the same way (``receive.fsckObjects`` with gitd's
``[git] fsck_ignore``, which real histories need: redis has zero-padded tree modes).
gitd also runs its receive hooks and the policy plugin, as it does for every push.
Rounds alternate which server goes first. Reported per repository: median times on each
side and the median of the per-round gitd/peer ratios (below 1.0: gitd is faster).

Needs git, nginx and fcgiwrap (Debian packages; scripts/bootstrap.sh installs them).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import WORK, Git, GitdServer, median, save_results, timed
from clone import HttpBackendPeer

from gitd.config import Config
from gitd.git.fsck import fsck_settings

REFSPECS = {"heads+tags": ["refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*"], "all": ["refs/*:refs/*"]}
NAMESPACES = {"heads+tags": ["refs/heads", "refs/tags"], "all": ["refs"]}


def local_copy(source: Path, name: str, git: Git) -> Path:
    """A bare mirror of ``source`` under bench/.work (hard links; made once)."""
    dest = WORK / "histories" / f"{name}.git"
    if not (dest / "HEAD").exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        git("clone", "-q", "--mirror", str(source), str(tmp))
        tmp.rename(dest)
    return dest


PULLS = "refs/bench-pull"  # in the local copy; pushed as refs/pull/*


def make_pull_refs(git: Git, repo: Path, count: int, namespaces: list[str]) -> None:
    """``count`` refs PULLS/<n>/head at commits spread evenly over the pushed history."""
    existing = git.out("--git-dir", str(repo), "for-each-ref", "--format=delete %(refname)", PULLS)
    if existing:
        git("--git-dir", str(repo), "update-ref", "--stdin", input=existing.encode() + b"\n")
    tips = git.out("--git-dir", str(repo), "for-each-ref", "--format=%(objectname)", *namespaces)
    proc = subprocess.run(["git", "--git-dir", str(repo), "rev-list", "--stdin"], input=tips.encode() + b"\n",
                          capture_output=True, env=git.env, check=True)
    history = proc.stdout.decode().split()
    step = max(1, len(history) // count)
    lines = [f"create {PULLS}/{n + 1}/head {history[(n * step) % len(history)]}" for n in range(count)]
    git("--git-dir", str(repo), "update-ref", "--stdin", input=("\n".join(lines) + "\n").encode())


def fingerprint(git: Git, repo: Path, namespaces: list[str]) -> tuple[str, str, int, int]:
    """(refs listing, hash of the sorted reachable objects, ref count, object count)."""
    refs = git.out("--git-dir", str(repo), "for-each-ref", "--format=%(objectname) %(refname)", *namespaces)
    refs = "\n".join(sorted(refs.replace(f" {PULLS}/", " refs/pull/").splitlines()))
    tips = [line.split()[0] for line in refs.splitlines()]
    proc = subprocess.run(["git", "--git-dir", str(repo), "rev-list", "--objects", "--stdin"],
                          input="\n".join(tips).encode() + b"\n", capture_output=True, env=git.env, check=True)
    objects = sorted(line.split(b" ", 1)[0] for line in proc.stdout.splitlines())
    return refs, hashlib.sha1(b"\n".join(objects)).hexdigest(), len(tips), len(objects)


def commits(git: Git, repo: Path, namespaces: list[str]) -> int:
    tips = git.out("--git-dir", str(repo), "for-each-ref", "--format=%(objectname)", *namespaces)
    proc = subprocess.run(["git", "--git-dir", str(repo), "rev-list", "--count", "--stdin"],
                          input=tips.encode() + b"\n", capture_output=True, env=git.env, check=True)
    return int(proc.stdout)


def push(git: Git, source: Path, url: str, refspecs: list[str]) -> float:
    with timed() as t:
        proc = git("--git-dir", str(source), "push", "-q", url, *refspecs, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"push to {url.split('@')[-1]} failed: {proc.stderr.decode(errors='replace')[-3000:]}")
    return t[0]


def clone_back(git: Git, url: str, dest: Path) -> float:
    shutil.rmtree(dest, ignore_errors=True)
    with timed() as t:
        git("clone", "-q", "--mirror", url, str(dest))
    return t[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", action="append", required=True, metavar="NAME=PATH",
                    help="a repository to push (repeat for more)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--refs", choices=sorted(REFSPECS), default="heads+tags")
    ap.add_argument("--pull-refs", type=int, default=0, metavar="N",
                    help="also push N refs/pull/<n>/head, at commits spread over the history (as GitHub "
                         "mirrors carry; those of a snapshot may lack objects, so they are made here)")
    ap.add_argument("--peer-workers", type=int, default=8, help="fcgiwrap processes")
    ap.add_argument("--keep", action="store_true", help="keep the servers' temporary directories")
    args = ap.parse_args()

    WORK.mkdir(parents=True, exist_ok=True)
    git = Git(WORK / "home")
    sources = {}
    for item in args.source:
        name, _, path = item.partition("=")
        sources[name] = local_copy(Path(path).resolve(), name, git)
    namespaces, refspecs = NAMESPACES[args.refs], REFSPECS[args.refs]
    cloned = namespaces  # where the pushed refs are in a clone
    if args.pull_refs:
        for source in sources.values():
            make_pull_refs(git, source, args.pull_refs, namespaces)
        refspecs = [*refspecs, f"{PULLS}/*:refs/pull/*"]
        namespaces, cloned = [*namespaces, PULLS], [*namespaces, "refs/pull"]
    fsck = fsck_settings(Config.load())
    expected = {}
    for name, source in sources.items():
        expected[name] = fingerprint(git, source, namespaces)
        _, _, n_refs, n_objects = expected[name]
        kinds = args.refs + (" + refs/pull" if args.pull_refs else "")
        print(f"{name}: {n_refs} refs ({kinds}), {commits(git, source, namespaces)} commits, "
              f"{n_objects} objects", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="gitd-bench-history-", dir=WORK))
    gitd = GitdServer(tmp / "gitd", {"server.log_level": "warning"})
    peer = HttpBackendPeer(tmp / "peer", buffering=False, workers=args.peer_workers)
    results: dict[str, dict] = {}
    try:
        gitd.start()
        gitd.cli("user", "add", "bench")
        token = gitd.cli("token", "create", "bench", "--name", "bench").strip()
        gitd_base = gitd.url.replace("http://", f"http://bench:{token}@")
        peer.repos.mkdir(parents=True, exist_ok=True)
        peer.start()
        for name, source in sources.items():
            times: dict[str, dict[str, list[float]]] = {op: {"gitd": [], "peer": []} for op in ("push", "clone back")}
            identical = {"gitd": True, "peer": True}
            for r in range(args.rounds):
                repo = f"{name}-{r}"
                gitd.cli("repo", "create", f"bench/{repo}", "--empty")
                target = peer.repos / f"{repo}.git"
                git("init", "-q", "--bare", str(target))
                for setting in ("http.receivepack=true", *fsck.git_config(("receive",))):
                    key, _, value = setting.partition("=")
                    git("--git-dir", str(target), "config", key, value)
                urls = {"gitd": f"{gitd_base}/bench/{repo}.git", "peer": f"{peer.url}/{repo}.git"}
                for side in (["gitd", "peer"] if r % 2 == 0 else ["peer", "gitd"]):
                    times["push"][side].append(push(git, source, urls[side], refspecs))
                    dest = tmp / f"back-{side}.git"
                    times["clone back"][side].append(clone_back(git, urls[side], dest))
                    same = fingerprint(git, dest, cloned)[:2] == expected[name][:2]
                    identical[side] = identical[side] and same
                    shutil.rmtree(dest)
                print(f"{name} round {r + 1}/{args.rounds} (gitd/peer): "
                      + "  ".join(f"{op} {v['gitd'][-1]:.1f}s/{v['peer'][-1]:.1f}s" for op, v in times.items())
                      + f"  identical: gitd {identical['gitd']}, peer {identical['peer']}", flush=True)
                gitd.cli("repo", "delete", f"bench/{repo}")
                shutil.rmtree(target)
            summary = {}
            for op, v in times.items():
                ratios = [g / p for g, p in zip(v["gitd"], v["peer"], strict=True)]
                summary[op] = {"gitd_s": median(v["gitd"]), "peer_s": median(v["peer"]), "ratio": median(ratios),
                               "runs": v}
            _, _, n_refs, n_objects = expected[name]
            results[name] = {"refs": n_refs, "objects": n_objects, "identical": identical, **summary}

        print(f"\n{'repository':<12}{'operation':<12}{'gitd':>9}{'peer':>9}{'ratio':>7}  identical "
              f"(median of {args.rounds} rounds; ratio = median of per-round gitd/peer)")
        for name, res in results.items():
            for op in ("push", "clone back"):
                s = res[op]
                same = f"gitd {res['identical']['gitd']}, peer {res['identical']['peer']}" if op == "clone back" else ""
                print(f"{name:<12}{op:<12}{s['gitd_s']:>8.1f}s{s['peer_s']:>8.1f}s{s['ratio']:>7.2f}  {same}")
        path = save_results("real_history", {
            "args": {k: str(v) for k, v in vars(args).items()}, "cpus": os.cpu_count(),
            "fsck_ignore": list(fsck.ignore),
            "peer": "nginx + fcgiwrap + git http-backend (same receive.fsck settings)", "results": results})
        print(f"\nresults: {path}")
        if not all(all(r["identical"].values()) for r in results.values()):
            print("bench: a clone differs from its source", file=sys.stderr)
            return 1
    finally:
        gitd.stop()
        peer.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
