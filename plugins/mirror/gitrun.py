"""Running one git transfer (fetch, push, ls-remote) with a watchdog and its progress.

git prints progress to stderr while data moves (``--progress``), and the remote's own
progress comes through the same channel. A transfer whose stderr stays silent for
``stall`` seconds has stalled (a remote that stops mid-pack): git and everything it
started (ssh, the remote helper) are killed, as when the whole command takes longer
than ``timeout``. The process runs in a session of its own, so killing its group reaches
every child. Its pid is written to ``pid_file`` while it runs, so a daemon that restarts
after a crash can stop a transfer its previous run left behind (``reap``).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gitd import GitCommand

from .remote import redact

_PROGRESS = re.compile(
    rb"(Receiving|Writing|Unpacking) objects:\s+\d+% \((\d+)/(\d+)\)(?:,\s+([\d.]+) (bytes|KiB|MiB|GiB))?")
_UNITS = {b"bytes": 1, b"KiB": 1 << 10, b"MiB": 1 << 20, b"GiB": 1 << 30}
STDERR_KEEP = 64 * 1024


class TransferFailed(Exception):
    """git failed; the message is fit for the mirror's status (no credentials)."""

    def __init__(self, message: str, stdout: bytes = b""):
        super().__init__(message)
        self.stdout = stdout


@dataclass
class Transfer:
    objects: int = 0
    bytes: int = 0
    stdout: bytes = b""
    stderr: bytes = field(default=b"", repr=False)


def parse_progress(line: bytes, into: Transfer) -> bool:
    match = _PROGRESS.search(line)
    if match is None:
        return False
    into.objects = max(into.objects, int(match.group(2)))
    if match.group(4):
        into.bytes = max(into.bytes, int(float(match.group(4)) * _UNITS[match.group(5)]))
    return True


def reap(pid_file: Path) -> None:
    """Stop the transfer a previous daemon left running (its pid file names its group)."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes() if Path(f"/proc/{pid}").exists() else b""
        if b"git" in cmdline:
            os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(FileNotFoundError):
        pid_file.unlink()


def run(cmd: GitCommand, *, timeout: float, stall: float, what: str, pid_file: Path | None = None,
        on_progress: Callable[[Transfer], None] | None = None, input: bytes | None = None) -> Transfer:
    """Run ``cmd``; returns what it transferred. TransferFailed (with git's last complaint)
    when it fails, stalls or runs out of time."""
    transfer = Transfer()
    last = [time.monotonic()]
    errors = bytearray()

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as stdin:
        if input is not None:
            stdin.write(input)
            stdin.seek(0)
        proc = subprocess.Popen(cmd.argv, env=cmd.env, stdin=stdin if input is not None else subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.PIPE, start_new_session=True)
        if pid_file is not None:
            pid_file.write_text(f"{proc.pid}\n")

        def read_stderr() -> None:
            assert proc.stderr is not None
            pending = b""
            while chunk := proc.stderr.read1(65536):
                last[0] = time.monotonic()
                pending += chunk
                *lines, pending = re.split(rb"[\r\n]", pending)
                for line in lines:
                    if parse_progress(line, transfer) and on_progress is not None:
                        with contextlib.suppress(Exception):
                            on_progress(transfer)
                errors.extend(chunk)
                if len(errors) > 2 * STDERR_KEEP:
                    del errors[:-STDERR_KEEP]
            if pending:
                parse_progress(pending, transfer)

        reader = threading.Thread(target=read_stderr, name="gitd-mirror-stderr", daemon=True)
        reader.start()
        started = time.monotonic()
        failure: str | None = None
        try:
            while True:
                try:
                    proc.wait(timeout=0.25)
                    break
                except subprocess.TimeoutExpired:
                    pass
                now = time.monotonic()
                if stall > 0 and now - last[0] > stall:
                    failure = f"{what}: the remote sent nothing for {stall:.0f}s (stalled); gave up"
                elif timeout > 0 and now - started > timeout:
                    failure = f"{what}: took longer than {timeout:.0f}s; gave up"
                if failure is not None:
                    _kill(proc)
                    break
        except BaseException:
            _kill(proc)
            raise
        finally:
            reader.join(timeout=10)
            if pid_file is not None:
                with contextlib.suppress(FileNotFoundError):
                    pid_file.unlink()
        transfer.stderr = bytes(errors[-STDERR_KEEP:])
        out.seek(0)
        transfer.stdout = out.read()
    if failure is not None:
        raise TransferFailed(failure, transfer.stdout)
    if proc.returncode != 0:
        raise TransferFailed(f"{what} failed: {complaint(transfer.stderr)}", transfer.stdout)
    return transfer


def _kill(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.wait(timeout=10)


def complaint(stderr: bytes) -> str:
    """git's most telling line (its last ``fatal:``/``error:``), cleaned for a status."""
    stderr = re.sub(rb"\x1b\[[0-9;]*[A-Za-z]", b"", stderr)  # the remote's "clear line" escapes
    lines = [ln.strip() for ln in re.split(rb"[\r\n]", stderr) if ln.strip()]
    text = [ln.decode("utf-8", "replace") for ln in lines if not _PROGRESS.search(ln)]
    errors = ("fatal:", "error:", "remote: fatal", "remote: error", "ERROR")
    wanted = [ln for ln in text if ln.startswith(errors)]
    if wanted:
        # What ssh (or the remote) said just before git gave up: "Host key verification failed."
        before = text[:text.index(wanted[0])]
        chatter = ("remote: ", "warning:", "@", "hint:", "Cloning into", "From ", "To ", "Fetching")
        said = [ln for ln in before if not ln.startswith(chatter) and ln[:1].isalpha()
                and "Please make sure" not in ln and ln != "and the repository exists."]
        chosen = "; ".join(dict.fromkeys([*said[-1:], *wanted]))
    else:
        chosen = (text or ["git gave no reason"])[-1]
    chosen = "".join(c if c.isprintable() else " " for c in chosen)
    return redact(chosen)[:500]
