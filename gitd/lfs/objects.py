"""The LFS object tables: which objects are stored, and which repository holds which.

``lfs_objects`` has one row per stored oid (global dedup) with a state:

* ``stored``: storage has the bytes;
* ``lost``: fsck (or a failed read) found the bytes missing or corrupt; the next
  upload of the oid stores them again;
* ``deleting``: ``gitd lfs gc`` is removing the bytes; uploads of the oid are
  refused (retryably) until it is done.

``lfs_repo_objects`` says which repository holds which object; it is what makes a
download of an oid another repository holds a 404. Rows go with their repository
(ON DELETE CASCADE), which leaves the object for ``gc``. ``touched_at`` is when an
object was last stored or linked: gc only removes objects untouched for its grace
period, and every upload touches the row before it starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from gitd.lfs.errors import StorageUnavailable
from gitd.store import Store, utcnow

STORED, LOST, DELETING = "stored", "lost", "deleting"
_BATCH = 500


@dataclass(frozen=True)
class ObjectRow:
    oid: str
    size: int
    state: str
    touched_at: str


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(items), _BATCH):
        yield items[i:i + _BATCH]


class ObjectTable:
    def __init__(self, store: Store):
        self.store = store

    def get(self, oid: str) -> ObjectRow | None:
        row = self.store.db.execute(
            "SELECT oid, size, state, touched_at FROM lfs_objects WHERE oid = ?", [oid]).fetchone()
        return ObjectRow(*row) if row else None

    def held(self, repo_id: int, oids: Iterable[str]) -> dict[str, ObjectRow]:
        """The objects of ``oids`` that ``repo_id`` holds (in any state)."""
        found: dict[str, ObjectRow] = {}
        for part in _chunks(sorted(set(oids))):
            marks = ",".join("?" * len(part))
            for row in self.store.db.execute(
                "SELECT o.oid, o.size, o.state, o.touched_at FROM lfs_repo_objects r "
                f"JOIN lfs_objects o ON o.oid = r.oid WHERE r.repo_id = ? AND r.oid IN ({marks})",
                [repo_id, *part],
            ):
                found[row[0]] = ObjectRow(*row)
        return found

    def touch(self, oid: str) -> ObjectRow | None:
        """Mark a stored object as in use now (so gc leaves it alone); its row, or None."""
        with self.store.transaction() as db:
            db.execute("UPDATE lfs_objects SET touched_at = ? WHERE oid = ? AND state = ?",
                       [utcnow(), oid, STORED])
            return self.get(oid)

    def link(self, repo_id: int, oid: str) -> bool:
        """Let ``repo_id`` hold an object already stored; False if it is not (any more)."""
        with self.store.transaction() as db:
            row = self.get(oid)
            if row is None or row.state != STORED:
                return False
            now = utcnow()
            db.execute("UPDATE lfs_objects SET touched_at = ? WHERE oid = ?", [now, oid])
            db.execute("INSERT OR IGNORE INTO lfs_repo_objects (repo_id, oid, created_at) VALUES (?, ?, ?)",
                       [repo_id, oid, now])
            return True

    def add_and_link(self, repo_id: int, oid: str, size: int) -> None:
        """Record bytes just stored, and let ``repo_id`` hold them."""
        now = utcnow()
        with self.store.transaction() as db:
            row = self.get(oid)
            if row is not None and row.state == DELETING:
                raise StorageUnavailable("this object is being garbage-collected right now; try again shortly")
            db.execute(
                "INSERT INTO lfs_objects (oid, size, state, created_at, touched_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (oid) DO UPDATE SET state = excluded.state, touched_at = excluded.touched_at, "
                "size = excluded.size",
                [oid, size, STORED, now, now],
            )
            db.execute("INSERT OR IGNORE INTO lfs_repo_objects (repo_id, oid, created_at) VALUES (?, ?, ?)",
                       [repo_id, oid, now])

    def set_state(self, oid: str, state: str, *, only_from: str | None = None) -> bool:
        sql = "UPDATE lfs_objects SET state = ? WHERE oid = ?"
        args: list[object] = [state, oid]
        if only_from is not None:
            sql += " AND state = ?"
            args.append(only_from)
        with self.store.transaction() as db:
            return db.execute(sql, args).rowcount > 0

    def all(self) -> list[ObjectRow]:
        return [ObjectRow(*row) for row in self.store.db.execute(
            "SELECT oid, size, state, touched_at FROM lfs_objects ORDER BY oid")]

    def references(self, oid: str) -> int:
        return self.store.db.execute("SELECT count(*) FROM lfs_repo_objects WHERE oid = ?", [oid]).fetchone()[0]

    # -- garbage collection -------------------------------------------------------------------
    _UNREFERENCED = ("(state = ? OR touched_at < ?) "
                     "AND NOT EXISTS (SELECT 1 FROM lfs_repo_objects r WHERE r.oid = o.oid)")

    def unreferenced(self, touched_before: str) -> list[ObjectRow]:
        """What ``claim_unreferenced`` would claim now (read only: gc's dry run)."""
        return [ObjectRow(*r) for r in self.store.db.execute(
            f"SELECT oid, size, state, touched_at FROM lfs_objects o WHERE {self._UNREFERENCED} ORDER BY oid",
            [DELETING, touched_before])]

    def claim_unreferenced(self, touched_before: str, limit: int = 1000) -> list[ObjectRow]:
        """Move objects no repository holds and untouched since ``touched_before`` to
        ``deleting`` (and return them), in one transaction; also returns objects a
        previous, interrupted gc left in ``deleting``."""
        with self.store.transaction() as db:
            rows = [ObjectRow(*r) for r in db.execute(
                f"SELECT oid, size, state, touched_at FROM lfs_objects o WHERE {self._UNREFERENCED} LIMIT ?",
                [DELETING, touched_before, limit])]
            for part in _chunks([r.oid for r in rows]):
                db.execute(f"UPDATE lfs_objects SET state = ? WHERE oid IN ({','.join('?' * len(part))})",
                           [DELETING, *part])
        return rows

    def forget(self, oid: str) -> bool:
        """Drop the row of an object gc removed; False (row kept) if someone linked it meanwhile."""
        with self.store.transaction() as db:
            if self.references(oid):
                db.execute("UPDATE lfs_objects SET state = ? WHERE oid = ? AND state = ?", [LOST, oid, DELETING])
                return False
            return db.execute("DELETE FROM lfs_objects WHERE oid = ? AND state = ?", [oid, DELETING]).rowcount > 0
