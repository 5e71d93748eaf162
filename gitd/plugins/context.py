"""``PluginContext``: what a plugin's constructor receives from the daemon.

It is a dict of the plugin's raw settings (so a plugin written as
``def __init__(self, settings)`` keeps working) and also carries the plugin's typed
settings, its own storage, repository views, and the way to queue durable work for
itself. Everything is made on first use: the CLI loading a plugin to list its commands
opens nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from gitd.plugins.settings import parse_settings

if TYPE_CHECKING:
    from gitd.plugins.events import RepoInfo
    from gitd.plugins.storage import PluginStorage
    from gitd.plugins.view import RepoView, RepoViews
    from gitd.plugins.writer import RepoWriter

T = TypeVar("T")


class PluginError(Exception):
    """A plugin's own failure with a message for the user (CLI commands print it)."""


class PluginServices:
    """The daemon's side of every plugin's context (built by the composition root)."""

    def __init__(self, *, storage: Callable[[str], PluginStorage] | None = None,
                 views: Callable[[], RepoViews] | None = None,
                 submit: Callable[..., int | None] | None = None,
                 find_repo: Callable[[str, str | None], RepoInfo | None] | None = None,
                 list_repos: Callable[[str | None], list[RepoInfo]] | None = None,
                 writer: Callable[[RepoInfo, str], RepoWriter] | None = None,
                 cache_dir: Callable[[str], Path] | None = None,
                 progress: Callable[[str], bool] | None = None):
        self.writer = writer
        self.cache_dir = cache_dir
        self.progress = progress
        self.storage = storage
        self.views = views
        self.submit = submit
        self.find_repo = find_repo
        self.list_repos = list_repos


NO_SERVICES = PluginServices()


class PluginContext(dict[str, Any]):
    """A plugin's context. It is also a dict of the plugin's raw settings (a copy: changing
    it changes nothing), so plugins written as ``def __init__(self, settings)`` keep working."""

    def __init__(self, name: str, settings: Mapping[str, Any], services: PluginServices = NO_SERVICES):
        super().__init__(settings)
        self.name = name
        self._raw = dict(settings)
        self._services = services
        self._storage: PluginStorage | None = None
        self.log = logging.getLogger(f"gitd.plugins.{name}")

    def __repr__(self) -> str:
        return f"PluginContext({self.name!r}, {self._raw!r})"

    def settings(self, cls: type[T]) -> T:
        """The settings as the dataclass ``cls`` (see ``gitd.plugins.settings``); raises
        SettingsError naming the key when one is unknown, missing or malformed."""
        return parse_settings(cls, self._raw, where=f"plugins.{self.name}")

    # -- what the daemon offers --------------------------------------------------------------
    def _need(self, what: Any, name: str) -> Any:
        if what is None:
            raise PluginError(f"plugin {self.name}: {name} is not available in this process")
        return what

    @property
    def storage(self) -> PluginStorage:
        """This plugin's tables in the daemon's database (see ``gitd.plugins.storage``)."""
        if self._storage is None:
            self._storage = self._need(self._services.storage, "storage")(self.name)
        return self._storage

    def view(self, repo: RepoInfo) -> RepoView:
        """A read-only view of ``repo`` as it is now (use one view per thread)."""
        return self._need(self._services.views, "repository views")().open(repo)

    def writer(self, repo: RepoInfo) -> RepoWriter:
        """Write to ``repo``: blobs, LFS objects, commits and ref moves, every ref move through
        the hook chain with ``via`` "plugin" (or "mirror"). One writer per thread."""
        return self._need(self._services.writer, "repository writes")(repo, self.name)

    def submit(self, repo: RepoInfo | None, task: str, payload: dict[str, Any] | None = None, *,
               key: str | None = None, delay: float = 0.0) -> int | None:
        """Queue durable work for this plugin: its ``gitd_task`` hook runs it (retried on error).
        ``key`` makes it unique: a task with the same key that is still queued is not
        queued again. Returns the job id (None when it was already queued)."""
        return self._need(self._services.submit, "the job queue")(self.name, repo, task, payload or {}, key, delay)

    @property
    def cache_dir(self) -> Path:
        """The plugin's own directory on the daemon's disk (``DATA/plugins/NAME``, made on first
        use) for files it can recompute: caches, local copies, indexes. gitd never reads it; a
        plugin keeps it bounded itself."""
        return self._need(self._services.cache_dir, "a cache directory")(self.name)

    def progress(self, text: str) -> bool:
        """Record how far the job this thread is running has got (``gitd jobs list`` shows it;
        it stays after the job ends, so a last summary remains visible). Returns False (and
        records nothing) outside a job."""
        report = self._services.progress
        return bool(report(text)) if report is not None else False

    def find_repo(self, full_name: str, repo_type: str | None = None) -> RepoInfo | None:
        """A repository by ``ns/name`` (any visibility: plugins run inside the daemon)."""
        return self._need(self._services.find_repo, "repository lookup")(full_name, repo_type)

    def repos(self, repo_type: str | None = None) -> list[RepoInfo]:
        """Every repository (of one type), for plugins that re-index or schedule."""
        return self._need(self._services.list_repos, "repository listing")(repo_type)
