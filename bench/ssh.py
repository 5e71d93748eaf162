#!/usr/bin/env python3
"""Clone over SSH: gitd's SSH transport against OpenSSH sshd with git-shell.

    .venv/bin/python bench/ssh.py [--rounds 7] [--parallel 32] [--commits 2000] [--size-mb 220]

Both servers run here on loopback as the current user, with the same client key, and
serve the same objects (hard links of one repository, built once by bench/common.py and
cached under bench/.work/). The peer is the stock setup: /usr/sbin/sshd with a throwaway
sshd_config (public keys only, ``AcceptEnv GIT_PROTOCOL``, and ``ForceCommand git-shell
-c "$SSH_ORIGINAL_COMMAND"``), its own host key and authorized_keys. The client is the
same OpenSSH ``ssh`` command for both (default ciphers), and git uses protocol v2.

Rounds alternate which server goes first. Reported, per operation: the median time on
each side and the median of the per-round gitd/sshd ratios (below 1.0: gitd is faster):

* clone: ``git clone --bare`` of the large repository (transfer and index-pack);
* parallel: ``--parallel`` simultaneous ``git clone --bare`` of a smaller repository,
  timed until the last one finishes;
* server CPU per clone: CPU seconds (user + system) the server spent on one clone of the
  large repository, its git processes included (gitd: the daemon and the git it ran; sshd:
  the per-connection sshd, git-shell and git). Unlike wall time, this hardly depends on
  what else the machine is doing.

Needs git and openssh-server (Debian packages; scripts/bootstrap.sh installs them).
"""

from __future__ import annotations

import argparse
import getpass
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    WORK,
    Gitd,
    build_large_repo,
    cpu_seconds,
    free_port,
    git_env,
    link_repository,
    median,
    pack_bytes,
    run,
    save_results,
    wait_for_port,
)

SSHD = "/usr/sbin/sshd"


class Sshd:
    """OpenSSH's sshd on loopback, serving repositories under ``root/repos`` through git-shell."""

    def __init__(self, root: Path, client_public_key: Path):
        self.root = root
        self.repos = root / "repos"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        root.mkdir(parents=True, exist_ok=True)
        self.host_key = root / "ssh_host_ed25519_key"
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench-sshd", "-f", str(self.host_key)])
        (root / "authorized_keys").write_text(client_public_key.read_text())
        (root / "authorized_keys").chmod(0o600)
        (root / "sshd_config").write_text("\n".join([
            "ListenAddress 127.0.0.1",
            f"HostKey {self.host_key}",
            f"AuthorizedKeysFile {root / 'authorized_keys'}",
            f"PidFile {root / 'sshd.pid'}",
            f"AllowUsers {getpass.getuser()}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            "UsePAM no",
            "StrictModes no",
            "AcceptEnv GIT_PROTOCOL",
            "MaxStartups 100:30:200",
            "MaxSessions 100",
            "PrintMotd no",
            "LogLevel ERROR",
            'ForceCommand git-shell -c "$SSH_ORIGINAL_COMMAND"',
            "",
        ]))

    def start(self) -> Sshd:
        privsep = Path("/run/sshd")  # sshd started as root insists on it; the Debian service makes it
        if os.geteuid() == 0 and not privsep.is_dir():
            privsep.mkdir(mode=0o755, parents=True)
        log = open(self.root / "sshd.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.root / "sshd_config"), "-p", str(self.port)],
                                     stdout=log, stderr=log, start_new_session=True)
        wait_for_port(self.port)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def clone(git: dict[str, str], url: str, dest: Path, server_pid: int | None = None) -> tuple[float, float]:
    """(wall seconds, server CPU seconds) of one bare clone."""
    cpu = cpu_seconds(server_pid) if server_pid else 0.0
    started = time.perf_counter()
    run(["git", "clone", "--bare", "-q", url, str(dest)], env=git)
    elapsed = time.perf_counter() - started
    time.sleep(0.2)  # let the server reap its processes
    cpu = cpu_seconds(server_pid) - cpu if server_pid else 0.0
    shutil.rmtree(dest)
    return elapsed, cpu


