"""Helpers for the mirror end-to-end tests: a daemon with mirror settings, status polling."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.lfs_support import write_settings
from tests.support import Daemon, Git

FAST = {"jobs.poll_interval": 0.2, "jobs.backoff_base": 0.2, "jobs.workers": 3,
        "plugins.mirror.jitter": 0, "plugins.mirror.retry_min": "2s"}


def mirror_daemon(make_daemon, **settings: Any) -> Daemon:
    """A daemon of its own whose gitd.toml (read by the daemon and by ``daemon.cli``) holds
    ``FAST`` and ``settings`` (dotted keys)."""
    d = make_daemon(start=False)
    write_settings(d.data, {**FAST, **settings})
    return d.start()


def api(d: Daemon, method: str, path: str, token: str | None = None, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(d.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw.decode(errors="replace")


def status(d: Daemon, repo: str, token: str, repo_type: str = "model") -> dict[str, Any]:
    plural = {"model": "models", "dataset": "datasets", "space": "spaces"}[repo_type]
    code, body = api(d, "GET", f"/api/{plural}/{repo}/mirror", token)
    assert code == 200, body
    return body


def wait_sync(d: Daemon, repo: str, token: str, *, after: str | None = None, timeout: float = 120.0,
              repo_type: str = "model") -> dict[str, Any]:
    """The pull mirror's status once a sync attempted after ``after`` has finished."""
    deadline = time.monotonic() + timeout
    while True:
        pull = status(d, repo, token, repo_type)["pull"]
        if pull["state"] != "running" and pull["last_attempt"] and (after is None or pull["last_attempt"] > after):
            return pull
        if time.monotonic() > deadline:
            raise AssertionError(f"no sync of {repo} finished in {timeout}s: {pull}\n{d.log()[-3000:]}")
        time.sleep(0.2)


def refs(git: Git, bare: Path) -> dict[str, str]:
    out = git.out("--git-dir", str(bare), "for-each-ref", "--format=%(refname) %(objectname)")
    return dict(line.split() for line in out.splitlines())

