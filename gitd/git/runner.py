"""Run git's server programs (upload-pack, receive-pack, upload-archive) as subprocesses.

One runner serves every transport. It adds hardened ``-c`` settings, passes an
allow-listed environment (never the caller's), limits how many git processes run at
once, and streams both ways: stdin is pumped from the client while stdout is copied
to it, so no pack is ever held in memory.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitd.git.env import git_env
from gitd.git.fsck import FsckSettings
from gitd.git.process import GitProcess
from gitd.git.slots import UNKNOWN_CALLER, Caller, GitSlots

log = logging.getLogger("gitd.git")

GIT_SERVICES = ("upload-pack", "receive-pack", "upload-archive")
CHUNK = 256 * 1024
# Output of git the daemon holds before it stops reading more (the client is slower).
PIPE_LIMIT = 4 * CHUNK

# GIT_PROTOCOL is a colon-separated list of key=value pairs; anything else is dropped.
_PROTOCOL_RE = re.compile(r"^[0-9A-Za-z]+=[0-9A-Za-z]+(?::[0-9A-Za-z]+=[0-9A-Za-z]+)*$")


def sanitize_protocol(value: str | None) -> str | None:
    """The client's Git-Protocol / GIT_PROTOCOL value if it is well-formed, else None."""
    if value and len(value) <= 256 and _PROTOCOL_RE.fullmatch(value):
        return value
    return None


def printable(data: bytes) -> str:
    """git's stderr as one log-safe line: control characters and newlines are escaped."""
    text = data.decode("utf-8", "replace").strip()
    return "".join(c if c.isprintable() else ("; " if c == "\n" else f"\\x{ord(c):02x}") for c in text)


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
    fsck: FsckSettings = field(default_factory=FsckSettings)
    # Slots one client address / all anonymous callers may hold (0: no limit), and how long
    # a caller waits for one (0: as long as it takes); see gitd.git.slots.
    max_per_client: int = 0
    max_anonymous: int = 0
    queue_timeout: float = 0.0
    git: str = "git"
    observe: Callable[[str, GitResult], None] | None = None
    _slots: GitSlots | None = field(default=None, init=False, repr=False)
    _empty_hooks: Path | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._empty_hooks = self.hooks_dir.parent / "run" / "no-hooks"

    @property
    def slots(self) -> GitSlots:
        if self._slots is None:
            self._slots = GitSlots(self.max_processes, per_client=self.max_per_client,
                                   anonymous=self.max_anonymous, wait=self.queue_timeout)
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
            # Force-pushes and deleting the default branch are the policy plugin's call
            # (plugins.policy.protect_default_branch), not git's.
            "receive.denyNonFastForwards=false",
            "receive.denyDeleteCurrent=ignore",
            # Object checks, with the historical oddities of [git] fsck_ignore let through.
            *self.fsck.git_config(("receive",)),
            # Keep every pushed pack as it came instead of exploding small ones into loose
            # objects: model weights do not compress, and recompressing them loose (then again
            # for every clone) costs minutes per GB. git gc --auto still folds many packs into one.
            "receive.unpackLimit=1",
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
        env = git_env(home=self.hooks_dir.parent)
        proto = sanitize_protocol(protocol)
        if proto:
            env["GIT_PROTOCOL"] = proto
        if extra:
            env.update(extra)
        return env

    def argv(self, service: str, repo_path: Path, args: list[str], *, hooks: bool = True) -> list[str]:
        if service not in GIT_SERVICES:
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
        err_sink: Callable[[bytes], None] | None = None,
        caller: Caller = UNKNOWN_CALLER,
    ) -> GitResult:
        """Run ``git <service> [args] <repo>`` streaming ``stdin`` in and stdout to ``sink``.

        ``on_start`` runs once the process exists, before any output is copied (HTTP uses
        it to send response headers). ``err_sink``, if given, also gets git's stderr as it
        comes (SSH passes it on to the client). ``caller`` is whom the process slot is
        counted against (``gitd.git.slots``). Returns git's exit status and captured stderr.
        """
        if self._empty_hooks is not None and not self._empty_hooks.exists():
            self._empty_hooks.mkdir(parents=True, exist_ok=True)
        result = GitResult(returncode=-1, stderr=b"")
        started = time.monotonic()
        async with self.slots.hold(caller):
            proc = await GitProcess.spawn(self.argv(service, repo_path, args, hooks=hooks),
                                          self.environment(protocol=protocol, extra=env),
                                          stdin=stdin is not None, limit=PIPE_LIMIT, on_stderr=err_sink)
            try:
                if on_start is not None:
                    await on_start()
                outputs = [self._copy_out(proc, sink, result), proc.stderr_closed()]
                feeder = self._pump_in(proc, stdin, result) if stdin is not None else None
                async with asyncio.timeout(self.timeout if self.timeout > 0 else None):
                    await _pump(outputs, feeder)
                    result.returncode = await proc.wait()
            except BaseException:
                # Client went away, bad input, timeout, or shutdown: stop git. A receive-pack
                # whose input ends early sees EOF, leaves refs untouched and drops its
                # quarantine; anything else (a read-only service, a push past its input)
                # is killed at once.
                await proc.terminate(graceful=service == "receive-pack" and stdin is not None
                                     and not result.input_done)
                raise
            finally:
                result.stderr = proc.stderr
                proc.close()
        result.seconds = time.monotonic() - started
        if result.returncode != 0:
            log.info("git %s %s exited %s: %s", service, repo_path.name, result.returncode,
                     printable(result.stderr)[-500:])
        if self.observe is not None:
            self.observe(service, result)
        return result

    @staticmethod
    async def _pump_in(proc: GitProcess, source: AsyncIterator[bytes], result: GitResult) -> None:
        try:
            async for chunk in source:
                if not chunk:
                    continue
                result.bytes_in += len(chunk)
                if not await proc.write(chunk):
                    break  # git stopped reading (it rejected the input); its exit status tells why
            result.input_done = True
        finally:
            proc.close_stdin()

    @staticmethod
    async def _copy_out(proc: GitProcess, sink: Callable[[bytes], Awaitable[None]], result: GitResult) -> None:
        while chunks := await proc.read():
            for chunk in chunks:
                result.bytes_out += len(chunk)
                await sink(chunk)

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


