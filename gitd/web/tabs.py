"""Plugins' tabs on repository pages (the ``gitd_web_tabs`` hook, plugin API 1.2)."""

from __future__ import annotations

import logging

from gitd.access.rules import AccessLevel
from gitd.plugins.events import RepoInfo
from gitd.plugins.host import PluginHost
from gitd.plugins.web import WebTab

log = logging.getLogger("gitd.web")

HOOK = "gitd_web_tabs"
LEVELS = {"read": AccessLevel.READ, "write": AccessLevel.WRITE, "admin": AccessLevel.ADMIN}


class WebTabs:
    def __init__(self, plugins: PluginHost | None):
        self.plugins = plugins

    def for_repo(self, repo: RepoInfo, level: AccessLevel) -> list[tuple[str, WebTab]]:
        """(plugin, tab) for every tab the plugins show on ``repo`` to a caller with ``level``
        (blocking: plugins' code). A plugin that fails or answers nonsense is left out, logged."""
        if self.plugins is None or not self.plugins.implementations(HOOK):
            return []
        found: list[tuple[str, WebTab]] = []
        for plugin, tabs in self.plugins.collect(HOOK, repo=repo):
            if not isinstance(tabs, list | tuple):
                log.error("plugin %s: %s answered %s, not a list; ignored", plugin, HOOK, type(tabs).__name__)
                continue
            for tab in tabs:
                if not isinstance(tab, WebTab):
                    log.error("plugin %s: %r is not a WebTab; ignored", plugin, tab)
                elif level >= LEVELS[tab.access]:
                    found.append((plugin, tab))
        found.sort(key=lambda pt: (pt[1].order, pt[0], pt[1].name))
        return found

    def find(self, repo: RepoInfo, level: AccessLevel, plugin: str, name: str) -> WebTab | None:
        for owner, tab in self.for_repo(repo, level):
            if owner == plugin and tab.name == name:
                return tab
        return None
