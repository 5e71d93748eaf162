"""Issue #20 §1: another process holding SQLite's write lock (an administrator's sqlite3
shell, a CLI command, a slow fsync) must not freeze the daemon: no database call blocks the
event loop, reads never fail, recording a token's last use never delays or fails a request,
and the job queue claims off the loop."""

from __future__ import annotations

import json
import subprocess
import threading
import time

from tests.e2e.ops.faults import timed, write_lock_held
from tests.e2e.rawhttp import basic, request
from tests.support import Daemon, Git, unique


def _setup(d: Daemon, git: Git, tmp_path) -> tuple[str, str, str]:
    user, token = d.user()
    repo = d.repo(user)
    work = git.init_work(tmp_path / "w", {"README.md": "hello\n"})
    git("push", "-q", d.repo_url(repo, token=token), "main", cwd=work)
    return user, token, repo


def _worst_healthz(url: str, until: float) -> tuple[float, list[int]]:
    worst, statuses = 0.0, []
    while time.monotonic() < until:
        took, reply = timed(lambda: request(url, "GET", "/healthz", timeout=60))
        worst = max(worst, took)
        statuses.append(reply.status)
        time.sleep(0.05)
    return worst, statuses


def test_regression_a_held_write_lock_does_not_freeze_the_daemon(make_daemon, git: Git, tmp_path):
    # Idle job workers poll the queue every 0.2 s: each poll is a write (BEGIN IMMEDIATE).
    d = make_daemon({"jobs.poll_interval": 0.2})
    user, token, repo = _setup(d, git, tmp_path)
    _, fresh, _ = d.cli("token", "create", user, "--name", unique("fresh"))  # first used under the lock
    fresh = fresh.strip()
    hold = 12.0  # bounds below are generous for 2 busy cores, and well under the hold
    with write_lock_held(d.data / "gitd.db", hold):
        started = time.monotonic()
        took, _ = timed(lambda: git("clone", "-q", d.repo_url(repo, token=fresh), str(tmp_path / "c1")))
        assert took < 6, f"a clone took {took:.1f}s while another process held the write lock"
        reply = request(d.url, "GET", f"/api/models/{repo}", headers=basic(token))
        assert reply.status == 200, reply.body
        worst, statuses = _worst_healthz(d.url, started + hold - 1.5)
        assert set(statuses) == {200}
        assert worst < 2.0, f"/healthz took {worst:.2f}s while another process held the write lock"
    assert (tmp_path / "c1" / "README.md").read_text() == "hello\n"


def test_regression_requests_past_the_busy_timeout_do_not_fail(make_daemon, git: Git, tmp_path):
    """Held longer than the busy timeout: reads (with a token used for the first time) still
    answer; a write on the request path answers 503 with Retry-After rather than 500; a push
    waits for the lock off the event loop and lands once it is free."""
    d = make_daemon({"database.busy_timeout": 2.0, "jobs.poll_interval": 0.2})
    user, token, repo = _setup(d, git, tmp_path)
    _, fresh, _ = d.cli("token", "create", user, "--name", unique("fresh"))
    fresh = fresh.strip()
    work = tmp_path / "w"
    git.commit(work, {"b.txt": "two\n"}, message="second")
    with write_lock_held(d.data / "gitd.db", 5.0) as holder:
        time.sleep(2.5)  # past the busy timeout
        reply = request(d.url, "GET", f"/api/models/{repo}", headers=basic(fresh))
        assert reply.status == 200, reply.body
        git("ls-remote", d.repo_url(repo, token=fresh))
        took, reply = timed(lambda: request(d.url, "POST", "/api/repos/create", headers=basic(token),
                                            body=json.dumps({"name": unique("r"), "type": "model"}).encode()))
        assert reply.status == 503 and "retry-after" in reply.headers, (reply.status, reply.body)
        assert took < 1.8  # loop_busy_timeout is 0.2 s; before, it waited the whole busy timeout (2 s)
        holder.wait(30)
    git("push", "-q", d.repo_url(repo, token=token), "main", cwd=work)
    assert git.out("ls-remote", d.repo_url(repo), "refs/heads/main").split()[0] == git.out("rev-parse", "HEAD",
                                                                                            cwd=work)


def test_a_push_during_a_held_lock_waits_off_the_loop_and_lands(make_daemon, git: Git, tmp_path):
    d = make_daemon({"jobs.poll_interval": 0.2})
    _, token, repo = _setup(d, git, tmp_path)
    work = tmp_path / "w"
    head = git.commit(work, {"c.txt": "three\n"}, message="third")
    result: list[subprocess.CompletedProcess] = []
    with write_lock_held(d.data / "gitd.db", 8.0):
        pusher = threading.Thread(target=lambda: result.append(
            git("push", "-q", d.repo_url(repo, token=token), "main", cwd=work, check=False)))
        pusher.start()
        worst, statuses = _worst_healthz(d.url, time.monotonic() + 4)
        assert set(statuses) == {200} and worst < 2.0, worst
        pusher.join(60)
    assert result and result[0].returncode == 0, result[0].stderr
    assert git.out("ls-remote", d.repo_url(repo), "refs/heads/main").split()[0] == head
