"""A read-only view of one repository for plugins: refs, trees, files and diffs.

Files stored with Git LFS are read transparently: ``read``, ``read_range`` and ``open``
return the object's bytes (ranged reads go to storage, local disk or S3 alike, so a
plugin reading a safetensors header fetches only the header), and ``TreeEntry.size`` is
the real size. Walks and reads are bounded (``limit``, ``max_size``): a hostile tree or
file costs a plugin an exception, never the daemon's memory.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import pygit2

from gitd.git.refs import head_branch
from gitd.lfs.pointer import MAX_POINTER_SIZE, parse_pointer

if TYPE_CHECKING:
    from gitd.lfs.service import LfsService
    from gitd.plugins.events import RepoInfo
    from gitd.portal import Portal

FILE_MODES = (pygit2.GIT_FILEMODE_BLOB, pygit2.GIT_FILEMODE_BLOB_EXECUTABLE)
DEFAULT_MAX_READ = 64 * 1024 * 1024
DEFAULT_MAX_ENTRIES = 1_000_000


class ViewError(Exception):
    """A read the view refuses or cannot do (the message says which)."""


class NotFoundInTree(ViewError, LookupError):
    pass


class LimitExceeded(ViewError):
    pass


class LfsObjectMissing(ViewError):
    """The file is a Git LFS pointer to an object the repository does not hold."""


@dataclass(frozen=True)
class LfsFile:
    oid: str  # sha256
    size: int
    held: bool  # the server holds the object for this repository


@dataclass(frozen=True)
class TreeEntry:
    path: str
    type: Literal["file", "directory"]
    oid: str  # the git object id
    size: int  # the content size: the LFS object's size for a pointer
    lfs: LfsFile | None = None
    executable: bool = False


@dataclass(frozen=True)
class FileChange:
    path: str
    change: Literal["added", "modified", "deleted"]
    old: TreeEntry | None
    new: TreeEntry | None


@dataclass(frozen=True)
class CommitInfo:
    id: str
    message: str
    author_name: str
    author_email: str
    time: int
    parents: tuple[str, ...]


class LfsReader(Protocol):
    def held_size(self, repo_id: int, oid: str) -> int | None: ...

    def read(self, repo_id: int, oid: str, start: int, end: int) -> bytes: ...

    def missing(self, repo_id: int, oids: Iterable[str]) -> set[str]: ...


class RepoView:
    def __init__(self, repo: RepoInfo, repository: pygit2.Repository, lfs: LfsReader | None, *,
                 max_read: int = DEFAULT_MAX_READ, max_entries: int = DEFAULT_MAX_ENTRIES):
        self.repo = repo
        self.repository = repository
        self.lfs = lfs
        self.max_read = max_read
        self.max_entries = max_entries

    # -- refs ----------------------------------------------------------------------------------
    def resolve(self, revision: str) -> str | None:
        """The commit a branch, tag, full ref or (full or short) sha names, or None."""
        repo = self.repository
        names = [revision] if revision.startswith("refs/") else [f"refs/heads/{revision}", f"refs/tags/{revision}"]
        for name in names:
            ref = repo.references.get(name)
            if ref is not None:
                return self._peel(ref.resolve().target)
        try:
            return self._peel(repo.revparse_single(revision).id) if 4 <= len(revision) <= 40 and all(
                c in "0123456789abcdef" for c in revision) else None
        except (KeyError, ValueError, pygit2.GitError):
            return None

    def _peel(self, oid: object) -> str | None:
        try:
            return str(self.repository[oid].peel(pygit2.Commit).id)
        except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
            return None

    def head(self) -> str | None:
        """The commit of the default branch (None for an empty repository)."""
        branch = head_branch(self.repository) or self.repo.default_branch
        return self.resolve(f"refs/heads/{branch}")

    def refs(self, prefix: str = "refs/") -> dict[str, str]:
        """Every ref under ``prefix`` and the commit it points to."""
        out = {}
        for name in self.repository.references:
            if name.startswith(prefix):
                commit = self.resolve(name)
                if commit is not None:
                    out[name] = commit
        return out

    def commit(self, sha: str) -> CommitInfo:
        c = self.repository[sha].peel(pygit2.Commit)
        return CommitInfo(str(c.id), c.message, c.author.name, c.author.email, c.commit_time,
                          tuple(str(p) for p in c.parent_ids))

    # -- trees ---------------------------------------------------------------------------------
    def _tree(self, commit: str | None) -> pygit2.Tree | None:
        if commit is None or commit == "0" * 40:
            return None
        return self.repository[commit].peel(pygit2.Tree)

    def _entry(self, path: str, obj: pygit2.Object) -> TreeEntry | None:
        if obj.type == pygit2.GIT_OBJECT_TREE:
            return TreeEntry(path, "directory", str(obj.id), 0)
        if obj.type != pygit2.GIT_OBJECT_BLOB or obj.filemode not in FILE_MODES:
            return None  # submodules and symbolic links are not files
        _, size = self.repository.odb.read_header(obj.id)
        lfs = None
        if size <= MAX_POINTER_SIZE:
            pointer = parse_pointer(self.repository.odb.read(obj.id)[1])
            if pointer is not None:
                held = self.lfs.held_size(self.repo.id, pointer.oid) if self.lfs is not None else None
                lfs = LfsFile(pointer.oid, pointer.size, held is not None)
                size = pointer.size
        return TreeEntry(path, "file", str(obj.id), size, lfs, obj.filemode == pygit2.GIT_FILEMODE_BLOB_EXECUTABLE)

    def entry(self, commit: str, path: str) -> TreeEntry | None:
        """The file or directory at ``path`` in ``commit`` ("" is the root), or None."""
        tree = self._tree(commit)
        path = path.strip("/")
        if tree is None:
            return None
        if not path:
            return TreeEntry("", "directory", str(tree.id), 0)
        try:
            obj = tree[path]
        except (KeyError, ValueError):
            return None
        return self._entry(path, obj)

    def walk(self, commit: str, path: str = "", *, recursive: bool = True,
             limit: int | None = None) -> Iterator[TreeEntry]:
        """Entries below ``path`` (directories too), depth first in git's order. More than
        ``limit`` entries (default: the view's ``max_entries``) raise LimitExceeded."""
        tree = self._tree(commit)
        if tree is None:
            return
        path = path.strip("/")
        if path:
            try:
                tree = tree[path]
            except (KeyError, ValueError):
                raise NotFoundInTree(f"{path}: no such directory at {commit}") from None
            if tree.type != pygit2.GIT_OBJECT_TREE:
                raise NotFoundInTree(f"{path}: not a directory at {commit}")
        budget = [self.max_entries if limit is None else limit]
        yield from self._walk(tree, path, recursive, budget)

    def _walk(self, tree: pygit2.Tree, prefix: str, recursive: bool, budget: list[int]) -> Iterator[TreeEntry]:
        for obj in tree:
            full = f"{prefix}/{obj.name}" if prefix else obj.name
            entry = self._entry(full, obj)
            if entry is None:
                continue
            budget[0] -= 1
            if budget[0] < 0:
                raise LimitExceeded("the tree has more entries than this walk may visit")
            yield entry
            if recursive and entry.type == "directory":
                yield from self._walk(obj, full, recursive, budget)

    def tree(self, commit: str, path: str = "", *, recursive: bool = False, limit: int | None = None
             ) -> list[TreeEntry]:
        return list(self.walk(commit, path, recursive=recursive, limit=limit))

    def files(self, commit: str, *, limit: int | None = None) -> list[TreeEntry]:
        """Every file (no directories) in ``commit``."""
        return [e for e in self.walk(commit, limit=limit) if e.type == "file"]

    # -- file contents -------------------------------------------------------------------------
    def _file(self, commit: str, path: str) -> TreeEntry:
        entry = self.entry(commit, path)
        if entry is None or entry.type != "file":
            raise NotFoundInTree(f"{path}: no such file at {commit}")
        return entry

    def read_range(self, commit: str, path: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (exclusive, clipped to the file) of a file's content."""
        entry = self._file(commit, path)
        start, end = max(0, start), min(end, entry.size)
        if end <= start:
            return b""
        if end - start > self.max_read:
            raise LimitExceeded(f"{path}: reading {end - start} bytes at once is over the limit of {self.max_read}")
        if entry.lfs is not None:
            if not entry.lfs.held or self.lfs is None:
                raise LfsObjectMissing(f"{path}: the LFS object {entry.lfs.oid} is not on this server")
            return self.lfs.read(self.repo.id, entry.lfs.oid, start, end)
        return self.repository[entry.oid].data[start:end]

    def read(self, commit: str, path: str, *, max_size: int | None = None) -> bytes:
        """A whole file's content (LFS objects included); LimitExceeded over ``max_size``."""
        entry = self._file(commit, path)
        cap = self.max_read if max_size is None else min(max_size, self.max_read)
        if entry.size > cap:
            raise LimitExceeded(f"{path} is {entry.size} bytes, over the limit of {cap}")
        return self.read_range(commit, path, 0, entry.size)

    def open(self, commit: str, path: str) -> io.BufferedReader:
        """A seekable, read-only file object over a file's content; each read is a ranged read."""
        entry = self._file(commit, path)
        return io.BufferedReader(_RangedFile(self, commit, path, entry.size), buffer_size=64 * 1024)

    # -- history -------------------------------------------------------------------------------
    def diff(self, old: str | None, new: str, *, limit: int | None = None) -> list[FileChange]:
        """Files added, modified or deleted from commit ``old`` (None: the empty tree) to ``new``.
        A rename shows as a deletion and an addition.

        The two trees are walked side by side, skipping every subtree whose id is the same on
        both sides, so the work is proportional to what changed; more than ``limit`` entries
        visited (default: the view's ``max_entries``) raise LimitExceeded. (git's own diff
        would first build the whole difference in C, unbounded, whatever a tree bomb holds.)"""
        new_tree = self._tree(new)
        if new_tree is None:
            raise NotFoundInTree("no commit to compare")
        budget = [self.max_entries if limit is None else limit]
        out: list[FileChange] = []
        self._diff(self._tree(old), new_tree, "", budget, out)
        return out

    def _diff(self, old: pygit2.Tree | None, new: pygit2.Tree | None, prefix: str, budget: list[int],
              out: list[FileChange]) -> None:
        before = {obj.name: obj for obj in old} if old is not None else {}
        after = {obj.name: obj for obj in new} if new is not None else {}
        for name in sorted(before.keys() | after.keys()):
            a, b = before.get(name), after.get(name)
            if a is not None and b is not None and a.id == b.id and a.filemode == b.filemode:
                continue  # the same object under the same mode: nothing below it changed
            budget[0] -= 1
            if budget[0] < 0:
                raise LimitExceeded("the diff has more entries than it may visit")
            path = f"{prefix}/{name}" if prefix else name
            a_tree = a if a is not None and a.type == pygit2.GIT_OBJECT_TREE else None
            b_tree = b if b is not None and b.type == pygit2.GIT_OBJECT_TREE else None
            if a_tree is not None or b_tree is not None:
                self._diff(a_tree, b_tree, path, budget, out)
            a_file = self._entry(path, a) if a is not None and a_tree is None else None
            b_file = self._entry(path, b) if b is not None and b_tree is None else None
            if a_file is None and b_file is None:
                continue
            change = "added" if a_file is None else "deleted" if b_file is None else "modified"
            out.append(FileChange(path, change, a_file, b_file))


class _RangedFile(io.RawIOBase):
    def __init__(self, view: RepoView, commit: str, path: str, size: int):
        self.view, self.commit, self.path, self.size = view, commit, path, size
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        want = min(len(buffer), self.size - self.pos)
        if want <= 0:
            return 0
        data = self.view.read_range(self.commit, self.path, self.pos, self.pos + want)
        buffer[:len(data)] = data
        self.pos += len(data)
        return len(data)


class ServiceLfsReader:
    """``LfsReader`` over the daemon's LFS store: local files are read directly; other
    storage (S3) through the store's ranged reads, on the daemon's loop."""

    def __init__(self, lfs: LfsService, portal: Portal):
        self.lfs = lfs
        self.portal = portal

    def held_size(self, repo_id: int, oid: str) -> int | None:
        return self.lfs.size(repo_id, oid)

    def missing(self, repo_id: int, oids: Iterable[str]) -> set[str]:
        return self.lfs.missing(repo_id, oids)

    def read(self, repo_id: int, oid: str, start: int, end: int) -> bytes:
        path: Path | None = self.lfs.local_path(repo_id, oid)
        if path is not None:
            with open(path, "rb") as f:
                f.seek(start)
                return f.read(end - start)

        async def ranged() -> bytes:
            reader = await self.lfs.open(repo_id, oid, start, end)
            out = bytearray()
            try:
                async for chunk in reader:
                    out += chunk
            finally:
                await reader.aclose()
            return bytes(out)

        return self.portal.run(ranged)


class RepoViews:
    """Opens ``RepoView``s; one per repository handle (views are not shared across threads)."""

    def __init__(self, lfs: LfsReader | None = None, *, max_read: int = DEFAULT_MAX_READ,
                 max_entries: int = DEFAULT_MAX_ENTRIES):
        self.lfs = lfs
        self.max_read = max_read
        self.max_entries = max_entries
        self._local = threading.local()

    @contextmanager
    def releasing(self) -> Iterator[None]:
        """While the block runs, repositories this thread opens are recorded; when it ends they
        let go of their pack files (``Repository.free``), whoever still holds a view. A job runs
        in such a block, so a view a plugin kept (or a reference cycle the collector has not met
        yet) never pins the packs a later ``git gc`` deletes."""
        previous = getattr(self._local, "opened", None)
        opened: list[pygit2.Repository] = []
        self._local.opened = opened
        try:
            yield
        finally:
            self._local.opened = previous
            for repository in opened:
                repository.free()

    def open(self, repo: RepoInfo, *, repository: pygit2.Repository | None = None) -> RepoView:
        if repository is None:
            repository = pygit2.Repository(str(repo.path))
            opened = getattr(self._local, "opened", None)
            if opened is not None:
                opened.append(repository)
        return RepoView(repo, repository, self.lfs, max_read=self.max_read, max_entries=self.max_entries)

    def lfs_missing(self, repo_id: int, oids: Iterable[str]) -> set[str]:
        """Of ``oids``, those the repository does not hold (all of them without an LFS store)."""
        oids = set(oids)
        return self.lfs.missing(repo_id, oids) if self.lfs is not None else oids
