"""What the pure-SSH LFS engine (gitd.ssh.lfs_transfer) needs from the LFS store.

A ``TransferBackend`` is the LFS store as one session's user sees it: it knows who
that user is (to own the locks they take, to tell their locks from everyone else's and
to decide whether they may break someone else's lock). ``gitd.ssh.lfs_service_backend``
implements it over ``LfsService``; the engine never touches storage, the database or
the lock table itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from gitd.access.rules import AccessLevel
from gitd.errors import Conflict
from gitd.store import Account


@dataclass(frozen=True)
class LockInfo:
    id: str
    path: str
    locked_at: str  # RFC 3339, with a time zone
    owner: str  # the owner's account name
    ours: bool = False  # owned by the session's user

    def args(self) -> list[str]:
        return [f"id={self.id}", f"path={self.path}", f"locked-at={self.locked_at}", f"ownername={self.owner}"]


class LockConflict(Conflict):
    """A lock on that path exists already; ``lock`` is the existing one."""

    def __init__(self, lock: LockInfo, message: str = "the file is already locked"):
        super().__init__(message)
        self.lock = lock


class TransferBackend(Protocol):
    """What the engine needs from the LFS store, for one session's user. Errors are
    GitdError subclasses (NotFound, Forbidden, Unprocessable, LockConflict, ...): their
    status and message are sent to the client."""

    def missing(self, repo_id: int, oids: list[str]) -> set[str]:
        """The oids this repository does not hold."""

    def size(self, repo_id: int, oid: str) -> int | None:
        """The object's size, or None when this repository does not hold it."""

    def check_upload(self, oid: str, size: int) -> None:
        """Raise (e.g. Unprocessable) when the server would refuse to store this object."""

    async def receive(self, repo_id: int, oid: str, size: int, chunks: AsyncIterator[bytes]) -> None:
        """Store the object from ``chunks`` and link it to the repository. If ``chunks``
        raises, or the bytes do not hash to ``oid``, nothing is stored."""

    async def open(self, repo_id: int, oid: str) -> AsyncIterator[bytes]:
        """The object's bytes; raises NotFound (or another GitdError) when the repository
        does not hold it or cannot serve it. Closed with ``aclose()`` if it has one."""

    def create_lock(self, repo_id: int, path: str, refname: str | None) -> LockInfo:
        """Lock ``path`` for the session's user. Raises LockConflict with the existing lock."""

    def list_locks(self, repo_id: int, *, path: str | None, lock_id: str | None, cursor: str | None,
                   limit: int | None, refspec: str | None) -> tuple[list[LockInfo], str | None]:
        """A page of locks and the cursor of the next page (None on the last)."""

    def unlock(self, repo_id: int, lock_id: str, force: bool, refname: str | None) -> LockInfo:
        """Remove a lock; only its owner may, unless ``force`` (and whatever else the store
        demands for that). Returns the removed lock."""


# Makes the backend of one session: the user it acts for and their access to the repository.
BackendFactory = Callable[[Account, AccessLevel], TransferBackend]
