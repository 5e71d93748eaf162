"""git over SSH with the real OpenSSH client (and an asyncssh client for what OpenSSH
cannot do: offering a key it does not hold) against a real daemon."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shlex
import sqlite3
import subprocess
import sys
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest

import gitd
from gitd.config import Config
from gitd.datainit import init_data_dir
from gitd.paths import DataDir
from gitd.plugins import PluginHost
from gitd.server import serve
from gitd.services import Services
from tests.support import Daemon, unique


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


@pytest.fixture
def ssh_user(daemon, tmp_path):
    """make(): a new user with a registered key -> (name, token, SSHClient)."""
    known_hosts = known_hosts_for(daemon, tmp_path / "known_hosts")

    def make(d: Daemon = daemon) -> tuple[str, str, SSHClient]:
        name, token = d.user()
        key = keygen(tmp_path / f"id_{name}")
        d.cli("sshkey", "add", name, str(key.with_suffix(".pub")))
        kh = known_hosts if d is daemon else known_hosts_for(d, tmp_path / f"kh_{name}")
        return name, token, SSHClient(d.ssh_host, d.ssh_port, key, kh)

    return make


def stderr(proc: subprocess.CompletedProcess) -> str:
    return proc.stderr.decode(errors="replace")


# -- the host key ---------------------------------------------------------------------------------
def test_host_key_is_the_one_gitd_init_printed(daemon, ssh_user, tmp_path):
    _, init_out, _ = daemon.cli("init", str(daemon.data))
    printed = re.search(r"SSH host key fingerprint: (SHA256:\S+)", init_out).group(1)
    _, _, client = ssh_user()
    client.known_hosts = tmp_path / "fresh_known_hosts"
    client.strict = "accept-new"
    assert client.run().returncode == 1  # the shell greeting; the host key is now recorded
    listed = subprocess.run(["ssh-keygen", "-lf", str(client.known_hosts)], capture_output=True, text=True,
                            check=True).stdout.split()
    assert listed[1] == printed and listed[-1] == "(ED25519)"


# -- git ------------------------------------------------------------------------------------------------
def test_push_clone_fetch_over_ssh(daemon, git, ssh_user, tmp_path):
    user, _, client = ssh_user()
    repo = daemon.repo(user)
    work = git.init_work(tmp_path / "work", {"README.md": "hello\n", "dir/a.txt": "a\n"})
    git("push", client.url(f"{repo}.git"), "main", cwd=work, env=client.env())

    clone = tmp_path / "clone"
    # scp-style path: relative, no leading '/', no .git (the port comes from the ssh command)
    git("clone", "-q", f"git@{client.host}:{repo}", str(clone), env=client.env("-p", str(client.port)))
    assert git.out("rev-parse", "HEAD", cwd=clone) == git.out("rev-parse", "HEAD", cwd=work)
    assert (clone / "dir" / "a.txt").read_text() == "a\n"

    new = git.commit(work, {"b.txt": "b\n"}, message="second")
    git("push", client.url(repo), "main", cwd=work, env=client.env())
    git("fetch", "-q", "origin", cwd=clone, env=client.env("-p", str(client.port)))
    assert git.out("rev-parse", "origin/main", cwd=clone) == new

    metrics = urllib.request.urlopen(f"{daemon.url}/metrics", timeout=10).read().decode()
    assert re.search(r'gitd_git_service_duration_seconds_count\{service="receive-pack",transport="ssh"\} [1-9]',
                     metrics)


def test_protocol_v2_is_negotiated_through_git_protocol(daemon, git, ssh_user, tmp_path):
    user, token, client = ssh_user()
    repo = daemon.repo(user)
    work = git.init_work(tmp_path / "work")
    git("push", daemon.repo_url(repo, token=token), "main", cwd=work)

    def ls_remote(version: str) -> str:
        proc = git("-c", f"protocol.version={version}", "ls-remote", client.url(repo),
                   env={**client.env(), "GIT_TRACE_PACKET": "1"})
        assert git.out("rev-parse", "HEAD", cwd=work) in proc.stdout.decode()
        return proc.stderr.decode()

    assert "< version 2" in ls_remote("2")
    assert "< version 2" not in ls_remote("0")


def test_every_path_form_reaches_the_same_repository(daemon, git, ssh_user, tmp_path):
    user, token, client = ssh_user()
    for repo_type, prefix in (("model", ""), ("dataset", "datasets/"), ("space", "spaces/"), ("code", "codes/")):
        repo = daemon.repo(user, repo_type=repo_type)
        work = git.init_work(tmp_path / f"w-{repo_type}", {"f": repo_type})
        git("push", daemon.repo_url(repo, token=token, repo_type=repo_type), "main", cwd=work)
        head = git.out("rev-parse", "HEAD", cwd=work)
        path = f"{prefix}{repo}"
        for command in (f"git-upload-pack '/{path}.git'", f"git-upload-pack '{path}'", f"git-upload-pack /{path}",
                        f'git-upload-pack "{path}.git"', f"git upload-pack '{path}.git'"):
            proc = client.run(command, input=b"0000")
            assert proc.returncode == 0, (command, stderr(proc))
            assert head.encode() in proc.stdout, command


def test_git_archive_over_ssh(daemon, git, ssh_user, tmp_path):
    user, _, client = ssh_user()
    repo = daemon.repo(user)
    work = git.init_work(tmp_path / "work", {"docs/guide.md": "# guide\n", "x.txt": "x\n"})
    git("push", client.url(repo), "main", cwd=work, env=client.env())
    out = git("archive", f"--remote={client.url(repo)}", "--format=tar", "main", "docs", cwd=tmp_path,
              env=client.env()).stdout
    listing = subprocess.run(["tar", "-t"], input=out, capture_output=True, check=True).stdout.decode().split()
    assert listing == ["docs/", "docs/guide.md"]


def test_private_repo_looks_missing_to_others(daemon, git, ssh_user, tmp_path):
    owner, _, owner_client = ssh_user()
    _, _, other = ssh_user()
    repo = daemon.repo(owner, private=True)
    work = git.init_work(tmp_path / "w")
    git("push", owner_client.url(repo), "main", cwd=work, env=owner_client.env())
    git("clone", "-q", owner_client.url(repo), str(tmp_path / "mine"), env=owner_client.env())

    hidden = git("ls-remote", other.url(repo), check=False, env=other.env())
    missing = git("ls-remote", other.url(f"{owner}/{unique('nope')}"), check=False, env=other.env())
    assert hidden.returncode == missing.returncode == 128
    assert "gitd: repository not found" in stderr(hidden)
    assert stderr(hidden) == stderr(missing)
    push = git("push", other.url(repo), "main", cwd=work, check=False, env=other.env())
    assert push.returncode != 0 and "gitd: repository not found" in stderr(push)


def test_read_only_member_cannot_push(daemon, git, ssh_user, tmp_path):
    owner, _, owner_client = ssh_user()
    reader, _, reader_client = ssh_user()
    org = unique("org")
    daemon.cli("org", "create", org, "--owner", owner)
    daemon.cli("org", "add-member", org, reader, "--role", "read")
    repo = daemon.repo(org, private=True)
    work = git.init_work(tmp_path / "w")
    git("push", owner_client.url(repo), "main", cwd=work, env=owner_client.env())

    git("clone", "-q", reader_client.url(repo), str(tmp_path / "c"), env=reader_client.env())
    git.commit(work, {"more": "x"})
    push = git("push", reader_client.url(repo), "main", cwd=work, check=False, env=reader_client.env())
    assert push.returncode != 0
    assert "gitd: you do not have write access to this repository" in stderr(push)
    lfs = reader_client.run(f"git-lfs-authenticate {repo} upload")
    assert lfs.returncode == 1 and b"write access" in lfs.stderr


def test_push_runs_the_policy_hook_chain_over_ssh(daemon, git, ssh_user, tmp_path):
    user, _, client = ssh_user()
    repo = daemon.repo(user)
    work = git.init_work(tmp_path / "w")
    git("push", client.url(repo), "main", cwd=work, env=client.env())
    git.commit(work, {"weights.bin": b"\0" * (11 * 1024 * 1024)}, message="too big for git")
    push = git("push", client.url(repo), "main", cwd=work, check=False, env=client.env())
    assert push.returncode != 0
    assert "remote: push refused: 1 file(s) exceed the 10.0 MiB limit" in stderr(push)
    assert "remote:   weights.bin (11.0 MiB)" in stderr(push)
    remote = git("ls-remote", client.url(repo), "main", env=client.env()).stdout.decode()
    assert remote.split()[0] == git.out("rev-parse", "HEAD~1", cwd=work)


def test_concurrent_clones_each_get_their_own_repository(daemon, git, ssh_user, tmp_path):
    jobs = []
    for i in range(6):
        user, _, client = ssh_user()
        repo = daemon.repo(user)
        work = git.init_work(tmp_path / f"w{i}", {"id.txt": f"{i}\n"})
        git("push", client.url(repo), "main", cwd=work, env=client.env())
        jobs.append((i, client, repo))
    procs = [(i, subprocess.Popen(["git", "clone", "-q", client.url(repo), str(tmp_path / f"c{i}")],
                                  env={**git.env, **client.env()}, stderr=subprocess.PIPE)) for i, client, repo in jobs]
    for i, proc in procs:
        assert proc.wait(60) == 0, proc.stderr.read() if proc.stderr else b""
        assert (tmp_path / f"c{i}" / "id.txt").read_text() == f"{i}\n"


DISCONNECTING_SSH = """
import os, signal, subprocess, sys, threading
limit = int(os.environ["CUT_AFTER"])
ssh = subprocess.Popen(["ssh", *sys.argv[1:]], stdin=subprocess.PIPE)
sent = 0
while sent < limit:
    chunk = os.read(0, 65536)
    if not chunk:
        break
    ssh.stdin.write(chunk); ssh.stdin.flush(); sent += len(chunk)
