"""Reading repositories for the Hub API: revisions, tree entries, listings, history.

Everything here is synchronous pygit2 work. The resolve path calls it straight
from the event loop (each lookup is a few microseconds once cached); listings and
history walks go through ``asyncio.to_thread``. pygit2 handles are kept per thread,
and per-commit lookups are cached by commit sha, which never changes meaning.
"""

from __future__ import annotations

import base64
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import pygit2

from gitd.clock import SYSTEM_CLOCK, Clock
from gitd.errors import BadRequest, NotFound
from gitd.git.refname import check_revision
from gitd.git.refs import RefChanges, head_branch
from gitd.http.offload import check_deadline
from gitd.hub.handles import RepoHandles
from gitd.lfs.pointer import MAX_POINTER_SIZE, Pointer, parse_pointer

SHA_RE = re.compile(r"^[0-9a-f]{40}$")
# A short commit sha, as the Hub accepts wherever a revision goes (git's own minimum is 4; 7 is
# what clients print).
SHORT_SHA_RE = re.compile(r"^[0-9a-f]{7,39}$")
FILE_MODES = (pygit2.GIT_FILEMODE_BLOB, pygit2.GIT_FILEMODE_BLOB_EXECUTABLE, pygit2.GIT_FILEMODE_LINK)


# Longest path whose lookup the entry cache keeps (paths-info asks about any path a client names).
CACHED_PATH = 512
# Entries a walk visits unless told otherwise (hub.max_listed_files); see RepoReader.walk.
DEFAULT_WALK = 50_001


# Folders nested deeper than this are listed but not walked into (git repositories never need it;
# trees made to be deep would otherwise cost a stack frame per level).
MAX_WALK_DEPTH = 128


@dataclass
class Walk:
    """What a bounded walk saw: its entries, whether it stopped at its limit (``more``: ``resume``
    continues after its last visited entry) and whether it left anything out (``truncated``:
    stopped at its limit, or folders too deep to walk into)."""

    entries: list[Entry] = field(default_factory=list)
    more: bool = False
    truncated: bool = False
    resume: str | None = None
    visited: int = 0
    last: str = ""
    last_dir: bool = False


class _BudgetSpent(Exception):
    pass


def _make_cursor(path: str, is_dir: bool) -> str:
    return base64.urlsafe_b64encode(f"{'d' if is_dir else 'f'}:{path}".encode()).decode().rstrip("=")


def _parse_cursor(cursor: str | None, under: str) -> tuple[list[str], bool]:
    """A walk cursor's path (relative to ``under``, as parts) and whether it named a folder."""
    if not cursor:
        return [], False
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("invalid cursor")
    kind, _, path = text.partition(":")
    if kind not in ("d", "f") or not path or (under and not path.startswith(under + "/")):
        raise BadRequest("invalid cursor")
    rel = path[len(under) + 1:] if under else path
    parts = rel.split("/")
    if len(parts) > MAX_WALK_DEPTH:
        raise BadRequest("invalid cursor")
    return parts, kind == "d"


def _first_after(tree: pygit2.Tree, key: str, *, inclusive: bool) -> int:
    """The index of the first entry of ``tree`` at or after (``inclusive``) / after ``key`` in git's
    order (folders sort as if their name ended in '/'): a binary search, never a scan."""
    lo, hi = 0, len(tree)
    while lo < hi:
        mid = (lo + hi) // 2
        obj = tree[mid]
        name = obj.name + "/" if obj.type == pygit2.GIT_OBJECT_TREE else obj.name
        if name < key or (not inclusive and name == key):
            lo = mid + 1
        else:
            hi = mid
    return lo


class RevisionNotFound(NotFound):
    code = "RevisionNotFound"


class EntryNotFound(NotFound):
    code = "EntryNotFound"

    def __init__(self, message: str, *, commit: str | None = None, **kw):
        super().__init__(message, **kw)
        self.commit = commit


class Entry(NamedTuple):
    """A path in a commit's tree. A tuple of plain values, so the garbage collector stops tracking it:
    a walk makes up to hub.max_listed_files of them, and every tracked object lengthens each full
    collection, which holds the GIL (and so the event loop) while it runs."""

    path: str
    oid: str
    kind: str  # "file" | "directory"
    size: int  # blob size (the pointer's size for an LFS pointer)
    pointer: Pointer | None = None


