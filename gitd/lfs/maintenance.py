"""``gitd lfs gc`` and ``gitd lfs fsck``: safe to run while the daemon serves.

gc removes (1) objects no repository holds that nobody stored or linked within the
grace period, (2) bytes in storage that have no row at all (left by a crash between
storing and recording) and are older than the grace period, and (3) temporaries and
abandoned direct or multipart uploads older than the grace period. An object is moved
to the ``deleting`` state in the same transaction that checks it is unreferenced,
so an upload that races with gc is refused (retryably) instead of being linked to
bytes that are about to go.

fsck re-hashes every recorded object and reports the ones that are missing, have the
wrong size or the wrong SHA-256. Those are marked ``lost``, which makes downloads
answer 410 and lets the next push of the object store it again; objects found
intact again are marked ``stored``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from gitd.config import parse_duration  # noqa: F401 - `gitd lfs gc` parses --grace with it
from gitd.lfs.objects import DELETING, LOST, STORED, ObjectTable
from gitd.lfs.storage.base import ObjectStore


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class GcReport:
    deleted: list[str] = field(default_factory=list)
    deleted_bytes: int = 0
    orphans: list[str] = field(default_factory=list)
    incomplete: int = 0
    kept_referenced: int = 0


@dataclass
class FsckReport:
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.corrupt


async def gc(objects: ObjectTable, storage: ObjectStore, grace: float, *, now: float | None = None,
             dry_run: bool = False) -> GcReport:
    now = time.time() if now is None else now
    cutoff = now - grace
    report = GcReport()
    if dry_run:  # exactly what a real run would delete now (the same three steps, reading only)
        rows = objects.unreferenced(_iso(cutoff))
        report.deleted = [r.oid for r in rows]
        report.deleted_bytes = sum(r.size for r in rows)
        known = {row.oid for row in objects.all()}
        async for stored in storage.iter_objects():
            if stored.oid not in known and stored.mtime < cutoff:
                report.orphans.append(stored.oid)
        report.incomplete = await storage.sweep_incomplete(cutoff, dry_run=True)
        return report
    while True:
        claimed = objects.claim_unreferenced(_iso(cutoff))
        if not claimed:
            break
        for row in claimed:
            await storage.delete(row.oid)
            if objects.forget(row.oid):
                report.deleted.append(row.oid)
                report.deleted_bytes += row.size
            else:
                report.kept_referenced += 1
        if len(claimed) < 1000:
            break
    known = {row.oid for row in objects.all()}
    async for stored in storage.iter_objects():
        if stored.oid in known or stored.mtime >= cutoff:
            continue
        if objects.get(stored.oid) is None:  # re-check: an upload may have just recorded it
            await storage.delete(stored.oid)
            report.orphans.append(stored.oid)
    report.incomplete = await storage.sweep_incomplete(cutoff)
    return report


async def fsck(objects: ObjectTable, storage: ObjectStore,
               progress: Callable[[str, str], None] | None = None) -> FsckReport:
    """Re-hash every recorded object; ``progress(oid, verdict)`` hears each verdict
    ('ok', 'missing', 'corrupt')."""
    report = FsckReport()
    for row in objects.all():
        if row.state == DELETING:
            continue
        report.checked += 1
        try:
            digest, size = await storage.digest(row.oid)
        except FileNotFoundError:
            verdict = "missing"
        else:
            verdict = "ok" if digest == row.oid and size == row.size else "corrupt"
        if verdict == "ok":
            if row.state == LOST and objects.set_state(row.oid, STORED, only_from=LOST):
                report.restored.append(row.oid)
        else:
            getattr(report, verdict).append(row.oid)
            objects.set_state(row.oid, LOST, only_from=row.state)
        if progress is not None:
            progress(row.oid, verdict)
    return report
