"""Helpers for the SSH end-to-end tests: OpenSSH as git uses it, keys, known_hosts, and
an ``ssh_user`` fixture (import it into a test module to use it)."""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support import Daemon


# -- clients ----------------------------------------------------------------------------------------
@dataclass
class SSHClient:
    """OpenSSH as git uses it: one key, a known_hosts file, no agent, no user config."""

    host: str
    port: int
    key: Path
    known_hosts: Path
    strict: str = "yes"

    def argv(self, *extra: str) -> list[str]:
        return ["ssh", "-F", "/dev/null", "-p", str(self.port), "-i", str(self.key),
                "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", f"StrictHostKeyChecking={self.strict}",
                *extra]

    def env(self, *extra: str) -> dict[str, str]:
        return {"GIT_SSH_COMMAND": shlex.join(self.argv(*extra))}

    def run(self, *remote: str, options: tuple[str, ...] = (), input: bytes | None = None,
            env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([*self.argv(*options), f"git@{self.host}", *remote], input=input,
                              capture_output=True, timeout=timeout,
                              env={**os.environ, **(env or {})} if env else None)

    def url(self, path: str) -> str:
        return f"ssh://git@{self.host}:{self.port}/{path}"


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True)
    return path


def known_hosts_for(daemon: Daemon, path: Path) -> Path:
    host_pub = (daemon.data / "ssh" / "ssh_host_ed25519_key.pub").read_text().split()
    path.write_text(f"[{daemon.ssh_host}]:{daemon.ssh_port} {host_pub[0]} {host_pub[1]}\n")
    return path


class SSHUsers:
    """users(): a new user of ``daemon`` with a registered key -> (name, token, SSHClient);
    users(other_daemon) makes one on another daemon. Test modules expose it as the
    ``ssh_user`` fixture."""

    def __init__(self, daemon: Daemon, tmp_path: Path):
        self.daemon = daemon
        self.tmp_path = tmp_path
        self.known_hosts = known_hosts_for(daemon, tmp_path / "known_hosts")

    def __call__(self, d: Daemon | None = None) -> tuple[str, str, SSHClient]:
        d = d or self.daemon
        name, token = d.user()
        key = keygen(self.tmp_path / f"id_{name}")
        d.cli("sshkey", "add", name, str(key.with_suffix(".pub")))
        kh = self.known_hosts if d is self.daemon else known_hosts_for(d, self.tmp_path / f"kh_{name}")
        return name, token, SSHClient(d.ssh_host, d.ssh_port, key, kh)


def stderr(proc: subprocess.CompletedProcess) -> str:
    return proc.stderr.decode(errors="replace")
