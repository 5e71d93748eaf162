"""Local-disk storage: content-addressed files under DATA/lfs, promoted by atomic rename.

Layout: ``objects/<oid[0:2]>/<oid[2:4]>/<oid>`` and ``tmp/`` for uploads in flight,
on the same filesystem so that ``rename`` is atomic. Blocking file work runs in the
storage's own thread pool; writes are pipelined (the next chunks are read from the
client while the previous ones are hashed and written).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
from collections.abc import AsyncIterable, AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gitd.lfs.storage.base import LocalFiles, ObjectReader, ObjectStore, StoredObject
from gitd.lfs.streams import CHUNK, ThreadReader, Verifier, grouped, is_oid

# Bytes handed to the writer thread at a time.
WRITE_BLOCK = 4 * CHUNK


def _write_all(fd: int, chunks: list[bytes]) -> None:
    views = [memoryview(c) for c in chunks]
    while views:
        written = os.writev(fd, views[:1024])
        while written and views:
            if written >= len(views[0]):
                written -= len(views[0])
                views.pop(0)
            else:
                views[0] = views[0][written:]
                written = 0


class LocalStorage(ObjectStore, LocalFiles):
    name = "local"

    def __init__(self, root: Path, *, fsync: bool = False, threads: int = 8):
        self.root = root
        self.objects_dir = root / "objects"
        self.tmp_dir = root / "tmp"
        self.fsync = fsync
        self.objects_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="lfs-local")

    def _path(self, oid: str) -> Path:
        if not is_oid(oid):
            raise ValueError(f"not an object id: {oid!r}")
        return self.objects_dir / oid[:2] / oid[2:4] / oid

    async def _run(self, func, *args):
        return await asyncio.get_running_loop().run_in_executor(self._pool, func, *args)

    # -- streaming ------------------------------------------------------------------------------
    async def put(self, oid: str, size: int, chunks: AsyncIterable[bytes]) -> None:
        final = self._path(oid)
        tmp = self.tmp_dir / f"{oid}.{secrets.token_hex(8)}.part"
        fd = await self._run(os.open, tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        verifier = Verifier(oid, size)
        pending: asyncio.Future[None] | None = None
        closed = False

        def write(group: list[bytes]) -> None:
            verifier.update_all(group)
            _write_all(fd, group)

        def finish() -> None:
            verifier.check()
            if self.fsync:
                os.fsync(fd)
            os.close(fd)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
            if self.fsync:
                dir_fd = os.open(final.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)

        try:
            async for group in grouped(chunks, WRITE_BLOCK):
                if pending is not None:
                    await pending
                pending = asyncio.get_running_loop().run_in_executor(self._pool, write, group)
            if pending is not None:
                await pending
                pending = None
            closed = True
            await self._run(finish)
        except BaseException:
            if pending is not None:
                with contextlib.suppress(BaseException):
                    await asyncio.shield(pending)

            def discard() -> None:
                if not closed:
                    os.close(fd)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)

            await asyncio.shield(self._run(discard))
            raise

    async def open(self, oid: str, start: int = 0, end: int | None = None) -> ObjectReader:
        path = self._path(oid)

        def opener():
            f = open(path, "rb")  # noqa: SIM115 - closed by the reader
            if start:
                f.seek(start)
            return f

        f = await self._run(opener)
        remaining = None if end is None else max(0, end - start)
        return ThreadReader(f.read, f.close, executor=self._pool, remaining=remaining)

    async def stat(self, oid: str) -> int | None:
        try:
            return (await self._run(os.stat, self._path(oid))).st_size
        except FileNotFoundError:
            return None

    async def delete(self, oid: str) -> None:
        def unlink() -> None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path(oid))

        await self._run(unlink)

    async def iter_objects(self) -> AsyncIterator[StoredObject]:
        def scan(prefix: Path) -> list[StoredObject]:
            found = []
            for sub in sorted(prefix.iterdir()) if prefix.is_dir() else []:
                for entry in os.scandir(sub) if sub.is_dir() else []:
                    if is_oid(entry.name) and entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        found.append(StoredObject(entry.name, st.st_size, st.st_mtime))
            return found

        tops = await self._run(lambda: sorted(self.objects_dir.iterdir()))
        for top in tops:
            for obj in await self._run(scan, top):
                yield obj

    async def digest(self, oid: str) -> tuple[str, int]:
        path = self._path(oid)

        def hash_file() -> tuple[str, int]:
            h = hashlib.sha256()
            n = 0
            with open(path, "rb") as f:
                while block := f.read(CHUNK):
                    h.update(block)
                    n += len(block)
            return h.hexdigest(), n

        return await self._run(hash_file)

    async def sweep_incomplete(self, older_than: float) -> int:
        def sweep() -> int:
            removed = 0
            for entry in os.scandir(self.tmp_dir):
                with contextlib.suppress(FileNotFoundError):
                    if entry.stat(follow_symlinks=False).st_mtime < older_than:
                        os.unlink(entry.path)
                        removed += 1
            return removed

        return await self._run(sweep)

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- local files ----------------------------------------------------------------------------
    def local_path(self, oid: str) -> Path | None:
        path = self._path(oid)
        return path if path.is_file() else None

    def temporaries(self) -> list[Path]:
        """Uploads in flight (or left by a crash); for tests and operators."""
        return sorted(self.tmp_dir.iterdir())
