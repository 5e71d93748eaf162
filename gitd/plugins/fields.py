"""Plugins' fields in repository info answers (the ``gitd_repo_info`` hook)."""

from __future__ import annotations

import logging
from typing import Any

from gitd.plugins.events import RepoInfo
from gitd.plugins.host import PluginHost

log = logging.getLogger("gitd.plugins")

REPO_INFO = "gitd_repo_info"


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


class InfoFields:
    def __init__(self, plugins: PluginHost):
        self.plugins = plugins

    def active(self) -> bool:
        return bool(self.plugins.implementations(REPO_INFO))

    def add(self, repo: RepoInfo, commit: str | None, answer: dict[str, Any]) -> dict[str, Any]:
        """``answer`` with every plugin's fields: new keys added, empty ones filled in, lists
        merged; the daemon's own non-empty values are never replaced (blocking: call it on a
        worker thread)."""
        for name, extra in self.plugins.collect(REPO_INFO, repo=repo, commit=commit):
            if not isinstance(extra, dict):
                log.error("plugin %s: gitd_repo_info answered %s, not a dict; ignored", name, type(extra).__name__)
                continue
            for key, value in extra.items():
                current = answer.get(key)
                if key not in answer or _empty(current):
                    answer[key] = value
                elif isinstance(current, list) and isinstance(value, list):
                    answer[key] = current + [v for v in value if v not in current]
        return answer
