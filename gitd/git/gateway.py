"""Serving a git service to a client: what every git transport (Smart HTTP, SSH) shares.

A transport parses its own request, then asks ``GitGateway`` to authorise the service
on the repository (the one access function) and to run it (the one git runner). A
``receive-pack`` runs inside a push session whose token, with the hook socket, goes
into git's environment, so the receive hooks call back into the daemon and the push
goes through the hook chain with ``event.via`` naming the transport.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from gitd.access.rules import Access, AccessLevel, Principal
from gitd.errors import ServiceUnavailable
from gitd.git.refs import RefChanges
from gitd.git.runner import GitResult, GitRunner
from gitd.git.slots import Caller
from gitd.hooks.sessions import PushSessions
from gitd.metrics import Metrics
from gitd.ops.diskspace import DiskSpace
from gitd.repos import RepoService
from gitd.store import Repo

log = logging.getLogger("gitd.git")

Sink = Callable[[bytes], Awaitable[None]]

# The access level each git service needs.
NEEDED = {
    "upload-pack": AccessLevel.READ,
    "upload-archive": AccessLevel.READ,
    "receive-pack": AccessLevel.WRITE,
}


class GitGateway:
    def __init__(self, repos: RepoService, access: Access, git: GitRunner, sessions: PushSessions,
                 metrics: Metrics, *, ref_changes: RefChanges, hook_socket: Path, hooks_enabled: bool = True,
                 disk: DiskSpace | None = None):
        self.repos = repos
        self.disk = disk  # below its watermark, pushes are refused (507) before git starts
        self.ref_changes = ref_changes
        self.access = access
        self.git = git
        self.sessions = sessions
        self.metrics = metrics
        self.hook_socket = hook_socket
        self.hooks_enabled = hooks_enabled

    def authorize(self, principal: Principal, repo: Repo | None, service: str) -> Repo:
        """The repository, if ``principal`` may run ``service`` on it; else the GitdError the
        client should see (a private repository looks exactly like a missing one)."""
        self.access.require(principal, repo, NEEDED[service])
        assert repo is not None
        if not self.repos.path(repo).is_dir():  # a row without its directory (a bad copy or restore)
            log.error("repository %s (id %d) has no directory %s; run 'gitd doctor'", repo.full_name, repo.id,
                      self.repos.path(repo))
            raise ServiceUnavailable("this repository's data is missing on the server; the administrator must "
                                     "restore it (gitd doctor tells what is wrong)", code="RepositoryDataMissing")
        if service == "receive-pack" and self.disk is not None:
            self.disk.check()
        return repo

    async def run(self, repo: Repo, principal: Principal, service: str, args: list[str], *, via: str,
                  stdin: AsyncIterator[bytes] | None, sink: Sink, protocol: str | None,
                  on_start: Callable[[], Awaitable[None]] | None = None,
                  err_sink: Callable[[bytes], None] | None = None, address: str | None = None) -> GitResult:
        """Run ``git <service>`` on ``repo`` for ``principal`` (already authorised), connected
        from ``address`` (its process slot counts against the address and, for anonymous
        callers, against the anonymous share)."""
        path = self.repos.path(repo)
        caller = Caller(address, principal.is_anonymous)
        if service == "receive-pack":
            with self.sessions.open(repo, principal, via) as session:
                env = {"GITD_HOOK_SOCKET": str(self.hook_socket), "GITD_PUSH_TOKEN": session.token}
                try:
                    result = await self.git.run(service, path, args, stdin=stdin, sink=sink, protocol=protocol,
                                                env=env, on_start=on_start, err_sink=err_sink,
                                                hooks=self.hooks_enabled, caller=caller)
                finally:
                    # Refs may have moved even if post-receive never reached us (hooks off,
                    # a killed hook): ref caches must look again before the pusher hears back.
                    self.ref_changes.bump()
        else:
            result = await self.git.run(service, path, args, stdin=stdin, sink=sink, protocol=protocol,
                                        on_start=on_start, err_sink=err_sink, caller=caller)
        self.metrics.observe_git(service, via, result.seconds, result.bytes_out, result.bytes_in,
                                 result.returncode)
        return result
