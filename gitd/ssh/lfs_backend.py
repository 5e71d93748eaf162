"""What the pure-SSH LFS engine (gitd.ssh.lfs_transfer) needs from the LFS store.

The LFS service satisfies ``TransferBackend``; the engine never touches storage, the
database or the lock table itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from gitd.errors import Conflict


@dataclass(frozen=True)
class LockInfo:
    id: str
    path: str
    locked_at: str  # RFC 3339, with a time zone
    owner: str  # the owner's account name

    def args(self) -> list[str]:
        return [f"id={self.id}", f"path={self.path}", f"locked-at={self.locked_at}", f"ownername={self.owner}"]


class LockConflict(Conflict):
    """A lock on that path exists already; ``lock`` is the existing one."""

    def __init__(self, lock: LockInfo, message: str = "the file is already locked"):
        super().__init__(message)
        self.lock = lock


class TransferBackend(Protocol):
    """What the engine needs from the LFS store. Errors are GitdError subclasses
    (NotFound, Forbidden, Unprocessable, LockConflict, ...): their status and message
    are sent to the client."""

    def missing(self, repo_id: int, oids: list[str]) -> set[str]:
        """The oids this repository does not hold."""

    def size(self, repo_id: int, oid: str) -> int | None:
        """The object's size, or None when this repository does not hold it."""

    async def receive(self, repo_id: int, oid: str, size: int, chunks: AsyncIterator[bytes]) -> None:
        """Store the object from ``chunks`` and link it to the repository. If ``chunks``
        raises, or the bytes do not hash to ``oid``, nothing is stored."""

    async def open(self, repo_id: int, oid: str) -> AsyncIterator[bytes]:
        """The object's bytes (the repository holds it); closed with ``aclose()`` if it has one."""

    def create_lock(self, repo_id: int, path: str, owner: str, refname: str | None) -> LockInfo:
        """Raises LockConflict with the existing lock."""

    def list_locks(self, repo_id: int, *, path: str | None, lock_id: str | None, cursor: str | None,
                   limit: int | None, refspec: str | None) -> tuple[list[LockInfo], str | None]:
        """A page of locks and the cursor of the next page (None on the last)."""

    def unlock(self, repo_id: int, lock_id: str, user: str, force: bool, refname: str | None) -> LockInfo:
        """Remove a lock; only its owner may, unless ``force``. Returns the removed lock."""
