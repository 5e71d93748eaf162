"""The plugin interface. Stable: plugin authors write against exactly this.

A plugin is any object with methods named after these hooks and marked with
``@gitd.hookimpl``. It is found through the ``gitd.plugins`` entry-point group. If
the entry point names a class, gitd instantiates it with one argument, the plugin's
settings (the ``[plugins.NAME]`` table of gitd.toml, as a dict); any other object (a
module, an instance) is registered as it is. See docs/plugins.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from gitd.plugins.events import PushEvent, RepoInfo

PROJECT = "gitd"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def gitd_pre_receive(event: PushEvent) -> None:
    """Inspect a push before any ref moves; raise ``gitd.PushRejected(msg)`` to refuse it.

    Runs in the daemon, on the push's critical path, for every way refs move (HTTP
    and SSH pushes, API commits, mirror fetches: see ``event.via``). The pushed
    objects are readable through ``event.repository`` and ``event.git()``. A
    rejection is atomic: no ref moves and the message reaches the client. Any other
    exception is logged with the plugin's name and refuses the push with a generic
    message.
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


@hookspec
def gitd_repo_created(repo: RepoInfo) -> None:
    """A repository was created (durable job, retried on error)."""


@hookspec
def gitd_repo_deleted(repo: RepoInfo) -> None:
    """A repository was deleted; ``repo.path`` no longer exists (durable job)."""