def parallel_clones(git: dict[str, str], url: str, scratch: Path, n: int) -> float:
    scratch.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    procs = [subprocess.Popen(["git", "clone", "--bare", "-q", url, str(scratch / f"c{i}")], env=git,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for i in range(n)]
    errors = [p.stderr.read().decode(errors="replace") for p in procs if p.wait() != 0 and p.stderr]
    elapsed = time.perf_counter() - started
    for p in procs:
        if p.stderr:
            p.stderr.close()
    shutil.rmtree(scratch)
    if errors:
        raise RuntimeError(f"{len(errors)} of {n} parallel clones failed: {errors[0][-500:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--parallel", type=int, default=32)
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--size-mb", type=int, default=220)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--parallel-size-mb", type=int, default=8,
                        help="size of the repository cloned in parallel")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()
    for tool in ("git", "git-shell", "ssh", "ssh-keygen", SSHD):
        if shutil.which(tool) is None:
            print(f"bench/ssh.py: {tool} is missing (sh scripts/bootstrap.sh test installs it)", file=sys.stderr)
            return 2

    WORK.mkdir(parents=True, exist_ok=True)
    build_env = git_env(WORK / "home")
    print(f"building or reusing the repositories under {WORK / 'repos'} ...", flush=True)
    large = build_large_repo(WORK / "repos" / f"large-c{args.commits}-s{args.size_mb}-r{args.seed}.git",
                             commits=args.commits, size_mb=args.size_mb, seed=args.seed, env=build_env)
    small = build_large_repo(WORK / "repos" / f"large-c200-s{args.parallel_size_mb}-r{args.seed}.git",
                             commits=200, size_mb=args.parallel_size_mb, seed=args.seed, env=build_env)
    print(f"large: {pack_bytes(large) / 1e6:.0f} MB pack, {args.commits} commits; "
          f"parallel: {pack_bytes(small) / 1e6:.1f} MB pack", flush=True)

    scratch = Path(tempfile.mkdtemp(prefix="ssh-", dir=WORK))
    gitd = sshd = None
    try:
        key = scratch / "client" / "id_ed25519"
        key.parent.mkdir(parents=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench-client", "-f", str(key)])

        gitd = Gitd(scratch / "gitd")
        gitd.cli("init", str(gitd.data))
        gitd.cli("user", "add", "bench")
        gitd.cli("sshkey", "add", "bench", str(key.with_suffix(".pub")))
        for name, source in (("large", large), ("small", small)):
            gitd.cli("repo", "create", f"bench/{name}")
            link_repository(source, gitd.repo_path(f"bench/{name}"))
        gitd.start()

        sshd = Sshd(scratch / "sshd", key.with_suffix(".pub"))
        for name, source in (("large", large), ("small", small)):
            link_repository(source, sshd.repos / "bench" / f"{name}.git")
        sshd.start()

        known_hosts = scratch / "client" / "known_hosts"
        gitd_host_key = (gitd.data / "ssh" / "ssh_host_ed25519_key.pub").read_text().split()[:2]
        sshd_host_key = sshd.host_key.with_suffix(".pub").read_text().split()[:2]
        known_hosts.write_text(f"[127.0.0.1]:{gitd.ssh_port} {' '.join(gitd_host_key)}\n"
                               f"[127.0.0.1]:{sshd.port} {' '.join(sshd_host_key)}\n")
        ssh = ["ssh", "-F", "/dev/null", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
               "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes"]
        client = {**git_env(scratch / "client" / "home"), "GIT_SSH_COMMAND": shlex.join(ssh)}
        user = getpass.getuser()
        urls = {
            "gitd": {name: f"ssh://git@127.0.0.1:{gitd.ssh_port}/bench/{name}.git" for name in ("large", "small")},
            "sshd": {name: f"ssh://{user}@127.0.0.1:{sshd.port}{sshd.repos}/bench/{name}.git"
                     for name in ("large", "small")},
        }
        for side in ("gitd", "sshd"):  # warm-up: page cache, first connections
            clone(client, urls[side]["large"], scratch / "warm", None)

        pids = {"gitd": gitd.pid, "sshd": sshd.pid}
        ops = ("clone", "parallel", "server_cpu")
        times: dict[str, dict[str, list[float]]] = {op: {"gitd": [], "sshd": []} for op in ops}
        for round_no in range(args.rounds):
            order = ("gitd", "sshd") if round_no % 2 == 0 else ("sshd", "gitd")
            for side in order:
                wall, cpu = clone(client, urls[side]["large"], scratch / "c", pids[side])
                times["clone"][side].append(wall)
                times["server_cpu"][side].append(cpu)
            for side in order:
                times["parallel"][side].append(parallel_clones(client, urls[side]["small"], scratch / "p",
                                                               args.parallel))
            print(f"round {round_no + 1}/{args.rounds}: clone gitd {times['clone']['gitd'][-1]:.2f}s "
                  f"sshd {times['clone']['sshd'][-1]:.2f}s (server CPU {times['server_cpu']['gitd'][-1]:.2f}s / "
                  f"{times['server_cpu']['sshd'][-1]:.2f}s); {args.parallel} parallel gitd "
                  f"{times['parallel']['gitd'][-1]:.2f}s sshd {times['parallel']['sshd'][-1]:.2f}s", flush=True)

        results: dict = {"benchmark": "ssh", "rounds": args.rounds, "parallel": args.parallel,
                         "pack_bytes": pack_bytes(large), "commits": args.commits,
                         "parallel_pack_bytes": pack_bytes(small), "cpus": os.cpu_count(), "operations": {}}
        print()
        print(f"{'operation':<28}{'gitd (s)':>10}{'sshd (s)':>10}{'ratio':>8}")
        labels = {"clone": f"clone ({pack_bytes(large) / 1e6:.0f} MB)",
                  "parallel": f"{args.parallel} parallel clones",
                  "server_cpu": "server CPU per clone"}
        for op, sides in times.items():
            ratios = [g / s for g, s in zip(sides["gitd"], sides["sshd"], strict=True)]
            row = {"gitd_median_s": median(sides["gitd"]), "sshd_median_s": median(sides["sshd"]),
                   "median_ratio": median(ratios), "gitd_s": sides["gitd"], "sshd_s": sides["sshd"]}
            results["operations"][op] = row
            print(f"{labels[op]:<28}{row['gitd_median_s']:>10.2f}{row['sshd_median_s']:>10.2f}"
                  f"{row['median_ratio']:>8.2f}")
        print(f"\nresults: {save_results('ssh', results)}")
        return 0
    finally:
        if gitd is not None:
            gitd.stop()
        if sshd is not None:
            sshd.stop()
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
