"""``Store.db``: one connection per thread, native threads included."""

from __future__ import annotations

import io
import threading

import pyarrow.csv as pcsv

from gitd.store import Store


class CountingSource(io.RawIOBase):
    """A CSV source whose reads look the database up, as a plugin's ``RepoView.open`` does
    for each ranged read of an LFS object; pyarrow calls it from its own native threads."""

    def __init__(self, store: Store, data: bytes):
        self.store, self.data, self.pos = store, data, 0
        self.threads: set[int] = set()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        self.threads.add(threading.get_ident())
        assert self.store.db.execute("SELECT 1").fetchone() == (1,)
        chunk = self.data[self.pos:self.pos + min(len(buffer), 4096)]
        buffer[:len(chunk)] = chunk
        self.pos += len(chunk)
        return len(chunk)


def test_regression_callbacks_from_native_threads_reuse_their_threads_connection(tmp_path):
    """pyarrow's reader threads enter Python with a fresh thread state (so an empty
    ``threading.local``) on every call: the store opened, and kept, one SQLite connection
    per read, and converting a 300 MB CSV grew the job's memory by some 200 MB."""
    store = Store(tmp_path / "db.sqlite")
    store.db.execute("SELECT 1")
    source = CountingSource(store, b"a,b\n" + b"1,xyz\n" * 200_000)  # some 300 reads
    rows = sum(b.num_rows for b in pcsv.open_csv(source, read_options=pcsv.ReadOptions(block_size=64 << 10)))
    assert rows == 200_000
    assert len(store._all) <= 1 + len(source.threads) + 2, f"{len(store._all)} connections for {len(source.threads)}"
    store.close()


def test_each_python_thread_has_a_connection_of_its_own(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    mine = store.db
    assert store.db is mine
    seen: list[object] = []
    worker = threading.Thread(target=lambda: seen.append(store.db))
    worker.start()
    worker.join()
    assert seen[0] is not mine and len(store._all) == 2
    store.close()
