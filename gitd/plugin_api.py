"""gitd's public plugin API, version 1. Plugins import from here (or from ``gitd``), and only here.

What a plugin can do (docs/plugins.md has the guide and a worked example):

* implement hooks (``gitd.plugins.hookspecs``): refuse pushes (``gitd_pre_receive``),
  react to them and to repository lifecycle events as durable jobs, run its own queued
  tasks (``gitd_task``);
* read repositories through a ``RepoView`` (trees, files with their Git LFS content,
  ranged reads, diffs): ``event.view`` or ``context.view(repo)``, and write to them
  through a ``RepoWriter`` (``context.writer(repo)``: commits, LFS objects, ref moves,
  all through the hook chain);
* keep its data in its own tables of the daemon's database (``context.storage``), and
  files it can recompute in its own directory (``context.cache_dir``; API 1.2);
* report how far a running job has got (``context.progress``, shown by ``gitd jobs list``;
  API 1.2);
* serve HTTP routes (``Route``, ``RepoRoute``) behind the daemon's authentication and
  access checks, add fields to repository info answers (``gitd_repo_info``), answer the
  Hub listings' tag filters from an index (``gitd_repo_filter``, ``RepoIds``; API 1.1),
  add ``gitd`` subcommands (``CliCommand``), and add tabs to a repository's pages in
  the web UI (``gitd_web_tabs``, ``WebTab``, ``WebRequest``; API 1.2);
* declare typed settings (a dataclass, ``context.settings(cls)``);
* run git itself as the daemon does (``context.git_command``: a mirror's fetch), keep
  secrets encrypted (``context.secrets``), store LFS objects it downloads
  (``RepoWriter.lfs_receive``) and read held ones by id (``RepoView.lfs_open``), and
  create repositories (``context.create_repo``) — added in API 1.2;
* start supervised processes (``spawn``, ``stop_group``, ``Limits``, ``BoundedLog``,
  ``exit_reason``) and give them a short-lived token pinned to one repository
  (``context.access_token``: HF_TOKEN for a training job or a model server) — API 1.3.

The API follows semantic versioning: ``API_VERSION`` changes its major number only when
something here is removed or changed incompatibly; additions raise the minor number.
``gitd.testing`` runs a plugin in-process for its tests.
"""

from gitd.errors import PushRejected
from gitd.git.refs import RefConflict
from gitd.lfs.pointer import MAX_POINTER_SIZE as MAX_LFS_POINTER_SIZE
from gitd.lfs.pointer import Pointer as LfsPointer
from gitd.lfs.pointer import format_pointer as format_lfs_pointer
from gitd.lfs.pointer import parse_pointer as parse_lfs_pointer
from gitd.plugins.context import PluginContext, PluginError
from gitd.plugins.contrib import CliCommand, HTTPError, PluginRequest, RepoRoute, Response, Route
from gitd.plugins.events import (
    VIA,
    ZERO_OID,
    PushEvent,
    RefUpdate,
    RepoCreated,
    RepoDeleted,
    RepoInfo,
    RepoRenamed,
    TaskEvent,
    VisibilityChanged,
)
from gitd.plugins.filters import RepoIds
from gitd.plugins.gitcmd import GitCommand
from gitd.plugins.hookspecs import hookimpl, hookspec
from gitd.plugins.processes import BoundedLog, Limits, exit_reason, spawn, stop_group
from gitd.plugins.secrets import PluginSecrets, SecretError
from gitd.plugins.settings import Duration, SettingsError, Size, parse_settings
from gitd.plugins.storage import PluginStorage
from gitd.plugins.view import (
    CommitInfo,
    FileChange,
    LfsFile,
    LfsObjectMissing,
    LimitExceeded,
    NotFoundInTree,
    RepoView,
    TreeEntry,
    ViewError,
)
from gitd.plugins.web import WebRequest, WebTab, html_escape
from gitd.plugins.writer import LfsRejected, LfsUpload, RepoWriter

API_VERSION = "1.3"

__all__ = [
    "API_VERSION",
    "MAX_LFS_POINTER_SIZE",
    "VIA",
    "ZERO_OID",
    "BoundedLog",
    "CliCommand",
    "CommitInfo",
    "Duration",
    "FileChange",
    "GitCommand",
    "HTTPError",
    "LfsFile",
    "LfsObjectMissing",
    "LfsPointer",
    "LfsRejected",
    "LfsUpload",
    "LimitExceeded",
    "Limits",
    "NotFoundInTree",
    "PluginContext",
    "PluginError",
    "PluginRequest",
    "PluginSecrets",
    "PluginStorage",
    "PushEvent",
    "PushRejected",
    "RefConflict",
    "RefUpdate",
    "RepoCreated",
    "RepoDeleted",
    "RepoIds",
    "RepoInfo",
    "RepoRenamed",
    "RepoRoute",
    "RepoView",
    "RepoWriter",
    "Response",
    "Route",
    "SecretError",
    "SettingsError",
    "Size",
    "TaskEvent",
    "TreeEntry",
    "ViewError",
    "VisibilityChanged",
    "WebRequest",
    "WebTab",
    "exit_reason",
    "format_lfs_pointer",
    "hookimpl",
    "hookspec",
    "html_escape",
    "parse_lfs_pointer",
    "parse_settings",
    "spawn",
    "stop_group",
]
