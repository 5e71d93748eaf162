"""Issue #20 §3: SIGTERM is bounded by [server] shutdown_grace. Slow clients (one over
HTTP, one over SSH, neither reading) may keep their clones going that long at most; then
their streams are cancelled, the git children killed, and the daemon exits, well inside a
supervisor's stop timeout (systemd's TimeoutStopSec)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

from tests.e2e.hook_helpers import wait_for
from tests.e2e.rawhttp import upload_pack_v0_request
from tests.e2e.sshclient import SSHUsers
from tests.support import Daemon, Git

GRACE = 3.0


def git_children(pid: int) -> list[int]:
    """The daemon's git processes (children of any of its threads)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            try:
                if Path(f"/proc/{child}/comm").read_text().strip().startswith("git"):
                    found.append(int(child))
            except OSError:
                pass
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def big_repo(d: Daemon, git: Git, tmp_path: Path, user: str, token: str) -> tuple[str, str]:
    repo = d.repo(user)
    work = tmp_path / "w"
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    for i in range(3):  # 12 MiB that does not compress: more than any socket and pipe buffers hold
        (work / f"part{i}.bin").write_bytes(os.urandom(4 * 1024 * 1024))
    git("-c", "core.compression=0", "add", ".", cwd=work)
    git("commit", "-qm", "big", cwd=work)
    git("-c", "pack.compression=0", "push", "-q", d.repo_url(repo, token=token), "main", cwd=work)
    return repo, git.out("rev-parse", "HEAD", cwd=work)


def slow_http_fetch(d: Daemon, repo: str, head: str) -> socket.socket:
    """A fetch whose client reads its first bytes and then nothing."""
    parts = urlsplit(d.url)
    body = upload_pack_v0_request([head])
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    sock.settimeout(60)
    sock.connect((parts.hostname, parts.port))
    sock.sendall((f"POST /{repo}.git/git-upload-pack HTTP/1.1\r\nHost: x\r\n"
                  f"Content-Type: application/x-git-upload-pack-request\r\nContent-Length: {len(body)}\r\n\r\n")
                 .encode() + body)
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    return sock


def test_regression_sigterm_with_slow_clients_ends_within_the_grace(make_daemon, git: Git, tmp_path):
    d = make_daemon({"server.shutdown_grace": GRACE})
    users = SSHUsers(d, tmp_path)
    user, token, client = users()
    repo, head = big_repo(d, git, tmp_path, user, token)
    sock = slow_http_fetch(d, repo, head)
    ssh = subprocess.Popen([*client.argv(), f"git@{client.host}", f"git-upload-pack '{repo}'"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert ssh.stdin is not None and ssh.stdout is not None
    ssh.stdin.write(upload_pack_v0_request([head]))
    ssh.stdin.flush()
    ssh.stdout.read(1024)  # it started; then the client reads nothing more
    assert d.proc is not None
    children = wait_for(lambda: (c := git_children(d.proc.pid)) and len(c) >= 2 and c, what="both clones to run")
    try:
        started = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        time.sleep(GRACE / 2)
        assert d.proc.poll() is None, "the daemon gives slow clients the grace period"
        try:
            code = d.proc.wait(GRACE + 30)
        except subprocess.TimeoutExpired:
            code = None
        took = time.monotonic() - started
        assert code == 0, f"exit status {code} after {took:.1f}s:\n{d.log()[-3000:]}"
        assert took < GRACE + 5, f"the daemon took {took:.1f}s to stop (grace {GRACE}s)"
        assert "cancelling" in d.log()
        wait_for(lambda: not any(alive(pid) for pid in children), timeout=5, what="git children to end")
    finally:
        sock.close()
        ssh.kill()
        ssh.wait()
