#!/usr/bin/env python3
"""Faults and operations (issue #20): gitd as it is, side by side with gitd as it was before
(``--baseline COMMIT``, run from a worktree of that commit), under real faults.

    .venv/bin/python bench/ops_faults.py lock [--hold 10 --hold 60] [--baseline 79a3bcf]
    .venv/bin/python bench/ops_faults.py gc [--baseline 79a3bcf]
    .venv/bin/python bench/ops_faults.py shutdown [--baseline 79a3bcf]
    .venv/bin/python bench/ops_faults.py backup --source redis=PATH [--lfs-gib 2]

* lock: another process holds the database's write lock for each --hold seconds; meanwhile
  /healthz every 0.2 s (worst and 99th percentile latency), a Hub API read every second and
  an ``git ls-remote`` with a token never used before every 3 s (their status codes).
* gc: a repository with three kept packs read through the Hub API (on the event loop and on
  worker threads), then ``git gc``; the bytes of deleted packs the daemon still holds (open or
  mapped) right after, after reads of the repository, and after [hub] handle_max_age.
* shutdown: SIGTERM while one slow HTTP clone and one slow SSH clone (neither client reads)
  run; seconds until the daemon exits (gitd's default [server] shutdown_grace, 20 s).
* backup: PATH (e.g. a mirror of github.com/redis/redis) and --lfs-gib of random LFS objects
  in a daemon; ``gitd backup`` (full, then incremental) timed against ``git clone --mirror``
  of the repository plus ``cp -a`` of the LFS store; then a backup taken while pushers push,
  restored with ``gitd restore``: ``gitd doctor`` and ``git fsck`` on the result, and every ref
  and LFS object compared with the live daemon once the pushes stopped (an incremental backup
  restored again): the differences are counted.

Results go to bench/results/ops_faults-*.json.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import WORK, Git, GitdServer, save_results

ROOT = Path(__file__).resolve().parents[1]
MIB = 1 << 20


# -- daemons ---------------------------------------------------------------------------------
def baseline_tree(commit: str) -> Path:
    """A worktree of ``commit`` under bench/.work (made once): gitd as it was."""
    path = WORK / f"baseline-{commit}"
    if not (path / "gitd").is_dir():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), commit], cwd=ROOT, check=True,
                       capture_output=True)
    return path


class Server(GitdServer):
    def __init__(self, root: Path, settings: dict[str, str] | None = None, *, tree: Path | None = None,
                 ssh: str = ""):
        super().__init__(root, settings, ssh=ssh)
        self.tree = tree

    def _env(self) -> dict[str, str]:
        env = super()._env()
        if self.tree is not None:  # that tree's gitd, not the current directory's (-m puts it first)
            env["PYTHONPATH"] = str(self.tree)
            env["PYTHONSAFEPATH"] = "1"
        return env

    def create_empty(self, repo: str) -> None:
        """A repository without the first commit new ones get, for pushes of other histories
        (a baseline tree from before that first commit knows no ``--empty``)."""
        self.cli("repo", "create", repo, *(() if self.tree is not None else ("--empty",)))

    def user(self) -> tuple[str, str]:
        name = f"bench{os.getpid() % 10000}"
        self.cli("user", "add", name)
        return name, self.cli("token", "create", name, "--name", f"t{time.monotonic_ns()}").strip()


def sides(args: argparse.Namespace) -> list[tuple[str, Path | None]]:
    out: list[tuple[str, Path | None]] = [("gitd", None)]
    if args.baseline:
        out.append((f"gitd@{args.baseline}", baseline_tree(args.baseline)))
    return out


def get(url: str, token: str | None = None, timeout: float = 120) -> tuple[int, float]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError:
        status = 0
    return status, time.perf_counter() - started


def with_token(url: str, token: str) -> str:
    return url.replace("http://", f"http://u:{token}@", 1)


HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=120)
conn.execute("BEGIN IMMEDIATE")
conn.execute("UPDATE accounts SET email = email")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


# -- lock ------------------------------------------------------------------------------------
def bench_lock(args: argparse.Namespace, git: Git) -> dict:
    results: dict = {}
    for name, tree in sides(args):
        for hold in args.hold:
            results[f"{name} hold {hold:g}s"] = lock_once(name, tree, hold, git)
            print(name, hold, results[f"{name} hold {hold:g}s"], flush=True)
    return results


def lock_once(name: str, tree: Path | None, hold: float, git: Git) -> dict:
    root = WORK / "ops" / f"lock-{name}-{hold}"
    shutil.rmtree(root, ignore_errors=True)
    server = Server(root, {"jobs.poll_interval": "1.0"}, tree=tree).start()
    try:
        user, token = server.user()
        server.create_empty(f"{user}/r")
        work = root / "w"
        work.mkdir()
        git("init", "-q", "-b", "main", cwd=work)
        (work / "a.txt").write_text("a\n")
        git("add", "-A", cwd=work)
        git("commit", "-qm", "a", cwd=work)
        git("push", "-q", with_token(f"{server.url}/{user}/r.git", token), "main", cwd=work)
        fresh = [server.cli("token", "create", user, "--name", f"f{i}").strip() for i in range(int(hold) + 5)]
        health: list[float] = []
        reads: list[int] = []
        clones: list[int] = []
        stop = threading.Event()

        def reader() -> None:
            while not stop.is_set():
                reads.append(get(f"{server.url}/api/models/{user}/r", token)[0])
                stop.wait(1.0)

        def cloner() -> None:
            for token in fresh:
                if stop.is_set():
                    break
                clones.append(git("ls-remote", with_token(f"{server.url}/{user}/r.git", token), check=False)
                              .returncode)
                stop.wait(3.0)

        holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(server.data / "gitd.db"), str(hold)],
                                  stdout=subprocess.PIPE, text=True)
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        end = time.monotonic() + hold
        threads = [threading.Thread(target=reader), threading.Thread(target=cloner)]
        for thread in threads:
            thread.start()
        while time.monotonic() < end:
            status, took = get(f"{server.url}/healthz", timeout=hold + 60)
            health.append(took if status == 200 else float("inf"))
            time.sleep(0.2)
        stop.set()
        for thread in threads:
            thread.join(hold + 120)
        holder.wait()
        ordered = sorted(health)
        return {
            "healthz_worst_ms": round(ordered[-1] * 1000, 1),
            "healthz_p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 1),
            "healthz_samples": len(ordered),
            "hub_reads": {str(s): reads.count(s) for s in sorted(set(reads))},
            "fresh_token_ls_remote_failures": sum(1 for c in clones if c != 0), "ls_remotes": len(clones),
        }
    finally:
        server.stop()


# -- gc --------------------------------------------------------------------------------------
def deleted_pack_bytes(pid: int, prefix: str) -> int:
    held: dict[str, int] = {}
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith(prefix) and target.endswith(" (deleted)"):
                held[target] = os.stat(fd).st_size
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith(prefix) and fields[5].endswith(" (deleted)"):
            start, end = (int(x, 16) for x in fields[0].split("-"))
            held[fields[5]] = max(held.get(fields[5], 0), end - start)
    return sum(held.values())


def bench_gc(args: argparse.Namespace, git: Git) -> dict:
    results: dict = {}
    for name, tree in sides(args):
        results[name] = gc_once(name, tree, git)
        print(name, results[name], flush=True)
    return results


def gc_once(name: str, tree: Path | None, git: Git) -> dict:
    root = WORK / "ops" / f"gc-{name}"
    shutil.rmtree(root, ignore_errors=True)
    server = Server(root, {"hub.handle_max_age": "10"} if tree is None else {}, tree=tree).start()
    try:
        user, token = server.user()
        repo = f"{user}/r"
        server.create_empty(repo)
        url = with_token(f"{server.url}/{repo}.git", token)
        work = root / "w"
        work.mkdir()
        git("init", "-q", "-b", "main", cwd=work)
        for n in range(3):  # three pushes of 32 MiB each: three kept packs
            for i in range(4):
                (work / f"d{n}-{i}.bin").write_bytes(os.urandom(8 * MIB))
            git("add", "-A", cwd=work)
            git("commit", "-qm", f"p{n}", cwd=work)
            git("-c", "pack.compression=0", "push", "-q", url, "main", cwd=work)
        path = server.repo_path(repo)

        def read_all() -> None:
            get(f"{server.url}/api/models/{repo}", token)
            get(f"{server.url}/api/models/{repo}/tree/main?recursive=1", token)
            for n in range(3):
                get(f"{server.url}/{repo}/resolve/main/d{n}-0.bin", token)

        stop = threading.Event()

        def keep_reading() -> None:
            while not stop.is_set():
                read_all()

        readers = [threading.Thread(target=keep_reading) for _ in range(3)]
        for thread in readers:
            thread.start()
        time.sleep(2)
        git("--git-dir", str(path), "gc", "-q")  # what gc --auto does after enough pushes
        stop.set()
        for thread in readers:
            thread.join()
        assert server.proc is not None
        prefix = f"{path}/objects/pack/"
        row = {"packs_mib_before_gc": 96.0,
               "held_right_after_gc_mib": deleted_pack_bytes(server.proc.pid, prefix) / MIB}
        time.sleep(1.2)
        read_all()
        row["held_after_one_more_read_mib"] = deleted_pack_bytes(server.proc.pid, prefix) / MIB
        time.sleep(15)
        row["held_after_15s_idle_mib"] = deleted_pack_bytes(server.proc.pid, prefix) / MIB
        return {k: round(v, 1) for k, v in row.items()}
    finally:
        server.stop()


# -- shutdown --------------------------------------------------------------------------------
def bench_shutdown(args: argparse.Namespace, git: Git) -> dict:
    sys.path.insert(0, str(ROOT))
    from tests.e2e.rawhttp import upload_pack_v0_request

    results: dict = {}
    for name, tree in sides(args):
        root = WORK / "ops" / f"shutdown-{name}"
        shutil.rmtree(root, ignore_errors=True)
        server = Server(root, tree=tree, ssh="127.0.0.1:0").start()
        try:
            user, token = server.user()
            key = root / "id"
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
            server.cli("sshkey", "add", user, str(key) + ".pub")
            repo = f"{user}/big"
            server.create_empty(repo)
            work = root / "w"
            work.mkdir()
            git("init", "-q", "-b", "main", cwd=work)
            for i in range(3):
                (work / f"part{i}.bin").write_bytes(os.urandom(4 * MIB))
            git("-c", "core.compression=0", "add", "-A", cwd=work)
            git("commit", "-qm", "big", cwd=work)
            git("-c", "pack.compression=0", "push", "-q", with_token(f"{server.url}/{repo}.git", token), "main",
                cwd=work)
            head = git.out("rev-parse", "HEAD", cwd=work)
            host, port = server.url.removeprefix("http://").split(":")
            body = upload_pack_v0_request([head])
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
            sock.connect((host, int(port)))
            sock.sendall((f"POST /{repo}.git/git-upload-pack HTTP/1.1\r\nHost: x\r\nContent-Type: "
                          f"application/x-git-upload-pack-request\r\nContent-Length: {len(body)}\r\n\r\n").encode()
                         + body)
            sock.recv(65536)
            ssh_host, ssh_port = server.info["ssh"].rsplit(":", 1)
            known = root / "known_hosts"
            pub = (server.data / "ssh" / "ssh_host_ed25519_key.pub").read_text().split()
            known.write_text(f"[{ssh_host}]:{ssh_port} {pub[0]} {pub[1]}\n")
            ssh = subprocess.Popen(["ssh", "-F", "/dev/null", "-p", ssh_port, "-i", str(key), "-o", "BatchMode=yes",
                                    "-o", f"UserKnownHostsFile={known}", "-o", "IdentitiesOnly=yes",
                                    f"git@{ssh_host}", f"git-upload-pack '{repo}'"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            assert ssh.stdin is not None and ssh.stdout is not None
            ssh.stdin.write(body)
            ssh.stdin.flush()
            ssh.stdout.read(1024)
            time.sleep(1)
            assert server.proc is not None
            started = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            try:
                code = server.proc.wait(300)
            except subprocess.TimeoutExpired:
                code = None
            results[name] = {"seconds_to_exit": round(time.monotonic() - started, 1), "exit_status": code}
            print(name, results[name], flush=True)
            sock.close()
            ssh.kill()
        finally:
            server.stop()
    return results


# -- backup ----------------------------------------------------------------------------------
def files_digest(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.glob("*/*/*")):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(MIB):
                h.update(block)
        out[path.name] = h.hexdigest()
    return out


def refs(git: Git, path: Path) -> dict[str, str]:
    text = git.out("--git-dir", str(path), "for-each-ref", "--format=%(refname) %(objectname)")
    return dict(line.split(" ") for line in text.splitlines())


def upload_lfs(server: Server, repo: str, token: str, size: int) -> str:
    data = os.urandom(size)
    oid = hashlib.sha256(data).hexdigest()
    base = f"{server.url}/{repo}.git/info/lfs"
    request = urllib.request.Request(f"{base}/objects/batch", method="POST", data=json.dumps(
        {"operation": "upload", "objects": [{"oid": oid, "size": size}]}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/vnd.git-lfs+json"})
    with urllib.request.urlopen(request) as response:
        action = json.loads(response.read())["objects"][0]["actions"]["upload"]
    put = urllib.request.Request(action["href"], method="PUT", data=data, headers=action["header"])
    with urllib.request.urlopen(put) as response:
        response.read()
    return oid


def timed_run(argv: list[str], **kw) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, **kw)
    return time.perf_counter() - started


def heads_and_tags(source: Path, name: str, git: Git) -> Path:
    """A bare copy of ``source``'s branches and tags under bench/.work (made once): snapshot
    mirrors may lack objects some of their other refs (old pull requests) reach."""
    dest = WORK / "histories" / f"{name}-heads-tags.git"
    if not (dest / "HEAD").exists():
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        git("init", "-q", "--bare", str(tmp))
        git("--git-dir", str(tmp), "fetch", "-q", str(source), "refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*")
        shutil.copy2(source / "HEAD", tmp / "HEAD")
        tmp.rename(dest)
    return dest


def bench_backup(args: argparse.Namespace, git: Git) -> dict:
    name, source_path = args.source.split("=", 1)
    source = heads_and_tags(Path(source_path), name, git)
    root = WORK / "ops" / "backup"
    shutil.rmtree(root, ignore_errors=True)
    server = Server(root, {"server.min_free_space": "0"}).start()
    gitd = [sys.executable, "-m", "gitd.cli", "--data", str(server.data)]
    try:
        user, token = server.user()
        repo = f"{user}/{name}"
        server.create_empty(repo)
        server.install_repo(repo, source)
        server.create_empty(f"{user}/weights")
        for _ in range(int(args.lfs_gib * 1024 // 256)):
            upload_lfs(server, f"{user}/weights", token, 256 * MIB)
        out: dict = {}
        dest = root / "backup"
        out["gitd_backup_full_s"] = round(timed_run([*gitd, "backup", str(dest)]), 1)
        out["gitd_backup_incremental_s"] = round(timed_run([*gitd, "backup", str(dest)]), 1)
        peer = root / "peer"
        peer.mkdir()
        clone_s = timed_run(["git", "clone", "-q", "--mirror", with_token(f"{server.url}/{repo}.git", token),
                             str(peer / "repo.git")], env=git.env)
        cp_s = timed_run(["cp", "-a", str(server.data / "lfs"), str(peer / "lfs")])
        out["peer_clone_mirror_plus_cp_s"] = round(clone_s + cp_s, 1)
        out["ratio_full_backup_to_peer"] = round(out["gitd_backup_full_s"] / (clone_s + cp_s), 2)

        # Round trip under push load: pushers keep pushing to other repositories meanwhile.
        stop = threading.Event()
        pushed = {"count": 0, "failed": 0}

        def pusher(i: int) -> None:
            target = f"{user}/load{i}"
            work = root / f"load{i}"
            work.mkdir()
            git("init", "-q", "-b", "main", cwd=work)
            n = 0
            while not stop.is_set():
                (work / f"f{n}.txt").write_text(os.urandom(16).hex())
                git("add", "-A", cwd=work)
                git("commit", "-qm", f"c{n}", cwd=work)
                ok = git("push", "-q", with_token(f"{server.url}/{target}.git", token), "main", cwd=work,
                         check=False).returncode == 0
                pushed["count" if ok else "failed"] += 1
                n += 1

        for i in range(3):
            server.create_empty(f"{user}/load{i}")
        threads = [threading.Thread(target=pusher, args=(i,)) for i in range(3)]
        for thread in threads:
            thread.start()
        time.sleep(2)
        live_dest = root / "backup-live"
        out["backup_under_push_load_s"] = round(timed_run([*gitd, "backup", str(live_dest)]), 1)
        stop.set()
        for thread in threads:
            thread.join()
        out["pushes_during"] = dict(pushed)
        restored = root / "restored" / "data"
        out["restore_s"] = round(timed_run([*gitd[:3], "--data", str(restored), "restore", str(live_dest)]), 1)
        doctor = subprocess.run([*gitd[:3], "--data", str(restored), "doctor"], capture_output=True, text=True)
        out["doctor_on_restore"] = doctor.stdout.strip().splitlines()[-1]
        fsck_failures = 0
        for path in restored.glob("repos/*/*.git"):
            fsck_failures += git("--git-dir", str(path), "fsck", "--full", "--no-dangling", check=False).returncode != 0
        out["fsck_failures_on_restore"] = fsck_failures
        # Quiet now: an incremental backup restores to exactly what the daemon holds.
        timed_run([*gitd, "backup", str(live_dest)])
        again = root / "restored2" / "data"
        timed_run([*gitd[:3], "--data", str(again), "restore", str(live_dest)])
        ref_diffs = 0
        for path in server.data.glob("repos/*/*.git"):
            ref_diffs += refs(git, path) != refs(git, again / path.relative_to(server.data))
        live_lfs, got_lfs = files_digest(server.data / "lfs" / "objects"), files_digest(again / "lfs" / "objects")
        out["ref_diffs"] = ref_diffs
        out["lfs_diffs"] = len(set(live_lfs.items()) ^ set(got_lfs.items()))
        out["lfs_objects"] = len(live_lfs)
        print(json.dumps(out, indent=2), flush=True)
        return {name: out}
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("lock", "gc", "shutdown", "backup"))
    parser.add_argument("--hold", type=float, action="append", help="seconds the lock is held (repeatable)")
    parser.add_argument("--baseline", help="a commit of gitd to run beside this one (e.g. the one before #20)")
    parser.add_argument("--source", help="NAME=PATH of a repository to back up")
    parser.add_argument("--lfs-gib", type=float, default=2.0)
    args = parser.parse_args()
    args.hold = args.hold or [10.0, 60.0]
    git = Git(WORK / "ops" / "home")
    run = {"lock": bench_lock, "gc": bench_gc, "shutdown": bench_shutdown, "backup": bench_backup}[args.what]
    results = run(args, git)
    print(save_results(f"ops_faults-{args.what}", results))


if __name__ == "__main__":
    main()
