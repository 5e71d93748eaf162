"""The pure-SSH LFS engine's backend over ``LfsService``: the same object store and
the same locks as the HTTP LFS API, seen by one SSH session's user.

Nothing here decides access: ``SSHCommands`` asked ``Access.require`` when the session
started and hands over the level it got. Only the lock rules that depend on who asks
live here, as the HTTP locks API applies them: a lock belongs to the user who took it,
and breaking someone else's lock needs ``force`` and admin rights on the repository.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from gitd.access.rules import AccessLevel
from gitd.errors import Forbidden
from gitd.lfs import locks as lfs_locks
from gitd.lfs.service import LfsService
from gitd.lfs.storage.base import ObjectReader
from gitd.metrics import Metrics
from gitd.ssh.lfs_backend import BackendFactory, LockConflict, LockInfo
from gitd.store import Account

TRANSPORT = "ssh"  # the transport label of the LFS byte counters


class LfsServiceBackend:
    """``TransferBackend`` for one session: ``account`` with ``level`` on the repository."""

    def __init__(self, lfs: LfsService, metrics: Metrics, account: Account, level: AccessLevel):
        self.lfs = lfs
        self.metrics = metrics
        self.account = account
        self.level = level

    # -- objects --------------------------------------------------------------------------------
    def missing(self, repo_id: int, oids: list[str]) -> set[str]:
        return self.lfs.missing(repo_id, oids)

    def size(self, repo_id: int, oid: str) -> int | None:
        return self.lfs.size(repo_id, oid)

    def check_upload(self, oid: str, size: int) -> None:
        self.lfs.check_upload(oid, size)

    async def receive(self, repo_id: int, oid: str, size: int, chunks: AsyncIterator[bytes]) -> None:
        received = 0

        async def counted() -> AsyncIterator[bytes]:
            nonlocal received
            async for chunk in chunks:
                received += len(chunk)
                yield chunk

        try:
            await self.lfs.receive(repo_id, oid, size, counted())
        finally:
            self.metrics.lfs_bytes_received.inc(received, transport=TRANSPORT)

    async def open(self, repo_id: int, oid: str) -> AsyncIterator[bytes]:
        return _CountedReader(await self.lfs.open(repo_id, oid), self.metrics)

    # -- locks ----------------------------------------------------------------------------------
    def _info(self, lock: lfs_locks.Lock) -> LockInfo:
        return LockInfo(id=str(lock.id), path=lock.path, locked_at=lock.locked_at, owner=lock.owner_name,
                        ours=lock.owner_id == self.account.id)

    def create_lock(self, repo_id: int, path: str, refname: str | None) -> LockInfo:
        try:
            return self._info(self.lfs.locks.create(repo_id, self.account, path, refname))
        except lfs_locks.LockConflict as exc:
            raise LockConflict(self._info(exc.lock), exc.message) from None

    def list_locks(self, repo_id: int, *, path: str | None, lock_id: str | None, cursor: str | None,
                   limit: int | None, refspec: str | None) -> tuple[list[LockInfo], str | None]:
        # Locks apply to the whole repository (as over HTTP): refspec does not narrow them.
        found, next_cursor = self.lfs.locks.list(repo_id, path=path, lock_id=lock_id, cursor=cursor, limit=limit)
        return [self._info(lock) for lock in found], next_cursor

    def unlock(self, repo_id: int, lock_id: str, force: bool, refname: str | None) -> LockInfo:
        is_admin = self.level >= AccessLevel.ADMIN
        try:
            return self._info(self.lfs.locks.unlock(repo_id, lock_id, self.account, force=force,
                                                    is_admin=is_admin))
        except Forbidden as exc:
            if is_admin and not force:
                # git-lfs (3.3.0 and later) never sends --force over pure SSH.
                raise Forbidden(f"{exc.message}; git-lfs does not pass --force over SSH, so break it over "
                                "HTTPS: git -c lfs.url=<https URL>/info/lfs lfs unlock --force ...") from None
            raise


class _CountedReader(ObjectReader):
    """An object reader that adds what it hands out to the LFS bytes-sent counter."""

    def __init__(self, reader: ObjectReader, metrics: Metrics):
        self._reader = reader
        self._metrics = metrics

    def __aiter__(self) -> _CountedReader:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._reader.__anext__()
        self._metrics.lfs_bytes_sent.inc(len(chunk), transport=TRANSPORT)
        return chunk

    async def aclose(self) -> None:
        await self._reader.aclose()


def lfs_service_backends(lfs: LfsService, metrics: Metrics) -> BackendFactory:
    """The factory ``SSHCommands`` calls once per ``git-lfs-transfer`` session."""

    def make(account: Account, level: AccessLevel) -> LfsServiceBackend:
        return LfsServiceBackend(lfs, metrics, account, level)

    return make
