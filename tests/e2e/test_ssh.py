"""git over SSH with the real OpenSSH client (and an asyncssh client for what OpenSSH
cannot do: offering a key it does not hold) against a real daemon."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import subprocess
import sys
import threading
import urllib.request

import asyncssh
import pytest

from gitd.paths import DataDir
from tests.e2e.sshclient import SSHClient, SSHUsers, keygen, stderr
from tests.support import unique


@pytest.fixture
def ssh_user(daemon, tmp_path) -> SSHUsers:
    return SSHUsers(daemon, tmp_path)


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
    objects = daemon.repo_path(repo) / "objects"
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
    other_id = daemon.repo_id(other)

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


def test_git_errors_reach_the_client_on_stderr(daemon, git, ssh_user, tmp_path):
    user, _, client = ssh_user()
    repo = daemon.repo(user)
    git("push", client.url(repo), "main", cwd=git.init_work(tmp_path / "w"), env=client.env())
    bogus = "1" * 40
    request = b"%04xwant %s\n" % (len(bogus) + 10, bogus.encode()) + b"0000" + b"0009done\n"
    proc = client.run(f"git-upload-pack '{repo}'", input=request)
    assert proc.returncode == 128
    assert f"not our ref {bogus}" in stderr(proc)
