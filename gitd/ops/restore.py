"""``gitd restore SRC``: a new data directory from a backup ``gitd backup`` made.

The restore never writes into a data directory that already holds repositories: it makes a
new one, which the daemon is then started on. In order:

1. the database, the secrets (signed links and tokens stay valid), the SSH host key (clients'
   known_hosts stay valid) and the configuration are put in place, then ``gitd init`` brings
   the directory up to this version (migrations, hook programs);
2. each repository of the database is fetched from the backup into a new bare repository
   configured for this data directory (its hooks, wherever the directory now lives);
3. each LFS object is stored through the configured storage backend, which re-hashes it
   (a corrupt or truncated file in the backup is reported, not stored); objects the store
   already has (an S3 bucket that survived) are skipped.

Then ``gitd doctor`` checks the result (``Doctor``), as the command does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from gitd.errors import BadRequest, Conflict
from gitd.lfs.errors import ObjectMismatch
from gitd.lfs.storage.base import ObjectStore
from gitd.lfs.streams import CHUNK, is_oid
from gitd.ops import gitcopy
from gitd.ops.backup import FORMAT, MANIFEST, SECRET_FILES
from gitd.paths import DataDir
from gitd.repos import new_bare_repository

log = logging.getLogger("gitd.ops")


@dataclass
class RestoreReport:
    repos: int = 0
    refs: int = 0
    lfs_stored: int = 0
    lfs_present: int = 0
    lfs_bad: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        return (f"restored {self.repos} repositories ({self.refs} refs) and {self.lfs_stored + self.lfs_present} "
                f"LFS objects ({self.lfs_stored} stored, {self.lfs_present} already there) in {self.seconds:.1f}s")


def read_manifest(src: Path) -> dict:
    try:
        manifest = json.loads((src / MANIFEST).read_text())
    except FileNotFoundError:
        raise BadRequest(f"{src} holds no finished gitd backup (no {MANIFEST}); was the backup interrupted?") from None
    except (OSError, ValueError) as exc:
        raise BadRequest(f"cannot read {src / MANIFEST}: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise BadRequest(f"{src} is a backup of format {manifest.get('format')!r}; this gitd reads format {FORMAT}")
    return manifest


def prepare(src: Path, root: Path) -> None:
    """Step 1: the database, secrets and configuration, into a new data directory ``root``."""
    read_manifest(src)
    data = DataDir(root)
    if data.db_file.exists() and any(data.repos.glob("*/*.git")):
        raise Conflict(f"{root} already holds a gitd data directory with repositories; restore into a new "
                       "(empty) directory, then start the daemon on it")
    root.mkdir(parents=True, exist_ok=True)
    for name in SECRET_FILES:
        if (src / name).exists():
            (root / name).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copy2(src / name, root / name)
    for suffix in ("", "-wal", "-shm"):
        (root / f"gitd.db{suffix}").unlink(missing_ok=True)
    shutil.copyfile(src / "gitd.db", data.db_file)


class Restore:
    def __init__(self, src: Path, data: DataDir, storage: ObjectStore, *, jobs: int = 4,
                 say: Callable[[str], None] = lambda line: None):
        self.src = src
        self.data = data
        self.storage = storage
        self.jobs = max(1, jobs)
        self.say = say

    async def run(self, report: RestoreReport | None = None) -> RestoreReport:
        """Steps 2 and 3 (after ``prepare`` and ``gitd init`` on the new directory)."""
        started = time.monotonic()
        report = report or RestoreReport()
        conn = sqlite3.connect(str(self.data.db_file))
        try:
            rows = dict(conn.execute("SELECT id, default_branch FROM repos").fetchall())
        finally:
            conn.close()
        gate = asyncio.Semaphore(self.jobs)

        async def one(repo_id: int, branch: str) -> None:
            async with gate:
                count = await asyncio.to_thread(self._repository, repo_id, branch)
                report.refs += count

        await asyncio.gather(*(one(repo_id, branch) for repo_id, branch in sorted(rows.items())))
        report.repos = len(rows)
        self.say(f"repositories: {report.repos} restored ({report.refs} refs)")
        objects = self.src / "lfs" / "objects"
        for path in sorted(objects.glob("*/*/*")) if objects.is_dir() else []:
            if is_oid(path.name):
                await self._object(path, report)
        report.seconds = time.monotonic() - started
        return report

    def _repository(self, repo_id: int, default_branch: str) -> int:
        backup = DataDir(self.src).repo_path(repo_id)
        target = self.data.repo_path(repo_id)
        if target.exists():
            shutil.rmtree(target)
        staging = new_bare_repository(target, default_branch, self.data.hooks)
        try:
            count = gitcopy.copy(backup, staging)[0] if backup.is_dir() else 0
            staging.rename(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return count

    async def _object(self, path: Path, report: RestoreReport) -> None:
        oid, size = path.name, path.stat().st_size
        if await self.storage.stat(oid) == size:
            report.lfs_present += 1
            return
        try:
            await self.storage.put(oid, size, _chunks(path))
        except ObjectMismatch as exc:
            report.lfs_bad.append(oid)
            log.error("LFS object %s in the backup is damaged (%s); not restored", oid, exc.message)
            return
        report.lfs_stored += 1


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    with open(path, "rb") as f:
        while block := await asyncio.to_thread(f.read, 16 * CHUNK):
            yield block