ssh.send_signal(signal.SIGKILL)  # the connection drops in the middle of the pack
sys.exit(1)
"""


def test_disconnect_in_the_middle_of_a_push_changes_nothing(daemon, git, ssh_user, tmp_path):
    user, _, client = ssh_user()
    repo = daemon.repo(user)
    work = git.init_work(tmp_path / "w")
    git("push", client.url(repo), "main", cwd=work, env=client.env())
    before = git.out("rev-parse", "HEAD", cwd=work)
    git.commit(work, {"data.bin": os.urandom(6 * 1024 * 1024)}, message="big")
    wrapper = tmp_path / "cut_ssh.py"
    wrapper.write_text(DISCONNECTING_SSH)
    cut = {"GIT_SSH_COMMAND": shlex.join([sys.executable, str(wrapper), *client.argv()[1:]]),
           "CUT_AFTER": str(1024 * 1024)}
    push = git("-c", "ssh.variant=ssh", "push", client.url(repo), "main", cwd=work, check=False, env=cut)
    assert push.returncode != 0

    assert git("ls-remote", client.url(repo), "main", env=client.env()).stdout.decode().split()[0] == before
    db = sqlite3.connect(daemon.data / "gitd.db")
    (repo_id,) = db.execute("SELECT r.id FROM repos r JOIN accounts a ON a.id = r.owner_id "
                            "WHERE a.name = ? AND r.name = ?", repo.split("/")).fetchone()
    db.close()
    objects = DataDir(daemon.data).repo_path(repo_id) / "objects"
    for _ in range(50):  # git notices the EOF and cleans its quarantine up
        if not list(objects.glob("tmp_objdir-incoming-*")):
            break
        threading.Event().wait(0.1)
    assert not list(objects.glob("tmp_objdir-incoming-*"))
    git("push", client.url(repo), "main", cwd=work, env=client.env())  # nothing was left locked


# -- authentication -------------------------------------------------------------------------------
def test_unknown_key_and_non_key_methods_are_refused(daemon, ssh_user, tmp_path):
    _, _, client = ssh_user()
    stranger = SSHClient(client.host, client.port, keygen(tmp_path / "id_stranger"), client.known_hosts)
    proc = stranger.run("git-upload-pack 'a/b'")
    assert proc.returncode == 255 and "Permission denied (publickey)." in stderr(proc)
    # without a key the client can only try what the server offers: publickey, nothing else
    proc = client.run(options=("-o", "PubkeyAuthentication=no", "-o", "BatchMode=no"), input=b"")
    assert proc.returncode == 255 and "Permission denied (publickey)." in stderr(proc)


def test_removed_key_is_refused_even_on_an_open_connection(daemon, ssh_user):
    user, _, client = ssh_user()
    fingerprint = daemon.cli("sshkey", "list", user)[1].splitlines()[1].split()[0]

    async def go() -> tuple[str, str]:
        async with asyncssh.connect(client.host, client.port, username="git", client_keys=[str(client.key)],
                                    known_hosts=None, agent_path=None, config=None) as conn:
            before = await conn.run(stdin=asyncssh.DEVNULL, timeout=30)
            daemon.cli("sshkey", "remove", user, fingerprint)
            after = await conn.run("git-upload-pack 'a/b'", stdin=asyncssh.DEVNULL, timeout=30)
            return before.stderr, after.stderr

    before, after = asyncio.run(go())
    assert f"Hi {user}!" in before and "no longer registered" in after
    proc = client.run()
    assert proc.returncode == 255 and "Permission denied (publickey)." in stderr(proc)


class ImpostorKey(asyncssh.SSHKeyPair):
    """Presents someone else's public key but can only sign with the attacker's own key."""

    def __init__(self, victim_public: asyncssh.SSHKey, attacker_private: asyncssh.SSHKey):
        super().__init__(victim_public.algorithm, victim_public.algorithm, victim_public.sig_algorithms,
                         victim_public.sig_algorithms, victim_public.public_data, "impostor")
        self._attacker = attacker_private

    def sign(self, data: bytes) -> bytes:
        return self._attacker.sign(data, self.sig_algorithm)


def test_regression_ssh_offered_key_without_private_key(daemon, git, ssh_user, tmp_path):
    """Offering alice's public key without holding her private key must not make anyone alice:
    not alone, and not when the attacker then signs in with a key of their own."""
    alice, _, alice_client = ssh_user()
    mallory, _, mallory_client = ssh_user()
    secret = daemon.repo(alice, private=True)
    git("push", alice_client.url(secret), "main", cwd=git.init_work(tmp_path / "w"), env=alice_client.env())

    alice_public = asyncssh.read_public_key(str(alice_client.key.with_suffix(".pub")))
    mallory_private = asyncssh.read_private_key(str(mallory_client.key))
    impostor = ImpostorKey(alice_public, mallory_private)

    async def connect(keys: list) -> asyncssh.SSHClientConnection:
        return await asyncssh.connect(alice_client.host, alice_client.port, username="git", client_keys=keys,
                                      known_hosts=None, agent_path=None, config=None)

    async def go() -> tuple[str, str]:
        with pytest.raises(asyncssh.PermissionDenied):
            await connect([impostor])
        async with await connect([impostor, asyncssh.load_keypairs(str(mallory_client.key))[0]]) as conn:
            greeting = await conn.run(stdin=asyncssh.DEVNULL, timeout=30)
            clone = await conn.run(f"git-upload-pack '{secret}'", stdin=asyncssh.DEVNULL, timeout=30)
            return greeting.stderr, clone.stderr

    greeting, clone = asyncio.run(go())
    assert greeting.startswith(f"Hi {mallory}!")
    assert "repository not found" in clone

    # OpenSSH holding only alice's public key file: offered, never signed, refused
    stolen = tmp_path / "stolen.pub"
    stolen.write_text(alice_client.key.with_suffix(".pub").read_text())
    proc = SSHClient(alice_client.host, alice_client.port, stolen, alice_client.known_hosts).run()
    assert proc.returncode == 255 and "Permission denied (publickey)." in stderr(proc)


# -- what is refused ------------------------------------------------------------------------------------
def test_shell_gets_a_greeting_and_exit_status_1(daemon, ssh_user):
    user, _, client = ssh_user()
    greeting = f"Hi {user}! You've authenticated, but gitd does not provide shell access."
    proc = client.run()
    assert proc.returncode == 1
    assert stderr(proc).strip().endswith(greeting)
    assert proc.stdout == b""

    # From a terminal, ssh asks for a pty first, as with 'ssh git@github.com'
    primary, secondary = os.openpty()
    term = subprocess.Popen(client.argv(f"git@{client.host}"), stdin=secondary, stdout=secondary,
                            stderr=secondary, start_new_session=True)
    os.close(secondary)
    seen = bytearray()
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(primary)
    assert term.wait(30) == 1
    assert "PTY allocation request failed" in seen.decode() and greeting in seen.decode()


def test_commands_subsystems_and_forwarding_are_refused(daemon, ssh_user, tmp_path):
    _, _, client = ssh_user()
    proc = client.run("ls", "-la")
    assert proc.returncode == 1 and "gitd: unknown command 'ls'" in stderr(proc)
    proc = client.run("sh -c 'git-upload-pack x/y'")
    assert proc.returncode == 1 and "unknown command 'sh'" in stderr(proc)
    proc = client.run("sftp", options=("-s",))
    assert proc.returncode == 1 and "'sftp' subsystem is not available" in stderr(proc)
    proc = client.run(options=("-W", "127.0.0.1:22"))
    assert proc.returncode == 255
    assert "administratively prohibited: gitd does not allow port forwarding" in stderr(proc)
    proc = client.run("git-upload-pack 'a/b'", options=("-o", "ExitOnForwardFailure=yes", "-R", "0:127.0.0.1:9"))
    assert proc.returncode == 255 and "remote port forwarding failed" in stderr(proc)
    proc = client.run("git-upload-pack 'a/b'", options=("-X",), env={"DISPLAY": "127.0.0.1:37",
                                                                    "XAUTHORITY": str(tmp_path / "xauth")})
    assert "X11 forwarding request failed" in stderr(proc)


EVIL_SO = r"""
#include <fcntl.h>
#include <unistd.h>
__attribute__((constructor)) static void mark(void) {
    int fd = open(MARKER, O_CREAT | O_WRONLY, 0644);
    if (fd >= 0) close(fd);
}
"""


def test_client_environment_is_ignored(daemon, git, ssh_user, tmp_path, have_tool):
    """LD_PRELOAD, GIT_DIR and git config sent by the client would each change what the
    server runs; none of them reaches git."""
    have_tool("gcc")
    user, _, client = ssh_user()
    repo, other = daemon.repo(user), daemon.repo(user, private=True)
    work = git.init_work(tmp_path / "w", {"which": "repo\n"})
    git("push", client.url(repo), "main", cwd=work, env=client.env())
    git("push", client.url(other), "main", cwd=git.init_work(tmp_path / "o", {"which": "other\n"}),
        env=client.env())
    db = sqlite3.connect(daemon.data / "gitd.db")
    (other_id,) = db.execute("SELECT id FROM repos WHERE name = ?", [other.split("/")[1]]).fetchone()
    db.close()

    preload_marker, hook_marker = tmp_path / "preloaded", tmp_path / "hooked"
    evil = tmp_path / "evil.so"
    (tmp_path / "evil.c").write_text(EVIL_SO)
    subprocess.run(["gcc", "-shared", "-fPIC", f'-DMARKER="{preload_marker}"', "-o", str(evil),
                    str(tmp_path / "evil.c")], check=True)
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\ntouch {hook_marker}\nexec \"$@\"\n")
    hook.chmod(0o755)
    config_env = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "uploadpack.packObjectsHook",
                  "GIT_CONFIG_VALUE_0": str(hook)}

    # Both payloads work when they do reach a process:
    subprocess.run(["true"], env={**os.environ, "LD_PRELOAD": str(evil)}, check=True)
    upload_pack = shlex.join(["env", *(f"{k}={v}" for k, v in config_env.items()), "git-upload-pack"])
    git("clone", "-q", "--no-local", f"--upload-pack={upload_pack}", str(work), str(tmp_path / "local"))
    assert preload_marker.exists() and hook_marker.exists()
    preload_marker.unlink()
    hook_marker.unlink()

    injected = {"LD_PRELOAD": str(evil), "GIT_DIR": str(DataDir(daemon.data).repo_path(other_id)),
                "GIT_PROTOCOL": "version=2:x=$(id)", **config_env}
    set_env = "SetEnv=" + " ".join(f"{k}={v}" for k, v in injected.items())
    clone = tmp_path / "clone"
    proc = git("clone", "-q", client.url(repo), str(clone), env=client.env("-o", set_env))
    assert (clone / "which").read_text() == "repo\n"
    assert not preload_marker.exists() and not hook_marker.exists()
    assert b"LD_PRELOAD" not in proc.stderr


# -- git-lfs ----------------------------------------------------------------------------------------------
def test_git_lfs_authenticate_hands_out_a_token_for_one_repo_and_operation(daemon, git, ssh_user, tmp_path):
    user, _, client = ssh_user()
    repo, other = daemon.repo(user, private=True), daemon.repo(user, private=True)
    work = git.init_work(tmp_path / "w")
    for name in (repo, other):
        git("push", client.url(name), "main", cwd=work, env=client.env())

    def authenticate(path: str, operation: str) -> dict:
        proc = client.run("git-lfs-authenticate", path, operation)
        assert proc.returncode == 0, stderr(proc)
        return json.loads(proc.stdout)

    down = authenticate(f"/{repo}.git", "download")
    assert set(down) == {"href", "header", "expires_in"}
    assert down["href"] == f"{daemon.url}/{repo}.git/info/lfs"
    assert isinstance(down["expires_in"], int) and down["expires_in"] == 3600
    assert down["header"]["Authorization"].startswith("Bearer ")
    assert authenticate(repo, "download")["href"] == down["href"]  # unquoted, relative form

    def with_token(auth: dict, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return git("-c", f"http.extraHeader=Authorization: {auth['header']['Authorization']}", *args,
                   cwd=cwd, check=False)

    head = git.out("rev-parse", "HEAD", cwd=work)
    assert head in with_token(down, "ls-remote", daemon.repo_url(repo)).stdout.decode()
    elsewhere = with_token(down, "ls-remote", daemon.repo_url(other))
    assert elsewhere.returncode != 0 and b"not found" in elsewhere.stderr.lower()
    git.commit(work, {"n": "1"})
    refused = with_token(down, "push", daemon.repo_url(repo), "main", cwd=work)
    assert refused.returncode != 0 and b"write access" in refused.stderr
    up = authenticate(f"/{repo}.git", "upload")
    assert with_token(up, "push", daemon.repo_url(repo), "main", cwd=work).returncode == 0

    dataset = daemon.repo(user, repo_type="dataset")
    assert authenticate(f"/datasets/{dataset}.git", "upload")["href"] == f"{daemon.url}/datasets/{dataset}.git/info/lfs"

    _, _, stranger = ssh_user()
    proc = stranger.run("git-lfs-authenticate", repo, "download")
    assert proc.returncode == 1 and b"gitd: repository not found" in proc.stderr and proc.stdout == b""


def test_git_lfs_falls_back_from_pure_ssh_to_git_lfs_authenticate(daemon, git, ssh_user, tmp_path, have_tool):
    have_tool("git-lfs")
    user, _, client = ssh_user()
    repo = daemon.repo(user)
    work = git.init_work(tmp_path / "w")
    git("push", client.url(f"{repo}.git"), "main", cwd=work, env=client.env())
    git("remote", "add", "origin", client.url(f"{repo}.git"), cwd=work)
    proc = git("lfs", "locks", cwd=work, check=False, env={**client.env(), "GIT_TRACE": "1"})
    trace = stderr(proc)
    assert f"git-lfs-transfer /{repo}.git download" in trace
    assert "pure SSH protocol connection failed" in trace
    assert f"git-lfs-authenticate /{repo}.git download" in trace
    assert f"HTTP: GET {daemon.url}/{repo}.git/info/lfs/locks" in trace


# -- the hook chain ---------------------------------------------------------------------------------------
class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str | None, list[str]]] = []

    @gitd.hookimpl
    def gitd_pre_receive(self, event) -> None:
        self.events.append((event.via, event.pusher, [u.ref for u in event.updates]))


def test_pushes_over_ssh_reach_plugins_with_via_ssh(git, tmp_path):
    """A daemon in this process, so a plugin of the test's own sees the push event."""
    data = DataDir(tmp_path / "data")
    init_data_dir(data.root)
    config = Config.load(data.config_file, environ={})
    config.set("server.ssh", "127.0.0.1:0")
    recorder = Recorder()
    plugins = PluginHost(config)
    plugins.register("recorder", recorder)
    services = Services.build(data, config, plugins=plugins)
    ready, loop_box = threading.Event(), {}

    def run() -> None:
        async def main() -> None:
            loop_box["stop"] = stop = asyncio.Event()
            loop_box["loop"] = asyncio.get_running_loop()
            ready.set()
            await serve(services, http="127.0.0.1:0", stop=stop)

        asyncio.run(main())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        ready.wait(10)
        for _ in range(100):
            if data.serve_info.exists():
                break
            threading.Event().wait(0.05)
        daemon = Daemon(data=data.root, log_path=tmp_path / "unused.log")
        daemon.info = json.loads(data.serve_info.read_text())
        daemon.url = daemon.info["http"]
        user, _ = daemon.user()
        repo = daemon.repo(user)
        key = keygen(tmp_path / "id_pusher")
        daemon.cli("sshkey", "add", user, str(key.with_suffix(".pub")))
        client = SSHClient(daemon.ssh_host, daemon.ssh_port, key, known_hosts_for(daemon, tmp_path / "kh"))
        git("push", client.url(repo), "main", cwd=git.init_work(tmp_path / "w"), env=client.env())
        assert recorder.events == [("ssh", user, ["refs/heads/main"])]
    finally:
        loop_box["loop"].call_soon_threadsafe(loop_box["stop"].set)
        thread.join(30)