def install_child_watcher(loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    """Watch git children with pidfds, as Python 3.12+ does by default.

    Python 3.11 starts one thread per child process to wait for it; on Linux 5.3+ a
    pidfd in the event loop does the same job without a thread per request. The watcher
    is process-wide and bound to ``loop``: call the returned function when that loop stops
    serving, so the process's other loops (an embedding program's, a test's) get the
    previous watcher back instead of one tied to a closed loop.
    """
    if sys.version_info >= (3, 12) or not hasattr(asyncio, "PidfdChildWatcher") or not hasattr(os, "pidfd_open"):
        return lambda: None
    if not isinstance(loop, asyncio.BaseEventLoop):
        return lambda: None  # uvloop watches its children itself
    if threading.current_thread() is not threading.main_thread():
        # The stdlib policy re-attaches its watcher to whatever loop the main thread sets
        # (asyncio.run there ends by detaching it), so a loop on another thread (a test's or an
        # embedding program's daemon) keeps the default thread-per-child watcher.
        return lambda: None
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return lambda: None
    policy = asyncio.get_event_loop_policy()
    previous = getattr(policy, "_watcher", None)  # the stdlib policy's; None until first asked for
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(loop)
    policy.set_child_watcher(watcher)

    def restore() -> None:
        if getattr(policy, "_watcher", None) is watcher:
            policy.set_child_watcher(previous if previous is not None else asyncio.ThreadedChildWatcher())
        watcher.close()

    return restore


async def _pump(outputs: list[Coroutine[Any, Any, None]], feeder: Coroutine[Any, Any, None] | None) -> None:
    """Copy git's output while feeding its input, until git has closed its output.

    The first failure cancels the other copies and is raised. Once git has closed its
    output it reads no more, so input still arriving then is not waited for.
    """
    out_tasks = [asyncio.ensure_future(c) for c in outputs]
    tasks = [*out_tasks, *([asyncio.ensure_future(feeder)] if feeder is not None else [])]
    try:
        while not all(t.done() for t in out_tasks):
            await asyncio.wait([t for t in tasks if not t.done()], return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
