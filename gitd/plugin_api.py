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
* run processes as the daemon's plugins do (API 1.4): ``Supervised`` and ``Supervisor``
  (a child process kept running on a port, restarted with backoff, put to sleep when idle),
  ``limited_argv`` (resource limits set by a launcher before exec), ``BoundedLog`` (a
  child's output kept to a size on disk), ``spawn``, ``stop_group`` and ``exit_reason`` (a
  child in its own session, stopped with what it started), ``relay_response`` (a reverse
  proxy's streamed answer),
  ``free_port``, ``TokenBuckets`` (request rates per key), and mint a read token for one
  repository on the caller's behalf (``PluginRequest.repo_token``); give such a process the
  daemon's own token for one repository, read or write, when no caller stands behind it
  (``context.access_token``: a queued training job; API 1.5);
* answer CSGHub's run instances (inference, finetune) for csghub-cli
  (``gitd_run_instances``, ``gitd_run_instance``; API 1.4);
* run git itself as the daemon does (``context.git_command``: a mirror's fetch), keep
  secrets encrypted (``context.secrets``), store LFS objects it downloads
  (``RepoWriter.lfs_receive``) and read held ones by id (``RepoView.lfs_open``), and
  create repositories (``context.create_repo``) — added in API 1.2.

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
from gitd.limits.rates import TokenBuckets
from gitd.plugins.boundedlog import BoundedLog
from gitd.plugins.context import PluginContext, PluginError
from gitd.plugins.contrib import (
    CliCommand,
    HostRoute,
    HTTPError,
    PluginRequest,
    RelayTarget,
    RepoRoute,
    Response,
    Route,
)
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
from gitd.plugins.launch import free_port
from gitd.plugins.launch import limited as limited_argv
from gitd.plugins.processes import exit_reason, spawn, stop_group
from gitd.plugins.relay import relay_response
from gitd.plugins.secrets import PluginSecrets, SecretError
from gitd.plugins.settings import Duration, SettingsError, Size, parse_settings
from gitd.plugins.storage import PluginStorage
from gitd.plugins.supervisor import Supervised, Supervisor
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

API_VERSION = "1.6"

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
    "HostRoute",
    "LfsFile",
    "LfsObjectMissing",
    "LfsPointer",
    "LfsRejected",
    "LfsUpload",
    "LimitExceeded",
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
    "RelayTarget",
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
    "Supervised",
    "Supervisor",
    "TaskEvent",
    "TokenBuckets",
    "TreeEntry",
    "ViewError",
    "VisibilityChanged",
    "WebRequest",
    "WebTab",
    "exit_reason",
    "format_lfs_pointer",
    "free_port",
    "hookimpl",
    "hookspec",
    "html_escape",
    "limited_argv",
    "parse_lfs_pointer",
    "parse_settings",
    "relay_response",
    "spawn",
    "stop_group",
]
