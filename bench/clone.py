#!/usr/bin/env python3
"""Clone benchmark: gitd against git http-backend behind nginx + fcgiwrap.

    .venv/bin/python bench/clone.py [--repo PATH] [--rounds N] [--parallel N] ...

Both servers run here on loopback as the current user and serve the same objects (hard
links of one repository). By default the repository is a deterministic synthetic one
(`--commits` commits, about `--size-mb` MB of incompressible files plus source files
that change a little each commit), built once with git fast-import and cached under
bench/.work/. Rounds alternate which server goes first; the report gives, per
operation, the median time on each side and the median of the per-round gitd/peer
ratios (below 1.0: gitd is faster):

* full clone: `git clone --bare` of the big repository (protocol v2);
* no-op fetch: `git fetch` in an up-to-date clone, repeated `--fetches` times;
* parallel clones: `--parallel` simultaneous `git clone --bare` of a small repository.

Needs git, nginx and fcgiwrap (Debian packages; scripts/bootstrap.sh installs them).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import WORK, Git, GitdServer, copy_objects_and_refs, median, save_results, timed

HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"


# -- the synthetic repository -----------------------------------------------------------------
def build_synthetic(dest: Path, *, commits: int, size_mb: int, seed: int, git: Git) -> Path:
    """A bare repository with ``commits`` commits on main, tags every 100 commits, binary
    files rewritten and source files edited in each commit. The same arguments always give
    the same commit ids. Cached: returns at once when ``dest`` exists."""
    if (dest / "packed-refs").exists():
        return dest
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    git("init", "-q", "--bare", "-b", "main", str(tmp))
    rng = random.Random(seed)
    per_commit = size_mb * 1_000_000 // max(commits, 1)
    sources = {f"src/module_{i:02d}.py": [f"# module {i}\n"] + [f"value_{j} = {j}\n" for j in range(60)]
               for i in range(40)}
    proc = subprocess.Popen(["git", "fast-import", "--quiet", "--done"], cwd=tmp, env=git.env,
                            stdin=subprocess.PIPE)
    assert proc.stdin is not None
    out = proc.stdin
    when = 1_700_000_000
    for n in range(1, commits + 1):
        when += 60
        message = f"step {n}\n".encode()
        out.write(b"commit refs/heads/main\nmark :%d\n" % n)
        out.write(b"author Bench <bench@example.com> %d +0000\ncommitter Bench <bench@example.com> %d +0000\n"
                  % (when, when))
        out.write(b"data %d\n%s\n" % (len(message), message))
        if n > 1:
            out.write(b"from :%d\n" % (n - 1))
        size = max(1, int(per_commit * rng.uniform(0.25, 1.75)))
        blob = rng.randbytes(size)
        path = f"data/shard-{rng.randrange(300):03d}.bin"
        out.write(b"M 100644 inline %s\ndata %d\n%s\n" % (path.encode(), len(blob), blob))
        for _ in range(2):
            name = f"src/module_{rng.randrange(40):02d}.py"
            lines = sources[name]
            lines[rng.randrange(1, len(lines))] = f"value_{rng.randrange(10**6)} = {n}\n"
            if rng.random() < 0.3:
                lines.append(f"added_{n} = {rng.randrange(10**6)}\n")
            text = "".join(lines).encode()
            out.write(b"M 100644 inline %s\ndata %d\n%s\n" % (name.encode(), len(text), text))
        out.write(b"\n")
        if n % 100 == 0:
            out.write(b"reset refs/tags/v%d\nfrom :%d\n\n" % (n // 100, n))
    out.write(b"done\n")
    out.close()
    if proc.wait() != 0:
        raise RuntimeError("git fast-import failed")
    # One pack with a bitmap index, as `git gc` leaves a served bare repository.
    git("-c", "pack.window=0", "repack", "-a", "-d", "-b", "-q", cwd=tmp)
    git("pack-refs", "--all", cwd=tmp)
    tmp.rename(dest)
    return dest


def pack_size(repo: Path) -> int:
    return sum(p.stat().st_size for p in (repo / "objects" / "pack").glob("*.pack"))


# -- the peer: git http-backend behind nginx + fcgiwrap ------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HttpBackendPeer:
    """nginx → fcgiwrap → git http-backend, configured in ``root``, on a loopback port."""

    def __init__(self, root: Path, *, buffering: bool, workers: int):
        self.root = root
        self.repos = root / "repos"
        self.buffering = buffering
        self.workers = workers
        self.procs: list[subprocess.Popen] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def add_repo(self, name: str, source: Path, git: Git) -> None:
        target = self.repos / f"{name}.git"
        git("init", "-q", "--bare", str(target))
        copy_objects_and_refs(source, target)

    def start(self) -> HttpBackendPeer:
        for tool in ("nginx", "fcgiwrap"):
            if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
                sys.exit(f"bench: {tool} is not installed (apt-get install nginx fcgiwrap)")
        for sub in ("tmp", "logs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        sock = self.root / "fcgiwrap.sock"
        fcgiwrap = shutil.which("fcgiwrap") or "/usr/sbin/fcgiwrap"
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        with open(self.root / "logs" / "fcgiwrap.log", "ab") as log:
            self.procs.append(subprocess.Popen([fcgiwrap, "-c", str(self.workers), "-s", f"unix:{sock}"],
                                               stdout=subprocess.DEVNULL, stderr=log, start_new_session=True))
        conf = self.root / "nginx.conf"
        conf.write_text(self._nginx_conf(sock))
        self.procs.append(subprocess.Popen([nginx, "-p", str(self.root), "-c", str(conf), "-e",
                                            str(self.root / "logs" / "error.log")],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                           start_new_session=True))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.procs):
                raise RuntimeError(f"peer failed to start: {(self.root / 'logs' / 'error.log').read_text()[-2000:]}")
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                if sock.exists():
                    return self
            time.sleep(0.05)
        raise RuntimeError("peer did not start")

    def _nginx_conf(self, sock: Path) -> str:
        user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
        tmp = self.root / "tmp"
        return f"""
{user}
worker_processes auto;
daemon off;
pid {self.root}/nginx.pid;
error_log {self.root}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    fastcgi_temp_path {tmp}/fastcgi;
    proxy_temp_path {tmp}/proxy;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{self.port};
        client_max_body_size 0;
        location / {{
            fastcgi_pass unix:{sock};
            fastcgi_buffering {"on" if self.buffering else "off"};
            fastcgi_read_timeout 600s;
            fastcgi_param SCRIPT_FILENAME {HTTP_BACKEND};
            fastcgi_param GIT_PROJECT_ROOT {self.repos};
            fastcgi_param GIT_HTTP_EXPORT_ALL "";
            fastcgi_param GIT_CONFIG_NOSYSTEM 1;
            fastcgi_param PATH_INFO $uri;
            fastcgi_param QUERY_STRING $query_string;
            fastcgi_param REQUEST_METHOD $request_method;
            fastcgi_param CONTENT_TYPE $content_type;
            fastcgi_param CONTENT_LENGTH $content_length;
            fastcgi_param REMOTE_ADDR $remote_addr;
            fastcgi_param SERVER_PROTOCOL $server_protocol;
        }}
    }}
}}
"""

    def stop(self) -> None:
        """Stop nginx and fcgiwrap with all their workers (each runs in a process group of its own)."""
        for proc in reversed(self.procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            with contextlib.suppress(ProcessLookupError):  # prefork workers outlive their parent
                os.killpg(proc.pid, signal.SIGKILL)


# -- the operations ------------------------------------------------------------------------------
def full_clone(git: Git, url: str, scratch: Path) -> float:
    dest = scratch / "full.git"
    shutil.rmtree(dest, ignore_errors=True)
    with timed() as t:
        git("clone", "-q", "--bare", url, str(dest))
    shutil.rmtree(dest)
    return t[0]


def noop_fetch(git: Git, clone: Path, times: int) -> float:
    with timed() as t:
        for _ in range(times):
            git("fetch", "-q", "origin", cwd=clone)
    return t[0] / times


def parallel_clones(git: Git, url: str, scratch: Path, n: int) -> float:
    dests = [scratch / f"p{i}.git" for i in range(n)]
    for d in dests:
        shutil.rmtree(d, ignore_errors=True)
    with timed() as t:
        procs = [git.popen("clone", "-q", "--bare", url, str(d)) for d in dests]
        errors = [p.stderr.read() if p.stderr else b"" for p in procs if p.wait() != 0]
    if errors:
        raise RuntimeError(f"{len(errors)} parallel clones failed: {errors[0][-500:]!r}")
    for d in dests:
        shutil.rmtree(d)
    return t[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", type=Path, help="clone this repository instead of the synthetic one")
    ap.add_argument("--commits", type=int, default=3000, help="synthetic repo: number of commits")
    ap.add_argument("--size-mb", type=int, default=220, help="synthetic repo: MB of incompressible data")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--fetches", type=int, default=20, help="no-op fetches per round")
    ap.add_argument("--parallel", type=int, default=32, help="simultaneous clones of the small repo")
    ap.add_argument("--peer-buffering", choices=("on", "off"), default="off",
                    help="nginx fastcgi_buffering for the peer (off streams, like gitd)")
    ap.add_argument("--peer-workers", type=int, default=64, help="fcgiwrap processes")
    ap.add_argument("--keep", action="store_true", help="keep the servers' temporary directories")
    args = ap.parse_args()

    WORK.mkdir(parents=True, exist_ok=True)
    git = Git(WORK / "home")
    if args.repo:
        big = args.repo.resolve()
        if (big / ".git").is_dir():
            big = big / ".git"
        print(f"repository: {big}")
    else:
        name = f"synthetic-c{args.commits}-s{args.size_mb}-r{args.seed}.git"
        print(f"building (or reusing) {WORK / name} ...", flush=True)
        big = build_synthetic(WORK / name, commits=args.commits, size_mb=args.size_mb, seed=args.seed, git=git)
    small = build_synthetic(WORK / "small-c60-s1-r1.git", commits=60, size_mb=1, seed=1, git=git)
    print(f"big: {pack_size(big) / 1e6:.0f} MB pack, {git.out('--git-dir', str(big), 'rev-list', '--count', '--all')}"
          f" commits; small: {pack_size(small) / 1e3:.0f} kB pack", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="gitd-bench-", dir=WORK))
    gitd = GitdServer(tmp / "gitd", {"server.log_level": "warning"})
    peer = HttpBackendPeer(tmp / "peer", buffering=args.peer_buffering == "on", workers=args.peer_workers)
    try:
        gitd.start()
        gitd.cli("user", "add", "bench")
        for name, source in (("big", big), ("small", small)):
            gitd.cli("repo", "create", f"bench/{name}", "--empty")
            gitd.install_repo(f"bench/{name}", source)
            peer.add_repo(name, source, git)
        peer.start()
        urls = {"gitd": (f"{gitd.url}/bench/big.git", f"{gitd.url}/bench/small.git"),
                "peer": (f"{peer.url}/big.git", f"{peer.url}/small.git")}
        scratch = {side: tmp / f"client-{side}" for side in urls}
        fetch_clone = {}
        for side, (big_url, _) in urls.items():
            scratch[side].mkdir()
            fetch_clone[side] = scratch[side] / "fetch.git"
            git("clone", "-q", "--bare", big_url, str(fetch_clone[side]))  # also warms the page cache
            git("config", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*", cwd=fetch_clone[side])
            git("fetch", "-q", "origin", cwd=fetch_clone[side])

        times: dict[str, dict[str, list[float]]] = {op: {"gitd": [], "peer": []}
                                                    for op in ("full clone", "no-op fetch", "parallel clones")}
        for r in range(args.rounds):
            order = ["gitd", "peer"] if r % 2 == 0 else ["peer", "gitd"]
            for side in order:
                big_url, small_url = urls[side]
                times["full clone"][side].append(full_clone(git, big_url, scratch[side]))
                times["no-op fetch"][side].append(noop_fetch(git, fetch_clone[side], args.fetches))
                times["parallel clones"][side].append(parallel_clones(git, small_url, scratch[side], args.parallel))
            line = "  ".join(f"{op}: {v['gitd'][-1]:.3f}s/{v['peer'][-1]:.3f}s" for op, v in times.items())
            print(f"round {r + 1}/{args.rounds}  (gitd/peer)  {line}", flush=True)

        print(f"\n{'operation':<18}{'gitd':>10}{'peer':>10}{'ratio':>8}   (median of {args.rounds} rounds; "
              "ratio = median of per-round gitd/peer)")
        summary = {}
        for op, v in times.items():
            ratios = [g / p for g, p in zip(v["gitd"], v["peer"], strict=True)]
            summary[op] = {"gitd_s": median(v["gitd"]), "peer_s": median(v["peer"]), "ratio": median(ratios),
                           "runs": v}
            print(f"{op:<18}{median(v['gitd']):>9.3f}s{median(v['peer']):>9.3f}s{median(ratios):>8.2f}")
        path = save_results("clone", {"args": {k: str(v) for k, v in vars(args).items()},
                                      "big_pack_bytes": pack_size(big), "cpus": os.cpu_count(),
                                      "peer": f"nginx + fcgiwrap + git http-backend "
                                              f"(fastcgi_buffering {args.peer_buffering})",
                                      "results": summary})
        print(f"\nresults: {path}")
    finally:
        gitd.stop()
        peer.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
