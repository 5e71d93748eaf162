"""One git child process and its three pipes, driven by an asyncio protocol.

Output is handed on as the kernel delivered it, with no stream buffer in between (a
pack crosses the daemon with two copies fewer than through ``asyncio.StreamReader``).
Flow control works both ways: reading git's stdout pauses while the consumer has more
than ``limit`` bytes pending, and writing to git's stdin waits while its pipe is full.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from typing import cast

from gitd.git import popen

# Kernel buffer of git's stdout pipe (Linux caps unprivileged pipes at 1 MiB by default):
# a pack streams in fewer, larger reads, and git blocks less often on a full pipe.
PIPE_SIZE = 1024 * 1024
STDERR_CAP = 64 * 1024

# Process groups of the git children running now: each starts a session of its own, so a
# daemon that must exit at once (shutdown past its grace) kills them with ``kill_all``.
_RUNNING: set[int] = set()


def kill_all() -> int:
    """SIGKILL every running git child's process group (thread-safe: signals only); returns how many."""
    groups = list(_RUNNING)
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    return len(groups)


class GitProcess(asyncio.SubprocessProtocol):
    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int,
                 on_stderr: Callable[[bytes], None] | None = None):
        self._loop = loop
        self._limit = limit
        self._on_stderr = on_stderr
        self.transport: asyncio.SubprocessTransport | None = None
        self._out: collections.deque[bytes] = collections.deque()
        self._out_size = 0
        self._out_eof = False
        self._out_paused = False
        self._out_waiter: asyncio.Future[None] | None = None
        self._err = bytearray()
        self._err_closed = loop.create_future()
        self._exited = loop.create_future()
        self._stdin_lost = False
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None

    @classmethod
    async def spawn(cls, argv: Sequence[str], env: Mapping[str, str], *, stdin: bool, limit: int,
                    on_stderr: Callable[[bytes], None] | None = None) -> GitProcess:
        """Start git. ``on_stderr`` is handed git's stderr as it arrives (SSH forwards it)."""
        loop = asyncio.get_running_loop()
        if popen.available(loop):  # uvloop: start git the cheap way (see gitd.git.popen)
            proc = cls(loop, limit, on_stderr)
            await popen.PopenTransport.start(loop, proc, argv, env, stdin=stdin, stdout_pipe_size=PIPE_SIZE)
            return proc
        _, proc = await loop.subprocess_exec(
            lambda: cls(loop, limit, on_stderr), *argv,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=dict(env), start_new_session=True,
        )
        proc._widen_stdout()
        return proc

    @property
    def pid(self) -> int:
        assert self.transport is not None
        return self.transport.get_pid()

    @property
    def stderr(self) -> bytes:
        return bytes(self._err)

    # -- protocol callbacks ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's process transport has the SubprocessTransport methods but not the class.
        self.transport = cast(asyncio.SubprocessTransport, transport)
        _RUNNING.add(self.transport.get_pid())

    def pipe_data_received(self, fd: int, data: bytes | bytearray) -> None:
        if fd == 1:
            self._out.append(bytes(data) if isinstance(data, bytearray) else data)
            self._out_size += len(data)
            if self._out_size > self._limit and not self._out_paused:
                self._pipe(1).pause_reading()  # type: ignore[attr-defined]
                self._out_paused = True
            self._wake_reader()
        elif fd == 2:
            if len(self._err) < STDERR_CAP:
                self._err += data[: STDERR_CAP - len(self._err)]
            if self._on_stderr is not None:
                self._on_stderr(bytes(data))

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 0:
            self._stdin_lost = True
            self._wake_writer()
        elif fd == 1:
            self._out_eof = True
            self._wake_reader()
        elif fd == 2 and not self._err_closed.done():
            self._err_closed.set_result(None)

    def process_exited(self) -> None:
        if self.transport is not None:
            _RUNNING.discard(self.transport.get_pid())
        if not self._exited.done():
            self._exited.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_writer()

    def _wake_reader(self) -> None:
        if self._out_waiter is not None and not self._out_waiter.done():
            self._out_waiter.set_result(None)

    def _wake_writer(self) -> None:
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def _pipe(self, fd: int) -> asyncio.BaseTransport | None:
        return self.transport.get_pipe_transport(fd) if self.transport is not None else None

    def _widen_stdout(self) -> None:
        """A 1 MiB stdout pipe: fewer, larger reads."""
        pipe = self._pipe(1)
        if pipe is None or not hasattr(fcntl, "F_SETPIPE_SZ"):
            return
        with contextlib.suppress(OSError, ValueError, AttributeError):
            fcntl.fcntl(pipe.get_extra_info("pipe").fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)

    # -- the consumer's side -----------------------------------------------------------------------
    async def read(self) -> list[bytes]:
        """The output git wrote since the last call, in pieces; [] once git closed its stdout."""
        while not self._out and not self._out_eof:
            self._out_waiter = self._loop.create_future()
            try:
                await self._out_waiter
            finally:
                self._out_waiter = None
        chunks = list(self._out)
        self._out.clear()
        self._out_size = 0
        if self._out_paused:
            self._out_paused = False
            pipe = self._pipe(1)
            if pipe is not None and not pipe.is_closing():
                pipe.resume_reading()  # type: ignore[attr-defined]
        return chunks

    async def write(self, data: bytes) -> bool:
        """Feed git's stdin; False once git no longer reads it."""
        pipe = self._pipe(0)
        if self._stdin_lost or pipe is None or pipe.is_closing():
            return False
        pipe.write(data)  # type: ignore[attr-defined]
        while self._write_paused and not self._stdin_lost:
            self._drain_waiter = self._loop.create_future()
            try:
                await self._drain_waiter
            finally:
                self._drain_waiter = None
        return not self._stdin_lost

    def close_stdin(self) -> None:
        pipe = self._pipe(0)
        if pipe is not None and not pipe.is_closing():
            pipe.close()

    async def stderr_closed(self) -> None:
        await asyncio.shield(self._err_closed)

    async def wait(self) -> int:
        await asyncio.shield(self._exited)
        assert self.transport is not None
        code = self.transport.get_returncode()
        return -1 if code is None else code

    async def terminate(self, *, graceful: bool) -> None:
        """Stop git: a graceful stop only closes its stdin (a receive-pack that sees its input
        end early leaves refs untouched and drops its quarantine) and waits a little; then,
        or at once, its whole process group is killed."""
        if self._exited.done():
            return
        self.close_stdin()
        if graceful:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._exited), 10)
                return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._exited), 5)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
