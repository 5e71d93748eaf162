"""Local-disk storage: content-addressed files under DATA/lfs, promoted by atomic rename.

Layout: ``objects/<oid[0:2]>/<oid[2:4]>/<oid>`` and ``tmp/`` for uploads in flight,
on the same filesystem so that ``rename`` is atomic. A chunked upload is a directory
``tmp/<oid>.<random>.parts`` holding one file per part, ``<number>.<etag>``; finishing
it concatenates the parts in order into one temporary while hashing, then renames that. Blocking file work runs in the
storage's own thread pool; writes are pipelined (the next chunks are read from the
client while the previous ones are hashed and written).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
import shutil
from collections.abc import AsyncIterable, AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gitd.lfs.errors import ObjectMismatch
from gitd.lfs.storage.base import ChunkedUpload, ChunkedUploads, LocalFiles, ObjectReader, ObjectStore, StoredObject
from gitd.lfs.streams import CHUNK, ThreadReader, Verifier, grouped, is_oid

# Bytes handed to the writer thread at a time.
WRITE_BLOCK = 4 * CHUNK
_PARTS_DIR = re.compile(r"^[0-9a-f]{64}\.[0-9a-f]{16}\.parts$")
_PART_FILE = re.compile(r"^([0-9]{1,6})\.([0-9a-f]{16})$")


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


class LocalStorage(ObjectStore, LocalFiles, ChunkedUploads):
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
    async def _stream_into(self, tmp: Path, chunks: AsyncIterable[bytes], *,
                           inspect: Callable[[list[bytes]], None], check: Callable[[], None],
                           commit: Callable[[], None]) -> None:
        """Write ``chunks`` into the new file ``tmp``, each block written while the next arrives.

        On the storage's threads: ``inspect`` sees every block before it is written (hashing,
        counting; it may raise), ``check`` runs once all arrived, then the file is closed
        (and fsynced if asked) and ``commit`` puts it in place. On any error, or if the client
        goes away, the file is closed and removed: nothing half-written is left.
        """
        fd = await self._run(os.open, tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        loop = asyncio.get_running_loop()
        pending: asyncio.Future[None] | None = None
        closed = False

        def write(group: list[bytes]) -> None:
            inspect(group)
            _write_all(fd, group)

        def close_and_commit() -> None:
            nonlocal closed
            check()
            if self.fsync:
                os.fsync(fd)
            closed = True
            os.close(fd)
            commit()

        try:
            async for group in grouped(chunks, WRITE_BLOCK):
                if pending is not None:
                    await pending
                pending = loop.run_in_executor(self._pool, write, group)
            if pending is not None:
                await pending
                pending = None
            await self._run(close_and_commit)
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

    async def put(self, oid: str, size: int, chunks: AsyncIterable[bytes]) -> None:
        final = self._path(oid)
        verifier = Verifier(oid, size)

        def promote() -> None:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
            if self.fsync:
                dir_fd = os.open(final.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)

        tmp = self.tmp_dir / f"{oid}.{secrets.token_hex(8)}.part"
        await self._stream_into(tmp, chunks, inspect=verifier.update_all, check=verifier.check, commit=promote)

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

    async def sweep_incomplete(self, older_than: float, *, dry_run: bool = False) -> int:
        def newest(entry: os.DirEntry) -> float:
            """When anything in it was last written (a chunked upload's parts are files in a folder)."""
            mtime = entry.stat(follow_symlinks=False).st_mtime
            if entry.is_dir(follow_symlinks=False):
                for part in os.scandir(entry.path):
                    with contextlib.suppress(FileNotFoundError):
                        mtime = max(mtime, part.stat(follow_symlinks=False).st_mtime)
            return mtime

        def sweep() -> int:
            removed = 0
            for entry in os.scandir(self.tmp_dir):
                with contextlib.suppress(FileNotFoundError):
                    if newest(entry) < older_than:
                        if dry_run:
                            removed += 1
                            continue
                        if entry.is_dir(follow_symlinks=False):  # an abandoned chunked upload
                            shutil.rmtree(entry.path, ignore_errors=True)
                        else:
                            os.unlink(entry.path)
                        removed += 1
            return removed

        return await self._run(sweep)

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- chunked uploads ------------------------------------------------------------------------
    def chunk_size_for(self, size: int, wanted: int) -> int:
        return max(1, wanted)

    def _parts_dir(self, upload: ChunkedUpload) -> Path:
        if not _PARTS_DIR.match(upload.staging) or not upload.staging.startswith(upload.oid):
            raise ValueError(f"not a chunked upload: {upload.staging!r}")
        return self.tmp_dir / upload.staging

    async def chunked_begin(self, oid: str, size: int, chunk_size: int) -> ChunkedUpload:
        upload = ChunkedUpload(oid, size, chunk_size, f"{oid}.{secrets.token_hex(8)}.parts")
        await self._run(os.mkdir, self._parts_dir(upload))
        return upload

    async def chunked_write(self, upload: ChunkedUpload, number: int, chunks: AsyncIterable[bytes]) -> str:
        folder = self._parts_dir(upload)
        expected = upload.part_length(number)
        etag = secrets.token_hex(8)
        tmp = folder / f"{number}.{etag}.tmp"  # opening it raises FileNotFoundError once the upload is gone
        count = 0

        def inspect(group: list[bytes]) -> None:
            nonlocal count
            count += sum(len(c) for c in group)
            if count > expected:
                raise ObjectMismatch(f"part {number} must be {expected} bytes, but more were sent")

        def check() -> None:
            if count != expected:
                raise ObjectMismatch(f"part {number} must be {expected} bytes, but {count} were sent")

        def keep() -> None:
            for entry in os.scandir(folder):  # a part sent again replaces the earlier one
                found = _PART_FILE.match(entry.name)
                if found and int(found.group(1)) == number:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
            os.replace(tmp, folder / f"{number}.{etag}")

        await self._stream_into(tmp, chunks, inspect=inspect, check=check, commit=keep)
        return f'"{etag}"'

    async def chunked_finish(self, upload: ChunkedUpload, etags: dict[int, str]) -> None:
        folder = self._parts_dir(upload)
        final = self._path(upload.oid)
        tmp = self.tmp_dir / f"{upload.oid}.{secrets.token_hex(8)}.part"

        def assemble() -> None:
            present = {}
            for entry in os.scandir(folder):
                found = _PART_FILE.match(entry.name)
                if found:
                    present[int(found.group(1))] = found.group(2)
            for number in range(1, upload.part_count + 1):
                if number not in present:
                    raise ObjectMismatch(f"part {number} of {upload.part_count} was never uploaded")
                given = etags.get(number, "").strip().removeprefix("W/").strip('"')
                if given != present[number]:
                    raise ObjectMismatch(f"part {number} does not carry the ETag its upload answered")
            verifier = Verifier(upload.oid, upload.size)
            with open(tmp, "xb") as out:
                for number in range(1, upload.part_count + 1):
                    with open(folder / f"{number}.{present[number]}", "rb") as part:
                        while block := part.read(WRITE_BLOCK):
                            verifier.update(block)
                            out.write(block)
                verifier.check()
                if self.fsync:
                    out.flush()
                    os.fsync(out.fileno())
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)

        def cleanup() -> None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            shutil.rmtree(folder, ignore_errors=True)

        if not await self._run(folder.is_dir):
            raise FileNotFoundError(upload.staging)
        try:
            await self._run(assemble)
        finally:
            await asyncio.shield(self._run(cleanup))

    async def chunked_abort(self, upload: ChunkedUpload) -> None:
        await self._run(lambda: shutil.rmtree(self._parts_dir(upload), ignore_errors=True))

    # -- local files ----------------------------------------------------------------------------
    def local_path(self, oid: str) -> Path | None:
        path = self._path(oid)
        return path if path.is_file() else None

    def temporaries(self) -> list[Path]:
        """Uploads in flight (or left by a crash); for tests and operators."""
        return sorted(self.tmp_dir.iterdir())
