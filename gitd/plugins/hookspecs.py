"""The plugin interface (plugin API 1): the hooks a plugin may implement.

A plugin is any object with methods named after these hooks and marked with
``@gitd.hookimpl``. It is found through the ``gitd.plugins`` entry-point group. If the
entry point names a class, gitd instantiates it with one argument, its
``gitd.PluginContext`` (which is also a read-only mapping of the plugin's raw settings,
the ``[plugins.NAME]`` table of gitd.toml); any other object (a module, an instance) is
registered as it is. A method may declare fewer arguments than its hook. See
docs/plugins.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from collections.abc import Collection

    from gitd.plugins.contrib import CliCommand, HostRoute, RepoRoute, Route
    from gitd.plugins.events import (
        PushEvent,
        RepoCreated,
        RepoDeleted,
        RepoInfo,
        RepoRenamed,
        TaskEvent,
        VisibilityChanged,
    )
    from gitd.plugins.filters import RepoIds
    from gitd.plugins.web import WebTab

PROJECT = "gitd"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# -- ref updates ------------------------------------------------------------------------------
@hookspec
def gitd_pre_receive(event: PushEvent) -> None:
    """Inspect a push before any ref moves; raise ``gitd.PushRejected(msg)`` to refuse it.

    Runs in the daemon, on the push's critical path, for every way refs move (HTTP
    and SSH pushes, API commits, mirror fetches, plugin commits: see ``event.via``). The
    pushed objects are readable through ``event.view``, ``event.repository`` and
    ``event.git()``. A rejection is atomic: no ref moves and the message reaches the
    client. Any other exception is logged with the plugin's name and refuses the push
    with a generic message.
    """


@hookspec
def gitd_post_receive(event: PushEvent) -> None:
    """React to refs that have moved.

    Runs as a durable job, recorded before the push returned and run after it, once
    per (repository, plugin, ref updates); a raised exception retries the job with
    exponential backoff, and after ``jobs.max_attempts`` it is kept as failed until
    ``gitd jobs retry ID``. Make it idempotent: a job may run again after a crash.
    Jobs run on several threads at once.
    """


# -- repository lifecycle (durable jobs, retried on error) -------------------------------------
@hookspec
def gitd_repo_created(repo: RepoInfo, event: RepoCreated) -> None:
    """A repository was created."""


@hookspec
def gitd_repo_deleted(repo: RepoInfo, event: RepoDeleted) -> None:
    """A repository was deleted; ``repo.path`` no longer exists."""


@hookspec
def gitd_repo_renamed(repo: RepoInfo, event: RepoRenamed) -> None:
    """A repository was renamed or moved to another namespace (``repo`` has the new name)."""


@hookspec
def gitd_repo_visibility_changed(repo: RepoInfo, event: VisibilityChanged) -> None:
    """A repository became private or public (``repo.private``)."""


@hookspec
def gitd_task(event: TaskEvent) -> None:
    """Run work this plugin queued with ``PluginContext.submit`` (a durable job, retried on
    error). Only the plugin that submitted a task receives it."""


# -- contribution points ----------------------------------------------------------------------
@hookspec
def gitd_http_hosts() -> list[HostRoute]:
    """API 1.3. Host routes (``gitd.HostRoute``): requests to ``LABEL.DOMAIN`` served as a
    path the plugin names for ``LABEL`` (asked once, when the daemon starts). The path's
    own routes, authentication and access checks apply."""


@hookspec
def gitd_http_routes() -> list[Route | RepoRoute]:
    """HTTP routes this plugin serves (asked once, when the daemon starts).

    ``Route``s are mounted under ``/api/plugins/NAME/``; ``RepoRoute``s under a
    repository's API path (``/api/{models,datasets,spaces,codes}/NS/REPO/...``), where the
    daemon checks the caller's access to the repository before the handler runs. The
    daemon's authentication applies to both; a route never bypasses it.
    """


@hookspec
def gitd_repo_info(repo: RepoInfo, commit: str | None) -> dict[str, Any] | None:
    """Fields to add to the repository's info answer (``model_info``, ``dataset_info``,
    ``space_info``, the native API) at ``commit`` (None for an empty repository).

    Asked on every info request, on a worker thread: answer from what the plugin stored,
    never by reading the repository in full. New keys are added; a key the daemon already
    answers is only filled in when the daemon's value is empty; list values (``tags``) are
    merged.
    """


@hookspec
def gitd_repo_filter(repo_type: str, filters: dict[str, list[str]]) -> RepoIds | Collection[int] | None:
    """The repositories of ``repo_type`` that match **every** value of **every** key of
    ``filters``, for the Hub's listings (``list_models(filter=...)``): the ids as a list or
    set, or a ``gitd.RepoIds`` (a count, and the ids on demand) when they may be many.
    Return None when the plugin does not handle every key: the daemon then filters by the
    cards' tags itself, slowly.

    Keys: ``tags`` (``filter=`` and ``tags=``), ``pipeline_tag``, ``library``,
    ``language``, ``license``. Asked on every listing that filters, on a worker thread:
    answer from an index. Answer about every repository, private ones included: the
    daemon keeps what the caller may not read out of the listing.
    """


@hookspec
def gitd_web_tabs(repo: RepoInfo) -> list[WebTab] | None:
    """Tabs this plugin adds to ``repo``'s pages in the web UI (API 1.2): a list of
    ``gitd.WebTab``, or None for none. Asked whenever one of the repository's pages is
    drawn, on a worker thread: decide from ``repo`` (its type, what the plugin stored),
    never by reading the repository. The daemon checks access before a tab's handler runs.
    """


@hookspec
def gitd_run_instances(kind: str, user: str) -> list[dict[str, Any]] | None:
    """CSGHub's run instances of ``kind`` (``"inference"``, ``"finetune"``) that ``user`` owns,
    for ``GET /api/v1/user/{user}/run/model`` and ``.../finetune/instances`` (csghub-cli's
    ``inference list``, ``finetune list``; API 1.4). Each a dict in CSGHub's form (``deploy_id``,
    ``deploy_name``, ``model_id``, ``status``, ...); None when the plugin runs no such kind.
    The daemon has checked that the caller is ``user`` (or an admin). Asked on a worker thread."""


@hookspec
def gitd_run_instance(kind: str, repo: RepoInfo, instance: str, action: str, user: str) -> dict[str, Any] | None:
    """One run instance of ``kind`` on model ``repo``: ``action`` is ``"get"``, ``"start"`` or
    ``"stop"`` (``GET /api/v1/models/NS/NAME/run/{id}``, ``PUT .../run/{id}/start|stop``, and
    the finetune ones; API 1.4), asked by signed-in ``user``, who may read ``repo``. Answer
    the instance (a dict) when it is the plugin's, None when it is not (the daemon answers
    404 when no plugin claims it); raise ``HTTPError`` to refuse (403: not the owner)."""


@hookspec
def gitd_cli_commands() -> list[CliCommand]:
    """Subcommands this plugin adds to the ``gitd`` command line."""


# -- the daemon's lifecycle (API 1.2) ----------------------------------------------------------
@hookspec
def gitd_daemon_started() -> None:
    """``gitd serve`` is up (listeners bound, job workers running): start background work
    that lives as long as the daemon (a supervisor, a scheduler). Called once, on a worker
    thread; return promptly (start your own threads). Not called in ``gitd`` commands or
    the test harness. An exception is logged; the daemon serves anyway."""


@hookspec
def gitd_daemon_stopping() -> None:
    """``gitd serve`` is stopping (SIGTERM): stop what ``gitd_daemon_started`` started and
    release its processes. Called once, on a worker thread, before the job workers stop;
    the daemon waits for it at most ``[plugins] stop_timeout`` seconds."""


# The hooks whose implementations run as durable jobs, and the hooks asked in-line.
JOB_HOOKS = ("gitd_post_receive", "gitd_repo_created", "gitd_repo_deleted", "gitd_repo_renamed",
             "gitd_repo_visibility_changed", "gitd_task")
