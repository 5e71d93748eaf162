"""``gitd backup DEST``: an online, consistent backup of a data directory, incremental when
DEST already holds one.

A copy of a running data directory (``cp -a``) is not a backup: the database may be caught
mid-transaction and without its WAL, a repository row without its directory, and refs
without the objects they name. So the backup is taken in an order where every part is
whole and each later part is at least as new as what the earlier ones refer to:

1. **repositories**, each into a bare copy (``gitcopy.copy``): refs first, then the packs
   and loose objects it lacks, checked for connectivity (``git fetch`` where a concurrent
   gc got in the way);
2. **LFS objects** the store holds, copied by content address (those already in DEST are
   skipped: on S3 that is a listing, and only new objects are downloaded);
3. **the database**, last, through SQLite's online backup API (one consistent snapshot,
   while the daemon writes), with the secrets and the configuration;
4. **reconciling** DEST with that snapshot: a repository created after step 1 is kept as
   the empty repository it was when created, LFS objects recorded after step 2 are copied
   now, and what the snapshot no longer has (deleted repositories, objects gc removed) is
   dropped from DEST.

Every pushed ref was fetched before the snapshot was taken, and an LFS object is recorded
before any push may refer to it, so each ref in the backup finds its objects and its LFS
objects. ``manifest.json`` is written last: a DEST without one is not a (finished) backup.
DEST has the data directory's own layout; ``gitd restore`` makes a data directory of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gitd import __version__
from gitd.lfs.storage.base import LocalFiles, ObjectStore
from gitd.lfs.streams import is_oid
from gitd.ops import gitcopy
from gitd.paths import DataDir
from gitd.store import utcnow

log = logging.getLogger("gitd.ops")

FORMAT = 1
MANIFEST = "manifest.json"
# Files of the data directory a restore needs besides the database.
SECRET_FILES = ("gitd.toml", "secrets/internal.key", "ssh/ssh_host_ed25519_key", "ssh/ssh_host_ed25519_key.pub")


@dataclass
class BackupReport:
    repos: int = 0
    refs: int = 0
    created_empty: list[int] = field(default_factory=list)
    pruned_repos: int = 0
    failed: dict[int, str] = field(default_factory=dict)
    lfs_objects: int = 0
    lfs_copied: int = 0
    lfs_bytes_copied: int = 0
    lfs_missing: list[str] = field(default_factory=list)
    lfs_pruned: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        return (f"backed up {self.repos} repositories ({self.refs} refs) and {self.lfs_objects} LFS objects "
                f"({self.lfs_copied} copied now, {self.lfs_bytes_copied} bytes) in {self.seconds:.1f}s")


def lfs_path(root: Path, oid: str) -> Path:
    return root / "lfs" / "objects" / oid[:2] / oid[2:4] / oid


def snapshot_database(src: Path, dst: Path) -> None:
    """A consistent copy of the live database (SQLite's backup API, in one step), as a
    self-contained file (rollback journal mode)."""
    tmp = dst.with_name(dst.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    source = sqlite3.connect(str(src), timeout=60)
    try:
        target = sqlite3.connect(str(tmp))
        try:
            source.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
    finally:
        source.close()
    os.replace(tmp, dst)


def _repo_rows(db: Path) -> dict[int, str]:
    conn = sqlite3.connect(str(db), timeout=60)
    try:
        return dict(conn.execute("SELECT id, default_branch FROM repos").fetchall())
    finally:
        conn.close()


class Backup:
    def __init__(self, data: DataDir, storage: ObjectStore, *, jobs: int = 4,
                 say: Callable[[str], None] = lambda line: None):
        self.data = data
        self.storage = storage
        self.jobs = max(1, jobs)
        self.say = say

    async def run(self, dest: Path) -> BackupReport:
        started = time.monotonic()
        report = BackupReport()
        dest.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            (dest / MANIFEST).unlink()  # from now on DEST is no finished backup until the end
        live = await asyncio.to_thread(_repo_rows, self.data.db_file)
        await self._repositories(dest, live, report)
        self.say(f"repositories: {len(live)} mirrored ({report.refs} refs)")
        seen = await self._lfs(dest, report)
        self.say(f"LFS: {report.lfs_copied} object(s) copied ({report.lfs_bytes_copied} bytes)")
        await asyncio.to_thread(self._database, dest)
        await self._reconcile(dest, seen, report)
        report.seconds = time.monotonic() - started
        self._manifest(dest, report)
        return report

    # -- 1. repositories ---------------------------------------------------------------------------
    async def _repositories(self, dest: Path, rows: dict[int, str], report: BackupReport) -> None:
        gate = asyncio.Semaphore(self.jobs)

        async def one(repo_id: int, default_branch: str) -> None:
            async with gate:
                try:
                    count = await asyncio.to_thread(self._mirror, dest, repo_id, default_branch)
                    report.refs += count  # (not `+=` around the await: the others add meanwhile)
                except gitcopy.CopyFailed as exc:
                    report.failed[repo_id] = str(exc)
                    log.error("backup of repository %d failed: %s", repo_id, exc)

        await asyncio.gather(*(one(repo_id, branch) for repo_id, branch in sorted(rows.items())))

    def _mirror(self, dest: Path, repo_id: int, default_branch: str) -> int:
        src = self.data.repo_path(repo_id)
        dst = DataDir(dest).repo_path(repo_id)
        if not src.is_dir():
            return 0  # deleted since the list was read (or never made): settled by _reconcile
        if not dst.is_dir():
            tmp = dst.with_name(f".{dst.name}.backup-tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.parent.mkdir(parents=True, exist_ok=True)
            gitcopy.init_bare(tmp, default_branch)
            tmp.rename(dst)
        count, how = gitcopy.copy(src, dst)
        if how == "fetch":
            log.info("repository %d changed while it was copied: fetched instead", repo_id)
        return count

    # -- 2. LFS objects ------------------------------------------------------------------------
    async def _lfs(self, dest: Path, report: BackupReport) -> set[str]:
        seen: set[str] = set()
        async for stored in self.storage.iter_objects():
            seen.add(stored.oid)
            await self._copy_object(dest, stored.oid, stored.size, report)
        return seen

    async def _copy_object(self, dest: Path, oid: str, size: int, report: BackupReport) -> bool:
        target = lfs_path(dest, oid)
        with contextlib.suppress(FileNotFoundError):
            if target.stat().st_size == size:
                return True
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{oid}.tmp")
        try:
            if isinstance(self.storage, LocalFiles):
                source = self.storage.local_path(oid)
                if source is None:
                    return False
                await asyncio.to_thread(shutil.copyfile, source, tmp)
            else:
                reader = await self.storage.open(oid)
                try:
                    with open(tmp, "wb") as out:
                        async for chunk in reader:
                            await asyncio.to_thread(out.write, chunk)
                finally:
                    await reader.aclose()
        except FileNotFoundError:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            return False
        if tmp.stat().st_size != size:
            tmp.unlink()
            return False
        os.replace(tmp, target)
        report.lfs_copied += 1
        report.lfs_bytes_copied += size
        return True

    # -- 3. the database, last -----------------------------------------------------------------
    def _database(self, dest: Path) -> None:
        snapshot_database(self.data.db_file, dest / "gitd.db")
        for name in SECRET_FILES:
            source = self.data.root / name
            if source.exists():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, dest / name)

    # -- 4. DEST as of the snapshot ------------------------------------------------------------
    async def _reconcile(self, dest: Path, seen: set[str], report: BackupReport) -> None:
        db = dest / "gitd.db"
        rows = await asyncio.to_thread(_repo_rows, db)
        backup = DataDir(dest)
        for repo_id, branch in sorted(rows.items()):
            if not backup.repo_path(repo_id).is_dir():  # created after its turn came: empty then
                await asyncio.to_thread(self._empty, backup.repo_path(repo_id), branch)
                report.created_empty.append(repo_id)
        for shard in sorted(backup.repos.iterdir()) if backup.repos.is_dir() else []:
            for path in sorted(shard.iterdir()):
                name = path.name
                if name.endswith(".git") and name[:-4].isdigit() and int(name[:-4]) not in rows:
                    await asyncio.to_thread(shutil.rmtree, path)  # deleted before the snapshot
                    report.pruned_repos += 1
        report.repos = len(rows)
        conn = sqlite3.connect(str(db))
        try:
            recorded = dict(conn.execute("SELECT oid, size FROM lfs_objects WHERE state = 'stored'").fetchall())
            for oid, size in sorted(recorded.items()):
                if not await self._copy_object(dest, oid, size, report):
                    report.lfs_missing.append(oid)  # the store lost it: the backup says so
                    conn.execute("UPDATE lfs_objects SET state = 'lost' WHERE oid = ?", [oid])
            conn.commit()
            known = {oid for (oid,) in conn.execute("SELECT oid FROM lfs_objects")}
        finally:
            conn.close()
        report.lfs_objects = len(recorded) - len(report.lfs_missing)
        objects = dest / "lfs" / "objects"
        for path in objects.glob("*/*/*") if objects.is_dir() else []:
            if is_oid(path.name) and path.name not in known:
                path.unlink()  # gc removed it before the snapshot
                report.lfs_pruned += 1

    @staticmethod
    def _empty(path: Path, default_branch: str) -> None:
        tmp = path.with_name(f".{path.name}.backup-tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        gitcopy.init_bare(tmp, default_branch)
        tmp.rename(path)

    def _manifest(self, dest: Path, report: BackupReport) -> None:
        manifest = {"format": FORMAT, "gitd": __version__, "created_at": utcnow(), "storage": self.storage.name,
                    "report": {**asdict(report), "failed": {str(k): v for k, v in report.failed.items()}}}
        tmp = dest / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
        os.replace(tmp, dest / MANIFEST)
