"""Attack: requests that send their headers and a few bytes of body, then stall (issue 19,
finding 1). They must not hold git process slots: clones over HTTP and SSH go on, the
stalled requests end with 408 after [server] body_timeout, and /healthz stays fast."""

from __future__ import annotations

import json
import os
import time

from tests.e2e.attacks.tools import Closings, HealthProbe, connect, head, status
from tests.e2e.rawhttp import FLUSH, basic, pkt, request
from tests.e2e.sshclient import SSHUsers

UPLOAD = "application/x-git-upload-pack-request"
RECEIVE = "application/x-git-receive-pack-request"


def _pushed(d, git, tmp_path) -> tuple[str, str, str]:
    """A public repository with one commit: (full name, token, head)."""
    user, token = d.user()
    repo = d.repo(user)
    work = git.init_work(tmp_path / "w")
    git("push", d.repo_url(repo, token=token), "main", cwd=work)
    return repo, token, git.out("rev-parse", "HEAD", cwd=work)


def _stalled_fetch(d, repo: str):
    sock = connect(d.url)
    sock.sendall(head("POST", f"/{repo}.git/git-upload-pack", {"Content-Type": UPLOAD, "Content-Length": "1000"})
                 + b"0032want ")
    return sock


def _stalled_push(d, repo: str, token: str, old: str):
    """A push whose commands arrive whole, then its pack stalls after a few bytes."""
    commands = pkt(f"{old} {os.urandom(20).hex()} refs/heads/main\0report-status\n") + FLUSH
    sock = connect(d.url)
    sock.sendall(head("POST", f"/{repo}.git/git-receive-pack",
                      {"Content-Type": RECEIVE, "Content-Length": "100000", **basic(token)}) + commands + b"PACK\0\0")
    return sock


def test_regression_stalled_bodies_do_not_hold_git_slots(make_daemon, git, tmp_path):
    d = make_daemon(settings={"git.max_processes": 4, "server.body_timeout": 2})
    repo, _, head_sha = _pushed(d, git, tmp_path)
    _, _, ssh = SSHUsers(d, tmp_path)()
    socks = [_stalled_fetch(d, repo) for _ in range(12)]  # three times the slots
    closings = Closings(socks)
    try:
        with HealthProbe(d.url) as probe:
            time.sleep(0.3)
            # Before the fix each stalled request held a git process until [git] timeout (2 h):
            # these clones waited for a slot and hung.
            git("clone", "-q", d.repo_url(repo), str(tmp_path / "http"), timeout=20)
            git("clone", "-q", ssh.url(repo), str(tmp_path / "ssh"), env=ssh.env(), timeout=20)
            ready = request(d.url, "GET", "/readyz")
            assert ready.status == 200 and json.loads(ready.body)["git"]["free"] == 4, ready
            seen = closings.wait(len(socks), timeout=10)
    finally:
        closings.close()
    assert git.out("rev-parse", "HEAD", cwd=tmp_path / "http") == head_sha
    assert git.out("rev-parse", "HEAD", cwd=tmp_path / "ssh") == head_sha
    assert len(seen) == len(socks), f"{len(socks) - len(seen)} stalled requests were never answered"
    assert {status(reply) for reply, _ in seen.values()} == {408}
    assert b"stalled" in next(iter(seen.values()))[0]
    after = sorted(t for _, t in seen.values())
    assert after[0] >= 1.5 and after[-1] < 8, after  # refused at body_timeout (2 s), not before
    probe.check()


def test_regression_stalled_push_is_cut_off_and_frees_its_slot(make_daemon, git, tmp_path):
    d = make_daemon(settings={"git.max_processes": 1, "server.body_timeout": 2})
    repo, token, head_sha = _pushed(d, git, tmp_path)
    sock = _stalled_push(d, repo, token, head_sha)  # its commands are in: it holds the one slot
    closings = Closings([sock])
    try:
        with HealthProbe(d.url) as probe:
            seen = closings.wait(1, timeout=8)  # before the fix: held until [git] timeout (2 h)
    finally:
        closings.close()
    assert len(seen) == 1, "the stalled push was never cut off"
    reply, after = seen[0]
    assert status(reply) == 408 and b"stalled" in reply, reply
    assert 1.5 < after < 6
    probe.check()
    assert git.out("ls-remote", d.repo_url(repo), "refs/heads/main").split()[0] == head_sha  # nothing moved
    work = tmp_path / "w"
    git.commit(work, {"next.txt": "next\n"})
    git("push", d.repo_url(repo, token=token), "main", cwd=work, timeout=20)  # the slot is free again


def test_readyz_is_not_ready_while_every_git_slot_is_taken(make_daemon, git, tmp_path):
    d = make_daemon(settings={"git.max_processes": 2, "server.body_timeout": 3})
    repo, token, head_sha = _pushed(d, git, tmp_path)
    socks = [_stalled_push(d, repo, token, head_sha) for _ in range(2)]
    closings = Closings(socks)
    try:
        with HealthProbe(d.url) as probe:
            time.sleep(0.5)
            ready = request(d.url, "GET", "/readyz")
            seen = closings.wait(len(socks), timeout=10)
    finally:
        closings.close()
    assert ready.status == 503, ready
    body = json.loads(ready.body)
    assert body["status"] == "not ready" and body["reason"].startswith("all 2 git process slots are in use")
    assert body["git"]["used"] == 2 and body["git"]["free"] == 0
    assert [status(reply) for reply, _ in seen.values()] == [408, 408], seen
    probe.check()  # /healthz is liveness: ok all along
    ready = request(d.url, "GET", "/readyz")
    body = json.loads(ready.body)
    assert ready.status == 200 and body["status"] == "ready" and body["database"] == "ok", body
    assert body["git"] == {"slots": 2, "used": 0, "free": 2, "waiting": 0, "anonymous": 0}


def test_one_address_holds_at_most_its_share_of_git_slots(make_daemon, git, tmp_path):
    d = make_daemon(settings={"git.max_processes": 3, "git.max_processes_per_client": 1, "git.queue_timeout": 1,
                              "server.body_timeout": 6})
    repo, token, head_sha = _pushed(d, git, tmp_path)
    first = _stalled_push(d, repo, token, head_sha)
    time.sleep(0.3)
    second = _stalled_push(d, repo, token, head_sha)  # same address: waits for a slot, then 503
    closings = Closings([second])
    try:
        with HealthProbe(d.url) as probe:
            seen = closings.wait(1, timeout=5)
            ready = json.loads(request(d.url, "GET", "/readyz").body)
            # Other addresses are served meanwhile.
            git("clone", "-q", d.repo_url(repo), str(tmp_path / "c"), timeout=20)
    finally:
        closings.close()
        first.close()
    reply, after = seen[0]
    assert status(reply) == 503 and b"Retry-After: 5" in reply and b"your address" in reply, reply
    assert 0.8 < after < 4
    assert ready["git"]["used"] == 1
    probe.check()
