"""Sweeping what crashes leave behind (``gitd maintenance sweep``, and the daemon every
``[maintenance] interval``).

A process killed mid-write (the daemon, or a git child a supervisor killed with it) leaves:

* in a repository: receive-pack's quarantine (``objects/tmp_objdir-incoming-*``: the whole
  pack of the push, often hundreds of MB), an API commit's (``objects/tmp_objdir-gitd-*``),
  half-written packs (``objects/pack/tmp_pack_*``, ``tmp_idx_*``) and lock files
  (``refs/**.lock``, ``packed-refs.lock``, ``HEAD.lock``, ``config.lock``), which make every
  later push of that ref fail with "File exists";
* beside the repositories: a creation that never finished (``repos/xx/.<id>.git.*.tmp``) and
  a deletion that never finished (``tmp/deleted-*``);
* in LFS storage: ``.part`` files, chunked-upload part folders, S3 staging objects and
  unfinished multipart uploads (``ObjectStore.sweep_incomplete``).

Anything is removed only once nothing in it was written for ``grace`` seconds (the newest
modification time of all it holds): a push or an upload still running keeps writing, and
the grace must exceed the longest one (``[git] timeout`` for pushes). Lock files have a
grace of their own, ``lock_grace`` (minutes): git holds them for the instant it updates a
ref, and a stale one refuses every push of its ref. ``dry_run`` lists what a real run
would remove, and removes nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from gitd.lfs.storage.base import ObjectStore
from gitd.paths import DataDir

log = logging.getLogger("gitd.ops")

_OBJECT_TEMPS = re.compile(r"^tmp_objdir-")
_PACK_TEMPS = re.compile(r"^(tmp_pack_|tmp_idx_|tmp_rev_|tmp_mtimes_|\.tmp-)")
_REPO_LOCKS = ("packed-refs.lock", "HEAD.lock", "config.lock", "index.lock", "shallow.lock", "FETCH_HEAD.lock")
_UNFINISHED_REPO = re.compile(r"^\.\d+\.git\.[0-9a-f]+\.tmp$")


@dataclass(frozen=True)
class Leftover:
    path: Path
    kind: str
    size: int
    idle: float  # seconds since anything in it was written


@dataclass
class SweepReport:
    leftovers: list[Leftover] = field(default_factory=list)
    lfs_incomplete: int = 0
    dry_run: bool = False

    @property
    def bytes(self) -> int:
        return sum(item.size for item in self.leftovers)

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        return (f"{verb} {len(self.leftovers)} leftover(s) of interrupted work ({self.bytes} bytes) and "
                f"{self.lfs_incomplete} unfinished LFS upload(s)")


def _newest(path: Path) -> tuple[float, int]:
    """(newest modification time of ``path`` and everything below it, total bytes)."""
    st = path.lstat()
    newest, size = st.st_mtime, st.st_size
    if path.is_dir() and not path.is_symlink():
        for top, dirs, files in os.walk(path):
            for name in (*dirs, *files):
                with contextlib.suppress(FileNotFoundError):
                    entry = os.lstat(os.path.join(top, name))
                    newest = max(newest, entry.st_mtime)
                    size += entry.st_size if name in files else 0
    return newest, size


def _candidates(data: DataDir) -> list[tuple[Path, str]]:
    """Every leftover-shaped path, whatever its age."""
    found: list[tuple[Path, str]] = []
    repos = data.repos
    for shard in sorted(repos.iterdir()) if repos.is_dir() else []:
        if not shard.is_dir():
            continue
        for repo in sorted(shard.iterdir()):
            if _UNFINISHED_REPO.match(repo.name):
                found.append((repo, "unfinished repository creation"))
                continue
            if not repo.name.endswith(".git") or not repo.is_dir():
                continue
            found += _in_repository(repo)
    for entry in sorted(data.tmp.iterdir()) if data.tmp.is_dir() else []:
        if entry.name.startswith("deleted-"):
            found.append((entry, "unfinished repository deletion"))
    return found


def _in_repository(repo: Path) -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    objects = repo / "objects"
    with contextlib.suppress(FileNotFoundError):
        for entry in objects.iterdir():
            if _OBJECT_TEMPS.match(entry.name):
                found.append((entry, "push quarantine" if "incoming" in entry.name else "commit quarantine"))
    with contextlib.suppress(FileNotFoundError):
        for entry in (objects / "pack").iterdir():
            if _PACK_TEMPS.match(entry.name):
                found.append((entry, "unfinished pack"))
    for name in _REPO_LOCKS:
        if (repo / name).exists():
            found.append((repo / name, "stale lock"))
    for top, _dirs, files in os.walk(repo / "refs"):
        found += [(Path(top) / name, "stale lock") for name in files if name.endswith(".lock")]
    return found


def find_leftovers(data: DataDir, grace: float, *, lock_grace: float | None = None,
                   now: float | None = None) -> list[Leftover]:
    """Leftovers in which nothing was written for ``grace`` seconds (lock files: ``lock_grace``,
    by default the same). Blocking: walks every repository."""
    now = time.time() if now is None else now
    out = []
    for path, kind in _candidates(data):
        try:
            newest, size = _newest(path)
        except FileNotFoundError:
            continue  # gone meanwhile: the work it belonged to finished
        wait = lock_grace if kind == "stale lock" and lock_grace is not None else grace
        if now - newest >= wait:
            out.append(Leftover(path, kind, size, now - newest))
    return out


def remove(leftover: Leftover) -> None:
    path = leftover.path
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


class Sweeper:
    """The daemon's periodic sweep (``gitd.ops.scheduler``): returns a line for the log when
    it removed anything."""

    def __init__(self, data: DataDir, storage: ObjectStore | None, grace: float, *, lock_grace: float):
        self.data, self.storage, self.grace, self.lock_grace = data, storage, grace, lock_grace

    async def run(self) -> str | None:
        report = await sweep(self.data, self.storage, self.grace, lock_grace=self.lock_grace)
        return report.summary() if report.leftovers or report.lfs_incomplete else None


async def sweep(data: DataDir, storage: ObjectStore | None, grace: float, *, lock_grace: float | None = None,
                dry_run: bool = False, now: float | None = None) -> SweepReport:
    """Find (and unless ``dry_run``, remove) leftovers older than ``grace``; the LFS store's
    unfinished uploads too when ``storage`` is given. Blocking parts run on a thread."""
    import asyncio

    now = time.time() if now is None else now
    report = SweepReport(dry_run=dry_run)
    report.leftovers = await asyncio.to_thread(find_leftovers, data, grace, lock_grace=lock_grace, now=now)
    if not dry_run:
        for leftover in report.leftovers:
            await asyncio.to_thread(remove, leftover)
            log.info("removed %s %s (%d bytes, untouched for %.0fs)", leftover.kind, leftover.path, leftover.size,
                     leftover.idle)
    if storage is not None:
        report.lfs_incomplete = await storage.sweep_incomplete(now - grace, dry_run=dry_run)
    return report
