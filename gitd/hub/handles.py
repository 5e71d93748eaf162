"""Per-thread pygit2 repository handles that let go of packs git deleted.

A pygit2 ``Repository`` keeps every pack it has read open (and mapped) for as long as it
lives. ``git gc --auto``, which receive-pack runs after pushes (each push keeps its pack),
writes one new pack and deletes the old ones: a handle still open holds the deleted files,
so a multi-GB repository would take twice its disk until the daemon restarts. So a handle is

* re-opened when its repository's pack directory changed (a pack added or removed changes
  the directory's inode times), which ``open`` looks at with one ``stat`` at most once per
  ``CHECK_EVERY`` seconds per handle;
* re-opened once it is ``max_age`` seconds old, whatever happened;
* dropped by ``sweep()`` (the daemon runs it periodically) when it is older than
  ``max_age`` or its packs changed, on whatever thread it belongs to: a thread that served
  one request and idles since would otherwise pin the packs for ever.

Handles are per thread (libgit2 objects are not shared between threads at once); a sweep
only takes a handle out of its thread's table, under that table's lock, so a thread that
is using it keeps its own reference until it is done, and the last reference frees it:
at once, since ``Handle`` (unlike pygit2's ``Repository``) is in no reference cycle, so
its packs are closed without waiting for the garbage collector.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.branches import Branches
from pygit2.references import References
from pygit2.remotes import RemoteCollection
from pygit2.submodules import SubmoduleCollection

from gitd.clock import SYSTEM_CLOCK, Clock
from gitd.errors import NotFound

OPEN_FLAGS = pygit2.enums.RepositoryOpenFlag.BARE | pygit2.enums.RepositoryOpenFlag.NO_SEARCH
# Seconds between two looks at a handle's pack directory.
CHECK_EVERY = 1.0
# Handles one thread keeps (the least recently used go first).
PER_THREAD = 64


def _made_on_use(collection: type) -> property:
    # pygit2 stores these collections on the repository, and each refers back to it: a cycle
    # that only the garbage collector frees, keeping the packs open until it runs. Made on
    # each use instead (they hold nothing but the repository), nothing refers back.
    return property(lambda self: collection(self), lambda self, value: None)


class Handle(pygit2.Repository):
    """A pygit2 repository that its last reference frees (see ``_made_on_use``)."""

    branches = _made_on_use(Branches)
    references = _made_on_use(References)
    remotes = _made_on_use(RemoteCollection)
    submodules = _made_on_use(SubmoduleCollection)


def pack_signature(path: str) -> tuple[int, int, int] | None:
    """What changes whenever a pack is added to or removed from the repository at ``path``."""
    try:
        st = os.stat(f"{path}/objects/pack")
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_ctime_ns


@dataclass(slots=True)
class _Handle:
    repo: Handle
    packs: tuple[int, int, int] | None
    opened: float
    checked: float


class _Table:
    """One thread's handles."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.handles: OrderedDict[str, _Handle] = OrderedDict()


class RepoHandles:
    def __init__(self, *, max_age: float = 300.0, clock: Clock = SYSTEM_CLOCK, per_thread: int = PER_THREAD):
        self.max_age = max_age
        self.clock = clock
        self.per_thread = per_thread
        self._local = threading.local()
        self._tables: dict[int, _Table] = {}  # thread ident -> its table
        self._lock = threading.Lock()
        self.reopened = 0  # handles re-opened or dropped because their packs changed or they aged

    def _table(self) -> _Table:
        table = getattr(self._local, "table", None)
        if table is None:
            table = self._local.table = _Table()
            with self._lock:
                self._tables[threading.get_ident()] = table
        return table

    def open(self, path: Path | str) -> Handle:
        """This thread's handle on the bare repository at ``path`` (NotFound if there is none)."""
        key = str(path)
        table = self._table()
        now = self.clock.monotonic()
        with table.lock:
            handle = table.handles.get(key)
            if handle is not None and now - handle.checked < CHECK_EVERY:
                table.handles.move_to_end(key)
                return handle.repo
        if handle is not None:
            if now - handle.opened < self.max_age and pack_signature(key) == handle.packs:
                handle.checked = now
                return handle.repo
            self.reopened += 1
        packs = pack_signature(key)  # before opening: a change after it is seen next time
        try:
            repo = Handle(key, OPEN_FLAGS)
        except pygit2.GitError:
            raise NotFound("repository not found", code="RepoNotFound") from None
        with table.lock:
            table.handles[key] = _Handle(repo, packs, now, now)
            table.handles.move_to_end(key)
            while len(table.handles) > self.per_thread:
                table.handles.popitem(last=False)
        return repo

    def forget(self, path: Path | str) -> None:
        """Drop this thread's handle on ``path``."""
        table = self._table()
        with table.lock:
            table.handles.pop(str(path), None)

    def sweep(self) -> int:
        """Drop, on every thread, the handles that are too old or whose packs changed (and the
        tables of threads that ended). Blocking (a ``stat`` per handle): run it off the loop.
        Returns how many handles it dropped."""
        alive = {thread.ident for thread in threading.enumerate()}
        with self._lock:
            for ident in [i for i in self._tables if i not in alive]:
                del self._tables[ident]
            tables = list(self._tables.values())
        now = self.clock.monotonic()
        dropped = 0
        for table in tables:
            with table.lock:
                items = list(table.handles.items())
            for key, handle in items:
                if now - handle.opened < self.max_age and pack_signature(key) == handle.packs:
                    continue
                with table.lock:
                    if table.handles.get(key) is handle:
                        del table.handles[key]
                        dropped += 1
                del handle
        self.reopened += dropped
        return dropped

    def sweep_quietly(self) -> None:
        """``sweep``, for the periodic task (whose log line a count would be)."""
        self.sweep()

    def count(self) -> int:
        """Handles open on all threads."""
        with self._lock:
            tables = list(self._tables.values())
        return sum(len(table.handles) for table in tables)