def test_sshkey_commands(daemon, tmp_path, monkeypatch):
    alice, _ = daemon.user()
    bob, _ = daemon.user()
    pub = keygen(tmp_path / "id_cli").with_suffix(".pub")

    monkeypatch.setattr("sys.stdin", io.StringIO(pub.read_text()))
    _, added, _ = daemon.cli("sshkey", "add", alice, "-")
    fingerprint = subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True,
                                 check=True).stdout.split()[1]
    assert fingerprint in added
    listing = daemon.cli("sshkey", "list", alice)[1]
    assert fingerprint in listing and "ssh-ed25519" in listing and "id_cli" in listing
    code, _, err = daemon.cli("sshkey", "add", bob, str(pub), check=False)
    assert code == 1 and "one user only" in err
    code, _, err = daemon.cli("sshkey", "add", bob, str(pub.with_suffix("")), check=False)
    assert code == 1 and "this is a private key" in err
    assert daemon.cli("sshkey", "remove", bob, fingerprint, check=False)[0] == 1
    daemon.cli("sshkey", "remove", alice, fingerprint.removeprefix("SHA256:"))
    assert fingerprint not in daemon.cli("sshkey", "list", alice)[1]


HELD_SSH = """
import os, subprocess, sys, time
hold_after, held, release = int(os.environ["HOLD_AFTER"]), os.environ["HELD"], os.environ["RELEASE"]
ssh = subprocess.Popen(["ssh", *sys.argv[1:]], stdin=subprocess.PIPE)
sent = 0
while True:
    chunk = os.read(0, 65536)
    if not chunk:
        break
    if sent < hold_after <= sent + len(chunk):
        open(held, "w").close()
        while not os.path.exists(release):
            time.sleep(0.05)
    ssh.stdin.write(chunk); ssh.stdin.flush(); sent += len(chunk)
ssh.stdin.close()
sys.exit(ssh.wait())
"""


