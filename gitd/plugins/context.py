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
    from pathlib import Path

    from gitd.plugins.events import RepoInfo
    from gitd.plugins.gitcmd import GitCommand, GitCommands
    from gitd.plugins.secrets import PluginSecrets
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
                 git: GitCommands | None = None,
                 secrets: Callable[[str], PluginSecrets] | None = None,
                 create_repo: Callable[[str, str, bool], RepoInfo] | None = None,
                 cache_dir: Callable[[str], Path] | None = None,
                 progress: Callable[[str], bool] | None = None,
                 access_token: Callable[[RepoInfo, str, float], str] | None = None):
        self.access_token = access_token
        self.writer = writer
        self.git = git
        self.secrets = secrets
        self.create_repo = create_repo
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
        self._secrets: PluginSecrets | None = None
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

    @property
    def secrets(self) -> PluginSecrets:
        """Encrypt values to store (``encrypt(value) -> str``) and get them back
        (``decrypt(token) -> bytes``), under a key of this plugin's in the data directory's
        secrets (see ``gitd.plugins.secrets``)."""
        if self._secrets is None:
            self._secrets = self._need(self._services.secrets, "secrets")(self.name)
        return self._secrets

    def git_command(self, args: list[str], *, git_dir: Path | str | None, env: Mapping[str, str] | None = None,
                    protocols: tuple[str, ...] = ("http", "https", "ssh")) -> GitCommand:
        """``git <args>`` as the daemon runs git: its allow-listed environment, no hooks or
        credential helpers, only the ``protocols`` given, and for ``fetch`` git's object
        checks as pushes get them. Returns ``.argv`` and ``.env`` to start it with (see
        ``gitd.plugins.gitcmd``). ``env`` may add ``GIT_CONFIG_*`` (credentials as
        ``http.<url>.extraHeader``), ``GIT_SSH_COMMAND`` and ``GIT_OBJECT_DIRECTORY``."""
        commands: GitCommands = self._need(self._services.git, "git commands")
        return commands.command(list(args), git_dir=git_dir, env=env, protocols=protocols)

    def create_repo(self, full_name: str, repo_type: str = "model", *, private: bool = False) -> RepoInfo:
        """Create an empty repository ``ns/name`` (``ns`` must be an existing user or
        organisation), as ``gitd repo create`` does; other plugins hear of it."""
        return self._need(self._services.create_repo, "repository creation")(full_name, repo_type, private)

    def access_token(self, repo: RepoInfo, level: str = "read", ttl: float = 3600.0) -> str:
        """A short-lived token for a process this plugin starts (a training job, a model
        server: its ``HF_TOKEN``), good for ``repo`` alone, up to ``level`` (``read`` or
        ``write``), whatever the repository's visibility, for ``ttl`` seconds (API 1.5). It
        names no account: it is the daemon's, and only its expiry ends it."""
        if level not in ("read", "write"):
            raise ValueError(f"an access token reads or writes, not {level!r}")
        return self._need(self._services.access_token, "access tokens")(repo, level, float(ttl))

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
