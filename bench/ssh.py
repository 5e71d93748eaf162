#!/usr/bin/env python3
"""Clone over SSH: gitd's SSH transport against OpenSSH sshd with git-shell.

    .venv/bin/python bench/ssh.py [--rounds 7] [--parallel 32] [--commits 3000] [--size-mb 220]

Both servers run here on loopback as the current user, with the same client key, and
serve the same objects (hard links of one repository: the deterministic synthetic one
bench/clone.py builds, cached under bench/.work/ and shared with it). The peer is the
stock setup: /usr/sbin/sshd with a throwaway sshd_config (public keys only,
``AcceptEnv GIT_PROTOCOL``, ``ForceCommand git-shell -c "$SSH_ORIGINAL_COMMAND"``), its
own host key and authorized_keys. The client is the same OpenSSH ``ssh`` command for
both (default ciphers), and git uses protocol v2.

Rounds alternate which server goes first. Reported, per operation: the median time on
each side and the median of the per-round gitd/sshd ratios (below 1.0: gitd is faster):

* clone: ``git clone --bare`` of the large repository (transfer and index-pack);
* parallel: ``--parallel`` simultaneous ``git clone --bare`` of a smaller repository
  (a new SSH connection each), timed until the last one finishes;
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
from benchlib import WORK, Git, GitdServer, copy_objects_and_refs, git_env, median, save_results, wait_for_port
from clone import build_synthetic, free_port, pack_size

SSHD = "/usr/sbin/sshd"


def run(argv: list[str], *, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, env=env, capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} ... failed ({proc.returncode}): "
                           f"{proc.stderr.decode(errors='replace')[-2000:]}")
    return proc


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and of the children it has reaped (the git processes gitd ran,
    the per-connection processes sshd forked), user and system."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def bare_copy(source: Path, target: Path) -> None:
    """A bare repository at ``target`` with ``source``'s objects (hard links) and refs."""
    run(["git", "init", "-q", "--bare", str(target)])
    copy_objects_and_refs(source, target)


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
    parser.add_argument("--commits", type=int, default=3000, help="synthetic repo: number of commits")
    parser.add_argument("--size-mb", type=int, default=220, help="synthetic repo: MB of incompressible data")
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()
    for tool in ("git", "git-shell", "ssh", "ssh-keygen", SSHD):
        if shutil.which(tool) is None:
            print(f"bench/ssh.py: {tool} is missing (sh scripts/bootstrap.sh test installs it)", file=sys.stderr)
            return 2

    WORK.mkdir(parents=True, exist_ok=True)
    builder = Git(WORK / "home")
    name = f"synthetic-c{args.commits}-s{args.size_mb}-r{args.seed}.git"
    print(f"building (or reusing) {WORK / name} ...", flush=True)
    large = build_synthetic(WORK / name, commits=args.commits, size_mb=args.size_mb, seed=args.seed, git=builder)
    small = build_synthetic(WORK / "small-c60-s1-r1.git", commits=60, size_mb=1, seed=1, git=builder)
    print(f"large: {pack_size(large) / 1e6:.0f} MB pack, {args.commits} commits; "
          f"parallel: {pack_size(small) / 1e3:.0f} kB pack", flush=True)

    scratch = Path(tempfile.mkdtemp(prefix="ssh-", dir=WORK))
    gitd = sshd = None
    try:
        key = scratch / "client" / "id_ed25519"
        key.parent.mkdir(parents=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench-client", "-f", str(key)])

        gitd = GitdServer(scratch / "gitd", {"server.log_level": "warning"}, ssh="127.0.0.1:0")
        gitd.cli("init", str(gitd.data))
        gitd.cli("user", "add", "bench")
        gitd.cli("sshkey", "add", "bench", str(key.with_suffix(".pub")))
        for name, source in (("large", large), ("small", small)):
            gitd.cli("repo", "create", f"bench/{name}", "--empty")
            gitd.install_repo(f"bench/{name}", source)
        gitd.start()
        assert gitd.proc is not None
        gitd_port = int(gitd.info["ssh"].rsplit(":", 1)[1])

        sshd = Sshd(scratch / "sshd", key.with_suffix(".pub"))
        (sshd.repos / "bench").mkdir(parents=True)
        for name, source in (("large", large), ("small", small)):
            bare_copy(source, sshd.repos / "bench" / f"{name}.git")
        sshd.start()

        known_hosts = scratch / "client" / "known_hosts"
        gitd_host_key = (gitd.data / "ssh" / "ssh_host_ed25519_key.pub").read_text().split()[:2]
        sshd_host_key = sshd.host_key.with_suffix(".pub").read_text().split()[:2]
        known_hosts.write_text(f"[127.0.0.1]:{gitd_port} {' '.join(gitd_host_key)}\n"
                               f"[127.0.0.1]:{sshd.port} {' '.join(sshd_host_key)}\n")
        ssh = ["ssh", "-F", "/dev/null", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
               "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes"]
        client = {**git_env(scratch / "client" / "home"), "GIT_SSH_COMMAND": shlex.join(ssh)}
        user = getpass.getuser()
        urls = {
            "gitd": {name: f"ssh://git@127.0.0.1:{gitd_port}/bench/{name}.git" for name in ("large", "small")},
            "sshd": {name: f"ssh://{user}@127.0.0.1:{sshd.port}{sshd.repos}/bench/{name}.git"
                     for name in ("large", "small")},
        }
        for side in ("gitd", "sshd"):  # warm-up: page cache, first connections
            clone(client, urls[side]["large"], scratch / "warm", None)

        pids = {"gitd": gitd.proc.pid, "sshd": sshd.pid}
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
                         "pack_bytes": pack_size(large), "commits": args.commits,
                         "parallel_pack_bytes": pack_size(small), "cpus": os.cpu_count(), "operations": {}}
        print()
        print(f"{'operation':<28}{'gitd (s)':>10}{'sshd (s)':>10}{'ratio':>8}")
        labels = {"clone": f"clone ({pack_size(large) / 1e6:.0f} MB)",
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
