"""Git LFS file locks: one lock per (repository, normalised path), enforced by a unique
index rather than check-then-insert.

Semantics (the git-lfs locking API, whatever transport carries it):

* ``create`` makes a lock owned by the caller, or raises LockConflict carrying the
  existing lock (HTTP 409);
* ``list`` filters by path or id and pages with an opaque cursor (a lock id) and a limit;
* ``verify`` splits a repository's locks into the caller's (``ours``) and everyone
  else's (``theirs``);
* ``unlock`` is for the owner; anyone else needs ``force`` *and* admin rights on the
  repository (Forbidden otherwise).

Paths are repository-relative with '/' separators. Normalising removes '.' segments,
repeated and leading slashes; '..' segments, NUL bytes and empty paths are refused.
Matching is case-sensitive, like git itself. Access checks (write access to lock,
verify or unlock; read to list) belong to the transports.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from gitd.errors import Conflict, Forbidden, NotFound, Unprocessable
from gitd.store import Account, Store, utcnow

MAX_PATH = 4096
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_MAX_INTEGER = 2**63 - 1  # SQLite's largest integer: lock ids and cursors are compared with ids


@dataclass(frozen=True)
class Lock:
    id: int
    repo_id: int
    path: str
    owner_id: int
    owner_name: str
    ref: str | None
    locked_at: str

    def to_json(self) -> dict[str, Any]:
        return {"id": str(self.id), "path": self.path, "locked_at": self.locked_at,
                "owner": {"name": self.owner_name}}


class LockConflict(Conflict):
    """The path is already locked; ``lock`` is the existing lock."""

    code = "LockExists"

    def __init__(self, lock: Lock):
        super().__init__(f"{lock.path} is already locked by {lock.owner_name}")
        self.lock = lock


def _is_text(value: str) -> bool:
    """False for a string with lone surrogates (JSON can carry them; UTF-8 and SQLite cannot)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def normalise_path(path: object) -> str:
    if not isinstance(path, str) or not path.strip():
        raise Unprocessable("a lock needs a path")
    if "\0" in path or len(path) > MAX_PATH or not _is_text(path):
        raise Unprocessable("invalid lock path")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise Unprocessable(f"invalid lock path {path!r:.200}: use a path inside the repository")
    return "/".join(parts)


def _lock_number(value: object) -> int | None:
    """``value`` (a lock id or cursor, any type) as a number SQLite can compare; None if it is none."""
    try:
        number = int(str(value))
    except ValueError:  # not a number, or more than 4300 digits
        return None
    return number if -_MAX_INTEGER - 1 <= number <= _MAX_INTEGER else None


def parse_cursor(cursor: object) -> int:
    if cursor in (None, ""):
        return 0
    value = _lock_number(cursor)
    if value is None or value < 0:
        raise Unprocessable("invalid cursor")
    return value


def parse_limit(limit: object) -> int:
    if limit in (None, "", 0):
        return DEFAULT_LIMIT
    try:
        value = int(str(limit))
    except ValueError:
        raise Unprocessable("invalid limit")
    if value < 1:
        raise Unprocessable("invalid limit")
    return min(value, MAX_LIMIT)


_SELECT = ("SELECT l.id, l.repo_id, l.path, l.owner_id, a.name, l.ref, l.locked_at "
           "FROM lfs_locks l JOIN accounts a ON a.id = l.owner_id")


class Locks:
    def __init__(self, store: Store):
        self.store = store

    def _query(self, where: str, args: list[Any], limit: int | None = None) -> list[Lock]:
        sql = f"{_SELECT} WHERE {where} ORDER BY l.id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [Lock(*row) for row in self.store.db.execute(sql, args)]

    def get(self, repo_id: int, lock_id: int) -> Lock | None:
        found = self._query("l.repo_id = ? AND l.id = ?", [repo_id, lock_id])
        return found[0] if found else None

    def create(self, repo_id: int, owner: Account, path: object, ref: str | None = None) -> Lock:
        norm = normalise_path(path)
        if ref is not None and not _is_text(ref):
            raise Unprocessable("invalid ref name")
        try:
            with self.store.transaction() as db:
                db.execute("INSERT INTO lfs_locks (repo_id, path, owner_id, ref, locked_at) VALUES (?, ?, ?, ?, ?)",
                           [repo_id, norm, owner.id, ref, utcnow()])
                lock_id = db.execute("SELECT last_insert_rowid()").fetchone()[0]
        except sqlite3.IntegrityError:
            existing = self._query("l.repo_id = ? AND l.path = ?", [repo_id, norm])
            if not existing:  # unlocked between our insert and this read: let the client retry
                raise Conflict(f"{norm} is being locked or unlocked right now; try again")
            raise LockConflict(existing[0])
        lock = self.get(repo_id, lock_id)
        assert lock is not None
        return lock

    def list(self, repo_id: int, *, path: object = None, lock_id: object = None, cursor: object = None,
             limit: object = None) -> tuple[list[Lock], str | None]:
        """Locks in id order after ``cursor``; returns (page, next_cursor or None)."""
        clauses, args = ["l.repo_id = ?"], [repo_id]
        if path not in (None, ""):
            clauses.append("l.path = ?")
            args.append(normalise_path(path))
        if lock_id not in (None, ""):
            wanted = _lock_number(lock_id)
            if wanted is None:
                return [], None
            args.append(wanted)
            clauses.append("l.id = ?")
        clauses.append("l.id > ?")
        args.append(parse_cursor(cursor))
        page_size = parse_limit(limit)
        found = self._query(" AND ".join(clauses), args, limit=page_size + 1)
        if len(found) > page_size:
            return found[:page_size], str(found[page_size - 1].id)
        return found, None

    def verify(self, repo_id: int, account: Account, *, cursor: object = None,
               limit: object = None) -> tuple[list[Lock], list[Lock], str | None]:
        """(ours, theirs, next_cursor) for one page of the repository's locks."""
        page, next_cursor = self.list(repo_id, cursor=cursor, limit=limit)
        ours = [lock for lock in page if lock.owner_id == account.id]
        theirs = [lock for lock in page if lock.owner_id != account.id]
        return ours, theirs, next_cursor

    def unlock(self, repo_id: int, lock_id: object, account: Account, *, force: bool = False,
               is_admin: bool = False) -> Lock:
        wanted = _lock_number(lock_id)
        if wanted is None:
            raise NotFound("no such lock")
        lock = self.get(repo_id, wanted)
        if lock is None:
            raise NotFound("no such lock")
        if lock.owner_id != account.id:
            if not force:
                raise Forbidden(f"{lock.path} is locked by {lock.owner_name}; only they can unlock it "
                                "(an administrator of the repository can use --force)")
            if not is_admin:
                raise Forbidden(f"{lock.path} is locked by {lock.owner_name}; forcing it open needs admin "
                                "rights on the repository")
        with self.store.transaction() as db:
            db.execute("DELETE FROM lfs_locks WHERE id = ? AND repo_id = ?", [lock.id, repo_id])
        return lock