def iso(ts: int) -> str:
    """Seconds since the epoch in the Hub's date format (2024-01-01T00:00:00.000Z)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def ref_for(revision: str) -> str:
    """The ref a writable revision names: 'main' -> refs/heads/main; 'refs/pr/1' as is."""
    return revision if revision.startswith("refs/") else f"refs/heads/{revision}"


_SAFE_REF = re.compile(r"^refs/[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$")


def _read_loose_ref(file: str) -> str | None:
    """The object sha a loose ref file holds, read straight from the file (git replaces the
    file atomically, so this is never half-written); None if there is no such file or it
    holds anything else (a symbolic ref): then pygit2 resolves it."""
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        data = os.read(fd, 64).strip()
    except OSError:
        return None
    finally:
        os.close(fd)
    text = data.decode("ascii", "replace")
    return text if SHA_RE.match(text) else None


# A ref file whose timestamps are closer than this to the moment it was read is not cached:
# file times come from a coarse clock (up to a scheduler tick behind), so a file replaced
# within that window could look unchanged to stat. The same "racy timestamp" rule as git's index.
RACY_NS = 50_000_000
# How long a cached ref is trusted without looking at its file, if the daemon moved no ref
# meanwhile: the bound on how late a change made behind the daemon's back is seen.
RECHECK_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class _KnownRef:
    stat: tuple[int, int, int, int, int]
    sha: str
    changes: int  # RefChanges.value when the file was looked at
    until: float  # monotonic time after which the file is looked at again


class LooseRefs:
    """Loose ref files, read without a system call while nothing may have changed.

    A remembered ref is answered as is while the daemon's ``RefChanges`` counter has not
    moved (every push, API commit and mirror update bumps it) and for at most
    ``RECHECK_SECONDS``. After that its file is looked at again with one ``stat``, and
    read only if the stat differs: git replaces a ref file by renaming a new one over it,
    so any update changes its inode number or its times. On this hot path each system
    call costs more than the rest of the lookup (see docs/architecture.md).
    """

    def __init__(self, changes: RefChanges, *, size: int = 10_000, recheck: float = RECHECK_SECONDS,
                 clock: Clock = SYSTEM_CLOCK):
        self.changes = changes
        self.clock = clock
        self.size = size
        self.recheck = recheck
        self._known: dict[str, _KnownRef] = {}

    def get(self, path: Path, name: str) -> str | None:
        if not _SAFE_REF.match(name) or ".." in name or name.endswith(".lock"):
            return None
        file = f"{path}/{name}"
        changes = self.changes.value  # read before the file, so a move after it is not missed
        now = self.clock.monotonic()
        known = self._known.get(file)
        if known is not None and known.changes == changes and now < known.until:
            return known.sha
        try:
            st = os.stat(file, follow_symlinks=False)
        except OSError:
            return None
        key = (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        sha = known.sha if known is not None and known.stat == key else _read_loose_ref(file)
        if sha is not None and self.clock.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > RACY_NS:
            if len(self._known) >= self.size:
                self._known.clear()
            self._known[file] = _KnownRef(key, sha, changes, now + self.recheck)
        return sha


class _LRU(OrderedDict):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def put(self, key, value) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class RepoReader:
    """Read access to bare repositories by path, with per-thread handles and caches."""

    def __init__(self, changes: RefChanges, *, cache_entries: int = 100_000, handles: RepoHandles | None = None):
        # Per-thread pygit2 handles, re-opened when gc replaced the packs (see handles.py).
        self.handles = handles or RepoHandles()
        self._lock = threading.Lock()
        # (path, commit sha, file path) -> Entry | None ; immutable facts, shared by threads.
        self._entries: _LRU = _LRU(cache_entries)
        # (path, object sha) -> the commit it peels to; objects never change.
        self._peeled: _LRU = _LRU(4096)
        self._loose = LooseRefs(changes)

    # -- handles -------------------------------------------------------------------------------
    def open(self, path: Path) -> pygit2.Repository:
        return self.handles.open(path)

    def forget(self, path: Path) -> None:
        self.handles.forget(path)

    # -- revisions -----------------------------------------------------------------------------
    def resolve(self, path: Path, revision: str) -> str:
        """The 40-hex commit a revision (branch, tag, refs/..., full sha) names, or RevisionNotFound."""
        sha = self.try_resolve(path, revision)
        if sha is None:
            raise RevisionNotFound(f"Invalid rev id: {revision}")
        return sha

    def try_resolve(self, path: Path, revision: str) -> str | None:
        check_revision(revision)  # BadRequest for what no ref name can be (too long, control characters)
        repo = self.open(path)
        if SHA_RE.match(revision):
            key = (str(path), revision)
            with self._lock:
                peeled = self._peeled.get(key)
            if peeled is not None:
                return peeled
            try:
                obj = repo[revision]
            except (KeyError, ValueError):
                obj = None
            if obj is not None:
                peeled = self._peel(obj)
                if peeled is not None:
                    with self._lock:
                        self._peeled.put(key, peeled)
                return peeled
        candidates = [revision] if revision.startswith("refs/") else [f"refs/heads/{revision}",
                                                                         f"refs/tags/{revision}"]
        loose = self._loose.get(path, candidates[0])
        if loose is not None:  # a loose ref file wins over packed-refs, as in git; sha -> commit is cached
            return self.try_resolve(path, loose)
        for name in candidates:
            ref = repo.references.get(name)
            if ref is None:
                continue
            try:
                return self._peel(repo[ref.resolve().target])
            except (KeyError, pygit2.GitError):
                return None
        if SHORT_SHA_RE.match(revision):
            # A short commit sha (no branch or tag of that name): the one object it starts, peeled to a
            # commit; an ambiguous or unknown prefix names nothing. Not cached: a prefix unique today
            # may not be tomorrow.
            try:
                return self._peel(repo[revision])
            except (KeyError, ValueError, pygit2.GitError):
                return None
        return None

    @staticmethod
    def _peel(obj) -> str | None:
        try:
            return str(obj.peel(pygit2.Commit).id)
        except (pygit2.InvalidSpecError, ValueError, pygit2.GitError):
            return None

    def head(self, path: Path, ref: str) -> str | None:
        """The commit a ref points at right now (None if it does not exist)."""
        r = self.open(path).references.get(ref)
        return str(r.resolve().target) if r is not None else None

    def default_head(self, path: Path, default_branch: str) -> str | None:
        """The commit of the branch HEAD points to (None for an empty repository)."""
        branch = head_branch(self.open(path)) or default_branch
        return self.head(path, f"refs/heads/{branch}")

    def refs(self, path: Path, prefix: str) -> list[tuple[str, str]]:
        """(ref name, peeled commit) for every ref under ``prefix``, sorted."""
        repo = self.open(path)
        out = []
        for name in sorted(repo.references):
            if not name.startswith(prefix):
                continue
            commit = self._peel(repo[repo.references[name].resolve().target])
            if commit is not None:
                out.append((name, commit))
        return out

    # -- entries -------------------------------------------------------------------------------
    def entry(self, path: Path, commit: str, file_path: str) -> Entry | None:
        """The entry at ``file_path`` in ``commit`` ('' is the root directory)."""
        key = (str(path), commit, file_path)
        with self._lock:
            if key in self._entries:
                return self._entries[key]
        repo = self.open(path)
        tree = repo[commit].peel(pygit2.Tree)
        found: Entry | None
        if file_path == "":
            found = Entry("", str(tree.id), "directory", 0)
        else:
            try:
                obj = tree[file_path]
            except (KeyError, ValueError):
                obj = None
            found = self._make_entry(repo, file_path, obj) if obj is not None else None
        if len(file_path) <= CACHED_PATH:  # client paths: keep what the cache holds small
            with self._lock:
                self._entries.put(key, found)
        return found

    def _make_entry(self, repo: pygit2.Repository, file_path: str, obj) -> Entry | None:
        if obj.type == pygit2.GIT_OBJECT_TREE:
            return Entry(file_path, str(obj.id), "directory", 0)
        if obj.type != pygit2.GIT_OBJECT_BLOB or obj.filemode not in FILE_MODES:
            return None  # submodules are not files
        _, size = repo.odb.read_header(obj.id)
        pointer = None
        if size <= MAX_POINTER_SIZE:
            pointer = parse_pointer(repo.odb.read(obj.id)[1])
        return Entry(file_path, str(obj.id), "file", size, pointer)

    def walk(self, path: Path, commit: str, under: str = "", *, recursive: bool, limit: int = DEFAULT_WALK,
             after: str | None = None, files_only: bool = False, max_entries: int | None = None) -> Walk:
        """Entries below directory ``under`` (depth-first, git order; directories included unless
        ``files_only``), visiting at most ``limit`` entries (a long path counts for more than one).
        ``after`` (a ``Walk.resume`` cursor) continues a walk after its last visited entry, without
        visiting what came before; ``max_entries`` also stops it once it found that many (then
        ``resume`` is not set). Trees are client data: a few objects can describe billions of
        paths, so every walk is bounded, and checks the offload deadline as it goes."""
        repo = self.open(path)
        tree = repo[commit].peel(pygit2.Tree)
        if under:
            tree = tree[under]
        walk = Walk()
        budget = [limit]
        after_parts, after_dir = _parse_cursor(after, under)
        try:
            for entry in self._walk(repo, tree, under, recursive, after_parts, after_dir, budget, walk, 0):
                if entry is not None and not (files_only and entry.kind != "file"):
                    if max_entries is not None and len(walk.entries) >= max_entries:
                        walk.more = walk.truncated = True
                        return walk
                    walk.entries.append(entry)
        except _BudgetSpent:
            walk.more = walk.truncated = True
            walk.resume = _make_cursor(walk.last, walk.last_dir) if walk.last else None
        return walk

    def _walk(self, repo: pygit2.Repository, tree: pygit2.Tree, prefix: str, recursive: bool,
              after: list[str], after_dir: bool, budget: list[int], walk: Walk, depth: int
              ) -> Iterator[Entry | None]:
        if depth > MAX_WALK_DEPTH:
            walk.truncated = True
            return
        start = 0
        if after:
            head, rest = after[0], after[1:]
            if rest or after_dir:  # resume inside (or just below) folder ``head``
                start = _first_after(tree, head + "/", inclusive=True)
                if start < len(tree) and tree[start].name == head and tree[start].type == pygit2.GIT_OBJECT_TREE:
                    if recursive:
                        full = f"{prefix}/{head}" if prefix else head
                        yield from self._walk(repo, tree[start], full, recursive, rest, after_dir, budget, walk,
                                              depth + 1)
                    start += 1
            else:
                start = _first_after(tree, head, inclusive=False)
        for i in range(start, len(tree)):
            obj = tree[i]
            full = f"{prefix}/{obj.name}" if prefix else obj.name
            budget[0] -= 1 + len(full) // 256
            if budget[0] < 0:
                raise _BudgetSpent
            walk.visited += 1
            if walk.visited % 64 == 0:
                check_deadline()
            entry = self._make_entry(repo, full, obj)
            walk.last, walk.last_dir = full, obj.type == pygit2.GIT_OBJECT_TREE
            yield entry
            if recursive and entry is not None and entry.kind == "directory":
                yield from self._walk(repo, obj, full, recursive, [], False, budget, walk, depth + 1)

    def read_blob(self, path: Path, oid: str) -> bytes:
        return self.open(path)[oid].data

    # -- history -------------------------------------------------------------------------------
    def log(self, path: Path, commit: str) -> Iterator[pygit2.Commit]:
        """Commits reachable from ``commit``, newest first."""
        repo = self.open(path)
        yield from repo.walk(repo[commit].id, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.TIME)

    def commit(self, path: Path, commit: str) -> pygit2.Commit:
        return self.open(path)[commit]

    def last_commits(self, path: Path, commit: str, paths: list[str], *, max_walk: int = 10_000
                     ) -> dict[str, pygit2.Commit]:
        """For each path, the newest commit that changed it (one history walk for all)."""
        repo = self.open(path)
        remaining = set(paths)
        found: dict[str, pygit2.Commit] = {}

        def oid_at(tree: pygit2.Tree, p: str):
            try:
                return tree[p].id
            except (KeyError, ValueError):
                return None

        for n, c in enumerate(self.log(path, commit)):
            if not remaining or n >= max_walk:
                break
            if n % 64 == 63:
                check_deadline()  # an expanded listing abandoned by its request stops here
            parent_tree = c.parents[0].tree if c.parents else None
            for p in list(remaining):
                mine = oid_at(c.tree, p)
                theirs = oid_at(parent_tree, p) if parent_tree is not None else None
                if mine != theirs:
                    found[p] = c
                    remaining.discard(p)
        del repo
        return found
