"""Run git's server programs (upload-pack, receive-pack, upload-archive) as subprocesses.

One runner serves every transport. It adds hardened ``-c`` settings, passes an
allow-listed environment (never the caller's), limits how many git processes run at
once, and streams both ways: stdin is pumped from the client while stdout is copied
to it, so no pack is ever held in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("gitd.git")

SERVICES = ("upload-pack", "receive-pack", "upload-archive")
CHUNK = 256 * 1024
PIPE_SIZE = 1024 * 1024

# GIT_PROTOCOL is a colon-separated list of key=value pairs; anything else is dropped.
_PROTOCOL_RE = re.compile(r"^[0-9A-Za-z]+=[0-9A-Za-z]+(?::[0-9A-Za-z]+=[0-9A-Za-z]+)*$")

# The only variables a git child inherits from the daemon's own environment.
_INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "TMPDIR", "TZ")


def sanitize_protocol(value: str | None) -> str | None:
    """The client's Git-Protocol / GIT_PROTOCOL value if it is well-formed, else None."""
    if value and len(value) <= 256 and _PROTOCOL_RE.match(value):
        return value
    return None


@dataclass
class GitResult:
    returncode: int
    stderr: bytes
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    input_done: bool = False


@dataclass
class GitRunner:
    hooks_dir: Path
    max_processes: int = 64
    timeout: float = 0.0
    fsck_objects: bool = True
    git: str = "git"
    observe: Callable[[str, GitResult], None] | None = None
    _slots: asyncio.Semaphore | None = field(default=None, init=False, repr=False)
    _empty_hooks: Path | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._empty_hooks = self.hooks_dir.parent / "run" / "no-hooks"

    @property
    def slots(self) -> asyncio.Semaphore:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_processes)
        return self._slots

    def hardened_config(self, *, hooks: bool = True) -> list[str]:
        """The ``-c`` settings every server-side git call gets."""
        hooks_path = self.hooks_dir if hooks else self._empty_hooks
        settings = [
            f"core.hooksPath={hooks_path}",
            "uploadpack.allowFilter=true",
            "uploadpack.allowReachableSHA1InWant=true",
            "uploadarchive.allowUnreachable=false",
            "receive.advertisePushOptions=true",
            "receive.denyNonFastForwards=false",
            f"receive.fsckObjects={'true' if self.fsck_objects else 'false'}",
            # A server never runs LFS filters or other content filters.
            "filter.lfs.process=",
            "filter.lfs.smudge=",
            "filter.lfs.clean=",
            "filter.lfs.required=false",
            "core.askPass=",
            "credential.helper=",
        ]
        out: list[str] = []
        for setting in settings:
            out += ["-c", setting]
        return out

    def environment(self, *, protocol: str | None = None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """An allow-listed environment: nothing from the client gets through unchecked."""
        env = {k: os.environ[k] for k in _INHERITED_ENV if k in os.environ}
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        env.update(
            {
                "HOME": str(self.hooks_dir.parent),
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_CONFIG_GLOBAL": os.devnull,
                "GIT_TERMINAL_PROMPT": "0",
            }
        )
        proto = sanitize_protocol(protocol)
        if proto:
            env["GIT_PROTOCOL"] = proto
        if extra:
            env.update(extra)
        return env

    def argv(self, service: str, repo_path: Path, args: list[str], *, hooks: bool = True) -> list[str]:
        if service not in SERVICES:
            raise ValueError(f"not a git service: {service!r}")
        return [self.git, *self.hardened_config(hooks=hooks), service, *args, str(repo_path)]

    async def run(
        self,
        service: str,
        repo_path: Path,
        args: list[str],
        *,
        stdin: AsyncIterator[bytes] | None,
        sink: Callable[[bytes], Awaitable[None]],
        protocol: str | None = None,
        env: Mapping[str, str] | None = None,
        hooks: bool = True,
        on_start: Callable[[], Awaitable[None]] | None = None,
        err_sink: Callable[[bytes], Awaitable[None]] | None = None,
    ) -> GitResult:
        """Run ``git <service> [args] <repo>`` streaming ``stdin`` in and stdout to ``sink``.

        ``on_start`` runs once the process exists, before any output is copied (HTTP uses
        it to send response headers). ``err_sink``, if given, also receives git's stderr as
        it comes (SSH forwards it to the client). Returns git's exit status and captured
        stderr. Once git has exited, input still pending is no longer waited for: over a
        full-duplex transport (SSH) the client may keep its side open until it sees the
        exit status.
        """
        if self._empty_hooks is not None and not self._empty_hooks.exists():
            self._empty_hooks.mkdir(parents=True, exist_ok=True)
        result = GitResult(returncode=-1, stderr=b"")
        started = time.monotonic()
        async with self.slots:
            proc = await asyncio.create_subprocess_exec(
                *self.argv(service, repo_path, args, hooks=hooks),
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self.environment(protocol=protocol, extra=env),
                limit=4 * CHUNK,
                start_new_session=True,
            )
            _widen_stdout(proc)
            pump_in: asyncio.Task[None] | None = None
            outputs: asyncio.Future | None = None
            try:
                if on_start is not None:
                    await on_start()
                if stdin is not None:
                    pump_in = asyncio.ensure_future(self._pump_in(proc, stdin, result))
                outputs = asyncio.gather(self._copy_out(proc, sink, result),
                                         self._collect_err(proc, result, err_sink))
                finished = self._finish(proc, outputs, pump_in)
                if self.timeout > 0:
                    result.returncode = await asyncio.wait_for(finished, self.timeout)
                else:
                    result.returncode = await finished
            except BaseException:
                for pending in (pump_in, outputs):
                    if pending is not None and not pending.done():
                        pending.cancel()
                # Client went away, timeout, or shutdown: stop git. A receive-pack whose
                # input ends early sees EOF, leaves refs untouched and drops its quarantine;
                # anything else (a read-only service, or a push past its input) is killed.
                await _terminate(proc, graceful=service == "receive-pack" and stdin is not None
                                 and not result.input_done)
                raise
        result.seconds = time.monotonic() - started
        if result.returncode != 0:
            log.info("git %s %s exited %s: %s", service, repo_path.name, result.returncode,
                     result.stderr.decode("utf-8", "replace").strip()[-500:])
        if self.observe is not None:
            self.observe(service, result)
        return result

    @staticmethod
    async def _finish(proc: asyncio.subprocess.Process, outputs: asyncio.Future,
                      pump_in: asyncio.Task[None] | None) -> int:
        """Wait until git closed its output and exited, failing early if the input fails
        (the client went away); then stop waiting for input nobody will read."""
        if pump_in is not None:
            done, _ = await asyncio.wait({outputs, pump_in}, return_when=asyncio.FIRST_COMPLETED)
            if pump_in in done and pump_in.exception() is not None:
                outputs.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await outputs
                raise pump_in.exception()  # type: ignore[misc]
        await outputs
        returncode = await proc.wait()
        if pump_in is not None:
            if not pump_in.done():
                pump_in.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump_in
        return returncode

    @staticmethod
    async def _pump_in(proc: asyncio.subprocess.Process, source: AsyncIterator[bytes], result: GitResult) -> None:
        assert proc.stdin is not None
        try:
            async for chunk in source:
                if not chunk:
                    continue
                result.bytes_in += len(chunk)
                proc.stdin.write(chunk)
                await proc.stdin.drain()
            result.input_done = True
        except (BrokenPipeError, ConnectionResetError):
            result.input_done = True
            # git stopped reading (it rejected the input); its exit status tells why.
            return
        finally:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError, RuntimeError):
                proc.stdin.close()

    @staticmethod
    async def _copy_out(
        proc: asyncio.subprocess.Process, sink: Callable[[bytes], Awaitable[None]], result: GitResult
    ) -> None:
        assert proc.stdout is not None
        while True:
            chunk = await proc.stdout.read(CHUNK)
            if not chunk:
                return
            result.bytes_out += len(chunk)
            await sink(chunk)

    @staticmethod
    async def _collect_err(proc: asyncio.subprocess.Process, result: GitResult,
                           err_sink: Callable[[bytes], Awaitable[None]] | None = None) -> None:
        assert proc.stderr is not None
        buf = bytearray()
        try:
            while True:
                chunk = await proc.stderr.read(CHUNK)
                if not chunk:
                    break
                if len(buf) < 64 * 1024:
                    buf += chunk
                if err_sink is not None:
                    await err_sink(chunk)
        finally:
            result.stderr = bytes(buf)

    async def capture(
        self, service: str, repo_path: Path, args: list[str], *, protocol: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> tuple[GitResult, bytes]:
        """Run a service with no input and return its (small) output, e.g. a ref advertisement."""
        out = bytearray()

        async def sink(chunk: bytes) -> None:
            out.extend(chunk)

        result = await self.run(service, repo_path, args, stdin=None, sink=sink, protocol=protocol, env=env)
        return result, bytes(out)


def _widen_stdout(proc: asyncio.subprocess.Process) -> None:
    """Let git's stdout pipe hold 1 MiB instead of 64 KiB, so a pack is read in a quarter
    of the reads and event-loop turns (Linux only; harmless where it is refused)."""
    transport = getattr(proc, "_transport", None)
    pipe = transport.get_pipe_transport(1) if transport is not None else None
    fileobj = pipe.get_extra_info("pipe") if pipe is not None else None
    if fileobj is None or not hasattr(fcntl, "F_SETPIPE_SZ"):
        return
    # ValueError: git already exited and the pipe is closed.
    with contextlib.suppress(OSError, ValueError):
        fcntl.fcntl(fileobj.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)


async def _terminate(proc: asyncio.subprocess.Process, *, graceful: bool) -> None:
    if proc.returncode is not None:
        return
    if proc.stdin is not None:
        with contextlib.suppress(Exception):
            proc.stdin.close()
    if graceful:
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), 10)
            return
        except (TimeoutError, asyncio.CancelledError):
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, 9)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(asyncio.shield(proc.wait()), 5)
