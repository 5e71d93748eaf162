"""The real parts the fuzz targets drive, built once per process: a migrated SQLite store
with two users and a repository, ``LfsService`` over local storage holding two objects,
the lock table, a bare git repository with a first commit, and an event loop.

Everything lives in one temporary directory (in /dev/shm when there is one, so SQLite
and git write to memory); ``reset()`` puts the state that inputs can change (locks,
objects linked by uploads) back after each input, so a crashing input replays alone.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pygit2

from gitd.access.rules import AccessLevel
from gitd.hub.commits import AddFile, make_commit
from gitd.lfs.locks import Locks
from gitd.lfs.objects import ObjectTable
from gitd.lfs.service import LfsService
from gitd.lfs.storage.local import LocalStorage
from gitd.metrics import Metrics
from gitd.ssh.lfs_service_backend import LfsServiceBackend
from gitd.store import Account, Accounts, Repo, Repos, Store

#: The objects every repository state starts with (content, so seeds can name and send them).
OBJECTS = (b"hello fuzz\n", b"")
#: An object no repository holds at first: seeds upload it.
NEW_OBJECT = b"a new object\n"
#: Files of the git repository's first commit (deletes and overwrites need something to act on).
FILES = {"README.md": b"# fuzz\n", "data/a.txt": b"a\n", "data/sub/b.txt": b"b\n", "run.sh": b"#!/bin/sh\n"}
#: The LFS size limit of this world (a configured ``lfs.max_object_size``).
MAX_OBJECT_SIZE = 10 * 1024 * 1024


def oid_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


class World:
    def __init__(self, root: Path):
        self.root = root
        self.loop = asyncio.new_event_loop()
        self.store = Store(root / "gitd.db")
        self.store.migrate()
        accounts = Accounts(self.store)
        self.alice: Account = accounts.create_user("alice")
        self.bob: Account = accounts.create_user("bob")
        self.repo: Repo = Repos(self.store).insert(self.alice, "one", "model", private=False, default_branch="main")
        self.locks = Locks(self.store)
        self.storage = LocalStorage(root / "lfs", threads=2)
        self.lfs = LfsService(ObjectTable(self.store), self.storage, self.locks, max_object_size=MAX_OBJECT_SIZE)
        self.metrics = Metrics()
        for data in OBJECTS:
            self.loop.run_until_complete(self.lfs.receive(self.repo.id, oid_of(data), len(data), _chunks(data)))
        self.base_oids = [oid_of(data) for data in OBJECTS]
        # The repository the hook calls belong to, and its object store.
        self.hook_repo = root / "repos" / "01" / "1.git"
        (self.hook_repo / "objects" / "info").mkdir(parents=True)
        # A bare repository with a first commit, for the commits the NDJSON target builds.
        self.commit_path = root / "commit.git"
        self.git = pygit2.init_repository(str(self.commit_path), bare=True)
        ops = [AddFile(path, str(self.git.create_blob(data))) for path, data in FILES.items()]
        self.base_commit = make_commit(self.git, None, ops, author="fuzz", email="fuzz@example.com", message="base\n")

    def backend(self, account: Account, level: AccessLevel) -> LfsServiceBackend:
        return LfsServiceBackend(self.lfs, self.metrics, account, level)

    def reset(self) -> None:
        """Forget what the last input changed: its locks and the objects it uploaded."""
        marks = ",".join("?" * len(self.base_oids))
        with self.store.transaction() as db:
            db.execute("DELETE FROM lfs_locks")
            db.execute("DELETE FROM sqlite_sequence WHERE name = 'lfs_locks'")  # lock ids start at 1 again
            db.execute(f"DELETE FROM lfs_repo_objects WHERE oid NOT IN ({marks})", self.base_oids)
            db.execute(f"DELETE FROM lfs_objects WHERE oid NOT IN ({marks})", self.base_oids)

    def close(self) -> None:
        self.loop.run_until_complete(self.lfs.close())
        self.loop.close()
        self.store.close()
        shutil.rmtree(self.root, ignore_errors=True)


_world: World | None = None


def world() -> World:
    """This process's world, built on first use and removed at exit."""
    global _world
    if _world is None:
        shm = Path("/dev/shm")
        base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
        _world = World(Path(tempfile.mkdtemp(prefix="gitd-fuzz-", dir=base)))
        atexit.register(_world.close)
    return _world
