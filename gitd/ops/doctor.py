"""``gitd doctor``: check the database against the disk, and repair what is safe to repair.

Checks, and what ``--repair`` does about each (nothing is ever deleted):

* the database passes SQLite's ``quick_check`` (no repair: restore a backup);
* every repository row has its directory (repair: an empty repository is made, so the
  repository answers again; its history is lost and can only come back from a backup);
* every repository directory has a row (repair: moved to ``DATA/lost+found``);
* every ref reaches whole objects (``git fsck --connectivity-only``; no repair);
* each repository runs this data directory's hooks (``core.hooksPath``, which a copy to
  another path breaks; repair: set it) and its HEAD names a branch that exists when it has
  branches (repair: HEAD is pointed at the default branch, or the first one);
* every LFS object recorded as stored is in storage (repair: marked lost, so downloads
  answer 410 and the next push of the object stores it again); objects in storage that
  nothing records are reported (``gitd lfs gc`` removes them);
* leftovers of interrupted work (``gitd.ops.maintenance``; repair: removed once older
  than the grace).
"""

from __future__ import annotations

import asyncio
import functools
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from gitd.git.env import git_env
from gitd.git.refs import point_unborn_head
from gitd.lfs.objects import LOST, STORED, ObjectTable
from gitd.lfs.storage.base import LocalFiles, ObjectStore
from gitd.ops import gitcopy
from gitd.ops.maintenance import find_leftovers, remove
from gitd.paths import DataDir
from gitd.repos import new_bare_repository
from gitd.store import Store


@dataclass
class Finding:
    check: str
    subject: str
    detail: str
    repair: str | None = None  # what --repair does; None: nothing is safe to do
    repaired: bool = False

    def line(self) -> str:
        state = "repaired" if self.repaired else "problem"
        tail = f" ({self.repair})" if self.repaired and self.repair else ""
        return f"{state}: {self.check}: {self.subject}: {self.detail}{tail}"


@dataclass(frozen=True)
class RepoRow:
    id: int
    full_name: str
    default_branch: str


