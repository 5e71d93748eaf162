"""A change stamp for a WAL-mode SQLite database, read without a system call.

The read caches on the request hot path (repository and token lookups) must notice any
commit, by any connection or process, before they answer. ``PRAGMA data_version`` does
that, but it opens a read transaction: two ``fcntl`` locks and a ``getpid`` per call,
which cost about a third of the daemon's time per ``HEAD /resolve`` under load.

In WAL mode every commit rewrites the WAL-index header at the start of the ``-shm``
file (https://www.sqlite.org/walformat.html, "The WAL-Index Header"): its ``iChange``
counter goes up with each transaction, and ``mxFrame``, the salts and the checksums
change with the WAL's content. Reading those 48 bytes through a read-only shared mapping
of the same file SQLite maps costs a memory copy.

Rules this module keeps:

* The stamp is only ever used to decide "unchanged, keep the cache". Anything doubtful
  (the header's two copies differ because a writer is half-way, or it is not yet
  initialised) yields a stamp equal to nothing, so the caller reads the database.
* POSIX locks belong to a process and file, and closing *any* descriptor of a file drops
  all of the process's locks on it, SQLite's included. So the ``-shm`` descriptor (and
  the mapping's own duplicate) is opened once per database file per process, shared by
  every Store, and closed only when the last Store using it has closed its connections.
* Nothing is written through the mapping.
"""

from __future__ import annotations

import mmap
import os
import threading
from pathlib import Path

HEADER = 48  # one copy of the WAL-index header; a second copy follows it
_INIT = 12  # offset of isInit within a copy


class _Mapping:
    def __init__(self, fd: int, view: mmap.mmap):
        self.fd = fd
        self.view = view
        self.users = 0


_lock = threading.Lock()
_mappings: dict[str, _Mapping] = {}


class WalStamp:
    """The WAL-index header of one database, shared read-only with SQLite."""

    def __init__(self, key: str, mapping: _Mapping):
        self._key = key
        self._view = mapping.view
        self._closed = False

    @classmethod
    def open(cls, db_file: Path) -> WalStamp | None:
        """None unless ``db_file`` is in WAL mode with an initialised ``-shm`` file (the caller
        has a connection open, so SQLite holds it): then the caller falls back to the PRAGMA."""
        shm = f"{db_file}-shm"
        try:
            key = os.path.realpath(shm)
        except OSError:
            return None
        with _lock:
            mapping = _mappings.get(key)
            if mapping is None:
                mapping = _map(key)
                if mapping is None:
                    return None
                _mappings[key] = mapping
            mapping.users += 1
        return cls(key, mapping)

    def stamp(self) -> bytes | object:
        """Equal to an earlier stamp only if no transaction has committed since."""
        view = self._view
        try:
            head = view[0:HEADER]
            if head[_INIT] != 1 or head != view[HEADER:2 * HEADER]:
                return object()
        except ValueError:  # unmapped by Store.close() while another thread asked
            return object()
        return head

    def close(self) -> None:
        """Call after this Store's connections are closed."""
        with _lock:
            if self._closed:
                return
            self._closed = True
            mapping = _mappings.get(self._key)
            if mapping is None:
                return
            mapping.users -= 1
            if mapping.users == 0:
                del _mappings[self._key]
                mapping.view.close()
                os.close(mapping.fd)


def _map(path: str) -> _Mapping | None:
    try:
        if os.stat(path).st_size < 2 * HEADER:
            return None
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        view = mmap.mmap(fd, 2 * HEADER, mmap.MAP_SHARED, mmap.PROT_READ)
    except (OSError, ValueError):
        # Shrunk since the stat: SQLite may hold locks on this file, so by the rules above
        # the descriptor is never closed; it is kept for the life of the process.
        _orphans.append(fd)
        return None
    return _Mapping(fd, view)


_orphans: list[int] = []
