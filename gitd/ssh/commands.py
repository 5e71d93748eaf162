"""What an authenticated SSH session may run, and how.

* ``git-upload-pack`` / ``git-receive-pack`` / ``git-upload-archive``: the access
  function and the git runner that Smart HTTP uses (``GitGateway``), pushes through the
  same hook chain with ``via="ssh"``; only a validated ``GIT_PROTOCOL`` is taken from
  the client's environment;
* ``git-lfs-authenticate PATH upload|download``: JSON with the LFS HTTP endpoint and a
  short-lived token scoped to that repository and operation;
* ``git-lfs-transfer PATH upload|download``: the pure-SSH LFS protocol over the LFS
  store (``[ssh] lfs_transfer``, on by default); when it is off the command exits as a
  missing one does, so git-lfs falls back to ``git-lfs-authenticate``. A session needs
  read access to the repository; what needs write access (uploads, locks) is refused
  request by request, with a message;
* a shell gets a greeting and exit status 1; anything else a clear refusal.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from gitd.access.auth import Authenticator, ssh_key_parent
from gitd.access.rules import AccessLevel, Principal
from gitd.errors import GitdError
from gitd.git.gateway import GitGateway
from gitd.git.runner import sanitize_protocol
from gitd.repos import RepoService
from gitd.ssh.channel import ChannelClosed, ChannelIO
from gitd.ssh.command import Command, CommandError, parse_command
from gitd.ssh.keys import SSHKeys
from gitd.ssh.lfs_backend import BackendFactory
from gitd.ssh.lfs_transfer import LfsTransfer
from gitd.ssh.pktline import PktReader, PktWriter
from gitd.store import Account, Repo, SSHKey

log = logging.getLogger("gitd.ssh")

# Exit status of every refusal (unknown command, no access, ...), as GitHub does.
REFUSED = 1
# What a shell reports for a command it does not have: git-lfs treats it as "not supported".
NOT_SUPPORTED = 127


@dataclass(frozen=True)
class Identity:
    """Who an SSH connection authenticated as: the verified key and its user."""

    key: SSHKey
    account: Account


def lfs_http_base(public_url: str, http_listener: str, local_host: str | None) -> str:
    """Where git-lfs reaches this server over HTTP: ``public_url`` when set; else the bound
    HTTP address, with the address the SSH client connected to in place of a wildcard."""
    if public_url:
        return public_url.rstrip("/")
    bound = urlsplit(http_listener)
    host = bound.hostname or "127.0.0.1"
    if host in ("0.0.0.0", "::") and local_host:
        host = local_host
    if ":" in host:
        host = f"[{host}]"
    return f"{bound.scheme}://{host}:{bound.port}" if bound.port else f"{bound.scheme}://{host}"


class SSHCommands:
    def __init__(self, repos: RepoService, serve: GitGateway, auth: Authenticator, keys: SSHKeys, *,
                 http_base: Callable[[str | None], str], token_ttl: int,
                 lfs_backend: BackendFactory | None = None):
        self.repos = repos
        self.serve = serve
        self.auth = auth
        self.keys = keys
        self.http_base = http_base
        self.token_ttl = token_ttl
        self.lfs_backend = lfs_backend

    async def run(self, identity: Identity, io: ChannelIO, *, command: str | None, subsystem: str | None,
                  env: Mapping[str, str], local_host: str | None = None, address: str | None = None) -> int:
        """Run one session's request (from client ``address``); returns the exit status to report."""
        try:
            principal = self._principal(identity)
            if subsystem is not None:
                raise CommandError(f"the {subsystem[:40]!r} subsystem is not available; gitd serves git over SSH only")
            if command is None:
                await io.write_stderr(
                    f"Hi {identity.account.name}! You've authenticated, but gitd does not provide shell access.\n"
                    .encode())
                return REFUSED
            parsed = parse_command(command)
            if parsed.git_service is not None:
                return await self._git(principal, parsed, io, env, address)
            if parsed.verb == "git-lfs-authenticate":
                return await self._lfs_authenticate(principal, parsed, io, local_host)
            return await self._lfs_transfer(principal, parsed, io)
        except (CommandError, GitdError) as exc:
            await io.write_stderr(f"gitd: {exc.message}\n".encode())
            return REFUSED

    def _principal(self, identity: Identity) -> Principal:
        account = self.keys.still_owned(identity.key, identity.account)
        if account is None:
            raise CommandError("this SSH key is no longer registered")
        return Principal(account=account, method="ssh", parent=ssh_key_parent(identity.key))

    def _repo(self, principal: Principal, parsed: Command, service: str) -> Repo:
        repo = self.repos.find(parsed.repo.type, parsed.repo.namespace, parsed.repo.name)
        return self.serve.authorize(principal, repo, service)

    # -- git ------------------------------------------------------------------------------------
    async def _git(self, principal: Principal, parsed: Command, io: ChannelIO, env: Mapping[str, str],
                   address: str | None = None) -> int:
        service = parsed.git_service
        assert service is not None
        repo = self._repo(principal, parsed, service)
        pushing = service == "receive-pack"

        async def stdin():
            # A push whose client vanished gets EOF: git then either has the whole pack
            # and finishes the push, or aborts it and changes nothing.
            try:
                async for chunk in io.chunks():
                    yield chunk
            except ChannelClosed:
                if not pushing:
                    raise

        async def sink(data: bytes) -> None:
            try:
                await io.write(data)
            except ChannelClosed:
                if not pushing:
                    raise  # nobody is reading: stop git

        def err_sink(data: bytes) -> None:
            io.write_stderr_nowait(data)  # a few lines at most; dropped once the client is gone

        result = await self.serve.run(repo, principal, service, [], via="ssh", stdin=stdin(), sink=sink,
                                      err_sink=err_sink, protocol=sanitize_protocol(env.get("GIT_PROTOCOL")),
                                      address=address)
        return result.returncode

    # -- git-lfs ----------------------------------------------------------------------------------
    async def _lfs_authenticate(self, principal: Principal, parsed: Command, io: ChannelIO,
                                local_host: str | None) -> int:
        needed = AccessLevel.WRITE if parsed.operation == "upload" else AccessLevel.READ
        repo = self.repos.find(parsed.repo.type, parsed.repo.namespace, parsed.repo.name)
        self.serve.access.require(principal, repo, needed)
        assert repo is not None
        token = self.auth.sign_access(principal, repo.id, needed, self.token_ttl)  # bound to the key
        body = {
            "href": f"{self.http_base(local_host)}/{repo.url_path}.git/info/lfs",
            "header": {"Authorization": f"Bearer {token}"},
            "expires_in": self.token_ttl,
        }
        await io.write(json.dumps(body).encode() + b"\n")
        return 0

    @staticmethod
    def _flushing(io: ChannelIO) -> Callable[[bytes], Awaitable[None]]:
        async def write(data: bytes) -> None:
            await io.write(data, flush=True)  # each answer completes a request: no waiting

        return write

    async def _lfs_transfer(self, principal: Principal, parsed: Command, io: ChannelIO) -> int:
        if self.lfs_backend is None:
            # git-lfs 3.3.0 tries this first; failing here makes it use git-lfs-authenticate.
            await io.write_stderr(b"gitd: git-lfs-transfer: command not found\n")
            return NOT_SUPPORTED
        # Read access opens any session (a repository the user cannot read answers as a
        # missing one); the engine refuses uploads and locks to users without write access.
        repo = self.repos.find(parsed.repo.type, parsed.repo.namespace, parsed.repo.name)
        level = self.serve.access.require(principal, repo, AccessLevel.READ)
        assert repo is not None and principal.account is not None
        operation = parsed.operation or "download"
        log.info("ssh: git-lfs-transfer %s %s for %s", repo.url_path, operation, principal.account.name)
        engine = LfsTransfer(self.lfs_backend(principal.account, level), repo_id=repo.id, operation=operation,
                             can_write=level >= AccessLevel.WRITE,
                             reader=PktReader(io.reader), writer=PktWriter(self._flushing(io)))
        return await engine.run()