class Doctor:
    def __init__(self, data: DataDir, store: Store, objects: ObjectTable, storage: ObjectStore, *,
                 grace: float = 12 * 3600, lock_grace: float = 600, jobs: int = 4,
                 say: Callable[[str], None] = lambda line: None):
        self.data = data
        self.store = store
        self.objects = objects
        self.storage = storage
        self.grace = grace
        self.lock_grace = lock_grace
        self.jobs = max(1, jobs)
        self.say = say

    async def run(self, *, repair: bool = False) -> list[Finding]:
        findings: list[Finding] = []
        findings += await asyncio.to_thread(self._database)
        rows = await asyncio.to_thread(self._rows)
        findings += await asyncio.to_thread(self._directories, rows, repair)
        gate = asyncio.Semaphore(self.jobs)

        async def one(row: RepoRow) -> list[Finding]:
            async with gate:
                return await asyncio.to_thread(self._repository, row, repair)

        for found in await asyncio.gather(*(one(row) for row in rows.values())):
            findings += found
        findings += await self._lfs(repair)
        findings += await asyncio.to_thread(self._leftovers, repair)
        return findings

    # -- the database and its rows ---------------------------------------------------------------
    def _database(self) -> list[Finding]:
        result = self.store.db.execute("PRAGMA quick_check").fetchall()
        if [tuple(r) for r in result] == [("ok",)]:
            return []
        return [Finding("database", str(self.data.db_file), "; ".join(str(r[0]) for r in result[:5]))]

    def _rows(self) -> dict[int, RepoRow]:
        rows = self.store.db.execute(
            "SELECT r.id, r.type, a.name, r.name, r.default_branch FROM repos r JOIN accounts a ON a.id = r.owner_id")
        return {rid: RepoRow(rid, f"{kind} {ns}/{name}", branch) for rid, kind, ns, name, branch in rows}

    def _directories(self, rows: dict[int, RepoRow], repair: bool) -> list[Finding]:
        findings = []
        for row in rows.values():
            path = self.data.repo_path(row.id)
            if path.is_dir():
                continue
            finding = Finding("repository-missing", row.full_name, f"no directory {path}",
                              "made an empty repository; restore its history from a backup")
            if repair:
                new_bare_repository(path, row.default_branch, self.data.hooks).rename(path)
                finding.repaired = True
            findings.append(finding)
        for shard in sorted(self.data.repos.iterdir()) if self.data.repos.is_dir() else []:
            for path in sorted(shard.iterdir()) if shard.is_dir() else []:
                name = path.name
                if not name.endswith(".git") or name.startswith("."):
                    continue
                stem = name[:-4]
                if stem.isdigit() and int(stem) in rows and self.data.repo_path(int(stem)) == path:
                    continue
                finding = Finding("repository-unrecorded", str(path), "a repository directory no row names",
                                  f"moved to {self.data.root / 'lost+found'}")
                if repair:
                    lost = self.data.root / "lost+found"
                    lost.mkdir(mode=0o700, exist_ok=True)
                    shutil.move(str(path), str(lost / f"{shard.name}-{name}"))
                    finding.repaired = True
                findings.append(finding)
        return findings

    # -- each repository -------------------------------------------------------------------------
    def _repository(self, row: RepoRow, repair: bool) -> list[Finding]:
        path = self.data.repo_path(row.id)
        if not path.is_dir():
            return []
        findings = []
        hooks = subprocess.run(["git", "config", "--get", "core.hooksPath"], env=git_env(git_dir=path),
                               capture_output=True).stdout.decode().strip()
        if hooks != str(self.data.hooks):
            finding = Finding("hooks-path", row.full_name, f"runs the hooks in {hooks or '(none)'}, not "
                              f"{self.data.hooks} (copied from another data directory?)", "set core.hooksPath")
            if repair:
                subprocess.run(["git", "config", "core.hooksPath", str(self.data.hooks)], env=git_env(git_dir=path),
                               check=True, capture_output=True)
                finding.repaired = True
            findings.append(finding)
        refs = gitcopy.refs(path)
        branches = sorted(ref for ref in refs if ref.startswith("refs/heads/"))
        head = gitcopy.head_target(path)
        if branches and head not in refs:
            finding = Finding("head", row.full_name, f"HEAD names {head or 'nothing'}, which does not exist",
                              "pointed HEAD at an existing branch")
            if repair and point_unborn_head(path, branches, row.default_branch) is not None:
                finding.repaired = True
            findings.append(finding)
        for problem in gitcopy.connectivity_problems(path) if refs else []:
            findings.append(Finding("refs-broken", row.full_name, problem))
        return findings

    # -- LFS ------------------------------------------------------------------------------------
    async def _lfs(self, repair: bool) -> list[Finding]:
        findings = []
        recorded = {row.oid: row for row in await asyncio.to_thread(self.objects.all)}
        stored: dict[str, int] = {}
        if isinstance(self.storage, LocalFiles):
            for oid in recorded:
                path = self.storage.local_path(oid)
                if path is not None:
                    stored[oid] = path.stat().st_size
        else:
            async for item in self.storage.iter_objects():
                stored[item.oid] = item.size
        for oid, row in sorted(recorded.items()):
            if row.state != STORED or stored.get(oid) == row.size:
                continue
            detail = "recorded as stored, but storage does not have it" if oid not in stored else \
                f"recorded as {row.size} bytes, but storage has {stored[oid]}"
            finding = Finding("lfs-missing", oid, detail, "marked lost: downloads answer 410 until it is pushed again")
            if repair and await self.store.run(functools.partial(self.objects.set_state, oid, LOST, only_from=STORED)):
                finding.repaired = True
            findings.append(finding)
        if not isinstance(self.storage, LocalFiles):
            for oid in sorted(set(stored) - set(recorded)):
                findings.append(Finding("lfs-unrecorded", oid, "in storage, but nothing records it "
                                        "('gitd lfs gc' removes it once older than its grace)"))
        return findings

    def _leftovers(self, repair: bool) -> list[Finding]:
        findings = []
        for item in find_leftovers(self.data, self.grace, lock_grace=self.lock_grace):
            finding = Finding("leftover", str(item.path), f"{item.kind}, {item.size} bytes, untouched for "
                              f"{item.idle:.0f}s", "removed")
            if repair:
                remove(item)
                finding.repaired = True
            findings.append(finding)
        return findings


def unrepaired(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if not f.repaired]
