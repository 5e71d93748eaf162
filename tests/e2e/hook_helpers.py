"""Helpers for the hook and plugin tests: a daemon with plugin packages installed,
what its test plugins recorded, and its job table."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from gitd.jobs.queue import Job, JobQueue
from gitd.store import Store
from tests.support import Daemon, new_daemon

T = TypeVar("T")

RECORDING_PLUGINS = ("recorder", "flaky", "holder")


def wait_for(check: Callable[[], T], timeout: float = 20.0, what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class PluginDaemon:
    """A daemon whose PYTHONPATH holds the installed plugin packages."""

    daemon: Daemon
    records_dir: Path
    program: str = "auto"

    def records(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        """Records ``<kind>-*.json`` whose top-level fields equal ``match`` (repo: full name)."""
        out = []
        for path in sorted(self.records_dir.glob(f"{kind}-*.json")):
            data = json.loads(path.read_text())
            if "repo" in match and data.get("repo", {}).get("full_name") != match["repo"]:
                continue
            if all(data.get(k) == v for k, v in match.items() if k != "repo"):
                out.append(data)
        return out

    def repo_path(self, full_name: str, repo_type: str = "model") -> Path:
        return self.daemon.repo_path(full_name, repo_type)

    def jobs(self, plugin: str | None = None, hook: str | None = None, repo: str | None = None) -> list[Job]:
        """Jobs, oldest first, filtered by plugin, hook and repository full name."""
        store = Store(self.daemon.data / "gitd.db")
        try:
            jobs = JobQueue(store).list(limit=100000)
        finally:
            store.close()
        return [j for j in reversed(jobs) if (plugin is None or j.plugin == plugin) and (hook is None or j.hook == hook)
                and (repo is None or job_repo(j) == repo)]


def job_repo(job: Job) -> str | None:
    info = job.payload.get("repo") or {}
    return f"{info['namespace']}/{info['name']}" if "namespace" in info else None


def plugin_daemon(root: Path, site: Path, settings: dict[str, object] | None = None,
                  env: dict[str, str] | None = None, start: bool = True) -> PluginDaemon:
    """A daemon under ``root`` with the plugin packages in ``site`` on its PYTHONPATH; the
    recording test plugins write under ``root/records``."""
    records = root / "records"
    plugin_dirs = {f"plugins.{name}.dir": str(records) for name in RECORDING_PLUGINS}
    fast_jobs = {"jobs.backoff_base": 0.1, "jobs.poll_interval": 0.2}
    d = new_daemon(root, {**fast_jobs, **plugin_dirs, **(settings or {})}, {"PYTHONPATH": str(site), **(env or {})})
    if start:
        d.start()
    return PluginDaemon(d, records)
