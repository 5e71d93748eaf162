"""A child process for loops whose own ``subprocess_exec`` is slow to start one.

uvloop starts children with libuv, which forks the whole daemon: about 3 ms per git
process here, against under 1 ms for the standard library's ``subprocess.Popen``
(vfork and exec). Every git request starts one, so on uvloop ``PopenTransport`` starts
the child with ``Popen`` and connects its pipes to the loop itself; the child's exit
is seen through a pidfd (Linux 5.3+), so no thread or SIGCHLD handler waits for it.

It offers what a ``asyncio.SubprocessProtocol`` expects of its transport: the protocol
gets ``pipe_data_received`` / ``pipe_connection_lost`` per descriptor, ``pause_writing``
/ ``resume_writing`` for stdin, and ``process_exited``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import os
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any, BinaryIO


def available(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether to start children through ``PopenTransport`` on ``loop``: on uvloop (the
    stdlib loop's ``subprocess_exec`` already uses Popen, and the descriptor handling
    below is uvloop's), and only where pidfds exist."""
    return type(loop).__module__.startswith("uvloop") and _pidfds()


@functools.cache
def _pidfds() -> bool:
    if not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    return True


class _ReadSide(asyncio.Protocol):
    def __init__(self, protocol: asyncio.SubprocessProtocol, fd: int):
        self.protocol, self.fd = protocol, fd

    def data_received(self, data: bytes) -> None:
        self.protocol.pipe_data_received(self.fd, data)

    def eof_received(self) -> bool:
        return False  # let the transport close: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.protocol.pipe_connection_lost(self.fd, exc)


class _WriteSide(asyncio.BaseProtocol):
    def __init__(self, protocol: asyncio.SubprocessProtocol):
        self.protocol = protocol

    def pause_writing(self) -> None:
        self.protocol.pause_writing()

    def resume_writing(self) -> None:
        self.protocol.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.protocol.pipe_connection_lost(0, exc)


def _loop_owned(fd: int, mode: str) -> BinaryIO:
    """A file object for a descriptor the loop's transport closes (through libuv) alone."""
    return open(fd, mode, buffering=0, closefd=False)


class PopenTransport(asyncio.SubprocessTransport):
    def __init__(self, loop: asyncio.AbstractEventLoop, protocol: asyncio.SubprocessProtocol,
                 popen: subprocess.Popen, pidfd: int):
        super().__init__()
        self._loop = loop
        self._protocol = protocol
        self._popen = popen
        self._pidfd: int | None = pidfd
        self._pipes: dict[int, Any] = {}
        self._returncode: int | None = None
        self._closed = False

    @classmethod
    async def start(cls, loop: asyncio.AbstractEventLoop, protocol: asyncio.SubprocessProtocol,
                    argv: Sequence[str], env: Mapping[str, str], *, stdin: bool,
                    stdout_pipe_size: int = 0) -> PopenTransport:
        # The pipes are made here, not by Popen: each parent end goes to the loop in a file
        # object that does not close it, because uvloop's pipe transports close the
        # descriptor through libuv as well as through the file object, and between the two
        # closes another thread may have been handed the same number (uvloop issue #763).
        stdin_r, stdin_w = os.pipe() if stdin else (-1, -1)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        ours = [fd for fd in (stdin_w, out_r, err_r) if fd >= 0]
        try:
            if stdout_pipe_size and hasattr(fcntl, "F_SETPIPE_SZ"):
                with contextlib.suppress(OSError):
                    fcntl.fcntl(out_r, fcntl.F_SETPIPE_SZ, stdout_pipe_size)
            popen = subprocess.Popen(  # argv is built by GitRunner, never a shell
                list(argv), stdin=stdin_r if stdin else subprocess.DEVNULL, stdout=out_w, stderr=err_w,
                env=dict(env), start_new_session=True, close_fds=True)
        except BaseException:
            for fd in ours:
                os.close(fd)
            raise
        finally:
            for fd in (stdin_r, out_w, err_w):
                if fd >= 0:
                    os.close(fd)
        try:
            pidfd = os.pidfd_open(popen.pid)
        except OSError:
            for fd in ours:
                os.close(fd)
            popen.kill()
            popen.wait()
            raise
        transport = cls(loop, protocol, popen, pidfd)
        try:
            if stdin:
                transport._pipes[0], _ = await loop.connect_write_pipe(
                    lambda: _WriteSide(protocol), _loop_owned(stdin_w, "wb"))
                ours.remove(stdin_w)
            transport._pipes[1], _ = await loop.connect_read_pipe(lambda: _ReadSide(protocol, 1),
                                                                  _loop_owned(out_r, "rb"))
            ours.remove(out_r)
            transport._pipes[2], _ = await loop.connect_read_pipe(lambda: _ReadSide(protocol, 2),
                                                                  _loop_owned(err_r, "rb"))
            ours.remove(err_r)
        except BaseException:
            for fd in ours:
                os.close(fd)
            transport.close()
            raise
        loop.add_reader(pidfd, transport._child_exited)
        protocol.connection_made(transport)
        return transport

    def _child_exited(self) -> None:
        code = self._popen.poll()  # waitpid(WNOHANG): the pidfd said it has exited
        if code is None:
            return
        self._returncode = code
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        self._protocol.process_exited()

    # -- asyncio.SubprocessTransport ------------------------------------------------------------
    def get_pid(self) -> int:
        return self._popen.pid

    def get_returncode(self) -> int | None:
        return self._returncode

    def get_pipe_transport(self, fd: int) -> Any:
        return self._pipes.get(fd)

    def send_signal(self, signal: int) -> None:
        self._popen.send_signal(signal)

    def terminate(self) -> None:
        self._popen.terminate()

    def kill(self) -> None:
        self._popen.kill()

    def is_closing(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the pipes and, as asyncio's transports do, kill a child still running; it
        is reaped when its pidfd reports the exit."""
        if self._closed:
            return
        self._closed = True
        for pipe in self._pipes.values():
            pipe.close()
        if self._returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._popen.kill()