def test_sigterm_lets_a_push_in_flight_finish(make_daemon, git, ssh_user, tmp_path):
    d = make_daemon(settings={"server.public_url": "https://hub.example.com/"})
    user, _, client = ssh_user(d)
    repo = d.repo(user)
    href = json.loads(client.run("git-lfs-authenticate", repo, "download").stdout)["href"]
    assert href == f"https://hub.example.com/{repo}.git/info/lfs"

    work = git.init_work(tmp_path / "w", {"data.bin": os.urandom(3 * 1024 * 1024)})
    wrapper = tmp_path / "held_ssh.py"
    wrapper.write_text(HELD_SSH)
    held, release = tmp_path / "held", tmp_path / "release"
    env = {**git.env, "GIT_SSH_COMMAND": shlex.join([sys.executable, str(wrapper), *client.argv()[1:]]),
           "HOLD_AFTER": str(1024 * 1024), "HELD": str(held), "RELEASE": str(release)}
    push = subprocess.Popen(["git", "-c", "ssh.variant=ssh", "push", client.url(repo), "main"], cwd=work, env=env,
                            stderr=subprocess.PIPE)
    for _ in range(400):
        if held.exists():
            break
        threading.Event().wait(0.05)
    assert held.exists(), "the push never got going"
    assert d.proc is not None
    d.proc.terminate()
    for _ in range(100):  # the listener closes at once; the push in flight goes on
        if client.run(timeout=10).returncode == 255:
            break
        threading.Event().wait(0.1)
    assert client.run(timeout=10).returncode == 255
    release.touch()
    assert push.wait(60) == 0, push.stderr.read() if push.stderr else b""
    assert d.proc.wait(60) == 0
    assert git.out("rev-parse", "HEAD", cwd=work) in subprocess.run(
        ["git", "--git-dir", str(DataDir(d.data).repo_path(1)), "rev-parse", "main"], capture_output=True,
        text=True).stdout
