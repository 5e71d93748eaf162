"""The SSH listener (asyncssh): public-key authentication, sessions, refusals.

Authentication: only public keys, looked up by fingerprint among users' registered
keys. asyncssh calls ``validate_public_key`` for every key a client offers (with or
without a signature) and checks the signature itself afterwards, so the candidate
identity is overwritten on every call and only trusted once ``auth_completed`` fixed
it: the identity is the key that was actually verified.

Sessions: ``exec`` requests run through ``SSHCommands``; a shell gets the greeting;
pty, X11 and agent forwarding, subsystems, and TCP/Unix forwarding are refused. The
client's environment is kept by asyncssh but only ``GIT_PROTOCOL`` is ever read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import asyncssh

from gitd.limits.connections import LISTEN_BACKLOG, ConnectionLimiter
from gitd.ssh.channel import ChannelIO
from gitd.ssh.commands import Identity, SSHCommands
from gitd.ssh.ignore_packets import skip_ignore_packets
from gitd.ssh.keys import SSHKeys

log = logging.getLogger("gitd.ssh")

# Seconds a client may take to authenticate.
LOGIN_TIMEOUT = 30.0
# Seconds active commands may take to finish after shutdown begins.
SHUTDOWN_GRACE = 30.0
# Seconds clients get to close their connections once their commands are done.
CLIENT_HANGUP_GRACE = 3.0
# What a client may send before it must wait for us (per channel), as OpenSSH's sshd: it
# bounds what one push can make the daemon buffer. Clones are bounded by the client's window.
WINDOW = 2 * 1024 * 1024
MAX_PACKET = 32 * 1024
# Ciphers offered when the configuration names none (see [ssh] ciphers in gitd.toml).
DEFAULT_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr", "aes192-ctr", "aes256-ctr")
# MACs offered for the non-AEAD ciphers (see [ssh] macs in gitd.toml).
DEFAULT_MACS = ("hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com", "hmac-sha2-256", "hmac-sha2-512")
PROHIBITED = asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED


class GitSession(asyncssh.SSHServerSession):
    """One SSH session channel: one command (or a refused shell/subsystem)."""

    def __init__(self, server: _Connection):
        self._server = server
        self._chan: asyncssh.SSHServerChannel | None = None
        self._io: ChannelIO | None = None
        self._subsystem: str | None = None

    def connection_made(self, chan: asyncssh.SSHServerChannel) -> None:  # type: ignore[override]
        self._chan = chan
        self._io = ChannelIO(chan)

    def pty_requested(self, term_type: str, term_size: tuple[int, int, int, int], term_modes: Mapping) -> bool:
        return False  # OpenSSH says "PTY allocation request failed"; the session goes on

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str) -> bool:
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        self._subsystem = subsystem
        return True  # answered with a message and exit status 1

    def session_started(self) -> None:
        assert self._chan is not None and self._io is not None
        self._server.transport.start_session(self._run(self._chan, self._io))

    async def _run(self, chan: asyncssh.SSHServerChannel, io: ChannelIO) -> None:
        identity = self._server.identity
        assert identity is not None
        status = 1
        try:
            status = await self._server.transport.commands.run(
                identity, io, command=chan.get_command(), subsystem=self._subsystem,
                env=_git_env(chan), local_host=chan.get_extra_info("sockname", ("",))[0],
                address=self._server.address)
        except asyncio.CancelledError:
            raise
        except Exception:
            if not io.closed:
                log.exception("ssh command %r of %s failed", chan.get_command(), identity.account.name)
                with contextlib.suppress(Exception):
                    await io.write_stderr(b"gitd: internal error; the administrator can find details in the log\n")
        with contextlib.suppress(Exception):
            await io.drain()
        io.exit(status)
        log.debug("ssh %s: %r -> exit %d", identity.account.name, (chan.get_command() or "<shell>")[:200], status)

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:  # type: ignore[override]
        if datatype is None and self._io is not None:
            self._io.feed(data)

    def eof_received(self) -> bool:
        if self._io is not None:
            self._io.feed_eof()
        return True  # keep our side open: output may still follow

    def pause_writing(self) -> None:
        if self._io is not None:
            self._io.pause_writing()

    def resume_writing(self) -> None:
        if self._io is not None:
            self._io.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._io is not None:
            self._io.lost()


def _git_env(chan: asyncssh.SSHServerChannel) -> dict[str, str]:
    """The only client variable gitd looks at; its value is validated by the git runner."""
    value = chan.get_environment().get("GIT_PROTOCOL")
    return {"GIT_PROTOCOL": value} if isinstance(value, str) else {}


class _Connection(asyncssh.SSHServer):
    """One client connection: authentication and what it may open."""

    def __init__(self, transport: SSHTransport):
        self.transport = transport
        self.identity: Identity | None = None
        self._candidate: Identity | None = None
        self._conn: asyncssh.SSHServerConnection | None = None
        self._peer = "?"
        self.address: str | None = None  # the client's IP address
        self._admitted = False

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:  # type: ignore[override]
        self._conn = conn
        peer = conn.get_extra_info("peername") or ("?", 0)
        self._peer = f"{peer[0]}:{peer[1]}"
        self.address = peer[0] if peer[0] != "?" else None
        limiter = self.transport.limiter
        if limiter is not None and not limiter.admit(self.address, "ssh"):
            # Over a connection limit: dropped before the key exchange costs anything.
            asyncio.get_running_loop().call_soon(conn.abort)
            return
        self._admitted = True
        skip_ignore_packets(conn)
        self.transport.connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._admitted:
            self._admitted = False
            if self.transport.limiter is not None:
                self.transport.limiter.release(self.address)
        self.transport.connections.discard(self._conn)
        if exc is not None:
            log.debug("ssh connection from %s lost: %s", self._peer, exc)

    # -- authentication -------------------------------------------------------------------------
    def begin_auth(self, username: str) -> bool:
        return True  # any user name (git@, the user's own): the key says who it is

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def host_based_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        # Called once per offered key, signed or not: the last call before auth_completed
        # is the one whose signature asyncssh verified.
        found = self.transport.keys.owner(key)
        self._candidate = Identity(key=found[0], account=found[1]) if found else None
        return found is not None

    def validate_ca_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return False

    def auth_completed(self) -> None:
        self.identity = self._candidate
        self._candidate = None
        if self.identity is not None:
            log.info("ssh: %s authenticated from %s with key %s", self.identity.account.name, self._peer,
                     self.identity.key.fingerprint)

    # -- channels ---------------------------------------------------------------------------------
    def session_requested(self) -> GitSession | bool:
        if self.identity is None:
            return False
        if self.transport.stopping:
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, "gitd is shutting down; try again")
        return GitSession(self)

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int) -> bool:
        raise asyncssh.ChannelOpenError(PROHIBITED, "gitd does not allow port forwarding")

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        return False

    def unix_connection_requested(self, dest_path: str) -> bool:
        raise asyncssh.ChannelOpenError(PROHIBITED, "gitd does not allow socket forwarding")

    def unix_server_requested(self, listen_path: str) -> bool:
        return False

    def tun_requested(self, unit: int | None) -> bool:
        raise asyncssh.ChannelOpenError(PROHIBITED, "gitd does not allow tunnels")

    def tap_requested(self, unit: int | None) -> bool:
        raise asyncssh.ChannelOpenError(PROHIBITED, "gitd does not allow tunnels")


class SSHTransport:
    """The SSH listener: start it, stop it gracefully, and the sessions it runs."""

    def __init__(self, commands: SSHCommands, keys: SSHKeys, host_key: Path, *,
                 login_timeout: float = LOGIN_TIMEOUT, ciphers: Sequence[str] = DEFAULT_CIPHERS,
                 macs: Sequence[str] = DEFAULT_MACS, connections: ConnectionLimiter | None = None):
        self.commands = commands
        self.keys = keys
        self.host_key = host_key
        self.login_timeout = login_timeout
        self.ciphers = list(ciphers)
        self.macs = list(macs)
        self.limiter = connections  # shared with the HTTP listener: per address and in all
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self.connections: set[asyncssh.SSHServerConnection | None] = set()
        self.stopping = False

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen on host:port (port 0 picks one); returns the bound address."""
        # asyncssh logs a dozen INFO lines per connection; keep them for debug logging.
        asyncssh_log = logging.getLogger("asyncssh")
        if asyncssh_log.level == logging.NOTSET and not log.isEnabledFor(logging.DEBUG):
            asyncssh_log.setLevel(logging.WARNING)
        self._acceptor = await asyncssh.create_server(
            lambda: _Connection(self), host, port,
            config=None,
            server_host_keys=[str(self.host_key)],
            public_key_auth=True, password_auth=False, kbdint_auth=False, host_based_auth=False,
            gss_auth=False, gss_kex=False,
            agent_forwarding=False, x11_forwarding=False, allow_pty=False, allow_scp=False,
            encoding=None, line_editor=False,
            login_timeout=self.login_timeout, keepalive_interval=60, keepalive_count_max=3,
            window=WINDOW, max_pktsize=MAX_PACKET,
            encryption_algs=self.ciphers, mac_algs=self.macs,
            server_version="gitd",
            reuse_address=True, backlog=LISTEN_BACKLOG,
        )
        sockname = self._acceptor.sockets[0].getsockname()
        return sockname[0], sockname[1]

    def start_session(self, work) -> None:
        task = asyncio.ensure_future(work)
        self._sessions.add(task)
        task.add_done_callback(self._sessions.discard)

    async def stop(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop accepting connections and sessions, let running commands finish for up to
        ``grace`` seconds (then cancel them: their git children are killed), give clients
        what is left of the grace to hang up by themselves (so they see their exit status),
        then disconnect whoever is left."""
        if self._acceptor is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        self.stopping = True
        self._acceptor.close()
        if self._sessions:
            log.info("ssh: waiting for %d running command(s)", len(self._sessions))
            _, pending = await asyncio.wait(set(self._sessions), timeout=grace)
            if pending:
                log.warning("ssh: shutdown grace of %gs is over: cancelling %d command(s) still running", grace,
                            len(pending))
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=2)
        open_connections = [conn for conn in self.connections if conn is not None]
        hangup = min(CLIENT_HANGUP_GRACE, deadline - loop.time())
        if open_connections and hangup > 0:
            await asyncio.wait([asyncio.ensure_future(conn.wait_closed()) for conn in open_connections],
                               timeout=hangup)
        for conn in list(self.connections):
            if conn is not None:
                conn.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._acceptor.wait_closed(), max(1.0, min(5.0, deadline - loop.time())))
        self._acceptor = None
