"""The SSH transport as a part of the daemon: the sshkey commands, graceful shutdown with
a push in flight, and pushes reaching plugins with ``event.via == "ssh"``."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shlex
import subprocess
import sys
import threading

import pytest

import gitd
from gitd.compose import Parts
from gitd.config import Config
from gitd.datainit import init_data_dir
from gitd.paths import DataDir
from gitd.plugins.host import PluginHost
from gitd.server import serve
from tests.e2e.sshclient import SSHClient, SSHUsers, keygen, known_hosts_for
from tests.support import Daemon


@pytest.fixture
def ssh_user(daemon, tmp_path) -> SSHUsers:
    return SSHUsers(daemon, tmp_path)


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
    services = Parts(data, config, plugins=plugins)
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
