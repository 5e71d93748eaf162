"""API commits: real git commits written with pygit2 (no work tree), moved through the hook chain.

The new tree is built from the parent commit's tree, touching only the changed
paths. The ref moves with ``HookChain.apply_updates`` (pre-receive, compare-and-swap,
post-receive), so API commits meet the same policy as pushes and never lose a
concurrent push or commit: if the branch moved meanwhile, the commit is rebuilt on
the new head, unless the client pinned ``parentCommit``, which is then refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pygit2

from gitd.errors import BadRequest, Conflict, Forbidden, GitdError, PushRejected
from gitd.git.quarantine import ObjectQuarantine
from gitd.git.refname import check_branch_name, check_revision
from gitd.git.refs import RefConflict
from gitd.git.runner import GitRunner
from gitd.hooks.chain import HookChain
from gitd.hub.gitread import SHA_RE, EntryNotFound, RepoReader, RevisionNotFound, ref_for
from gitd.ops.diskspace import DiskSpace
from gitd.plugins.events import ZERO_OID, RefUpdate, RepoInfo

MODE_FILE = pygit2.GIT_FILEMODE_BLOB
MODE_EXEC = pygit2.GIT_FILEMODE_BLOB_EXECUTABLE
MAX_ATTEMPTS = 8


class PreconditionFailed(GitdError):
    status = 412
    code = "PreconditionFailed"


@dataclass(frozen=True)
class AddFile:
    path: str
    oid: str


@dataclass(frozen=True)
class DeleteFile:
    path: str


@dataclass(frozen=True)
class DeleteFolder:
    path: str


Op = AddFile | DeleteFile | DeleteFolder


# Characters HFS+ ignores in file names, so that ".g\u200cit" is ".git" on a Mac (git's is_hfs_dotgit).
_HFS_IGNORED = dict.fromkeys([*range(0x200C, 0x2010), *range(0x202A, 0x202F), *range(0x206A, 0x2070), 0xFEFF])
MAX_PATH = 4096


def _is_dotgit(part: str) -> bool:
    """Whether git, Windows (NTFS: trailing dots and spaces, 8.3 short names, streams) or macOS
    (HFS+: ignored code points, any case) would take this path component for ``.git``."""
    name = part.translate(_HFS_IGNORED).lower()
    if name == ".git":
        return True
    for base in (".git", "git~1"):
        if name.startswith(base):
            rest = name[len(base):]
            if rest.strip(". ") == "" or rest.startswith(":"):
                return True
    return False


def is_text(value: str) -> bool:
    """False for a string with lone surrogates: JSON can carry them ("\\ud800"), git cannot."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_path(path: object) -> str:
    """A repository path from a client, refused as git's ``verify_path`` and fsck would: relative,
    no '.', '..' or '.git' components (in any form a file system takes for '.git'), no NUL,
    backslash or control character, at most MAX_PATH characters, UTF-8 (no lone surrogates)."""
    if not isinstance(path, str) or not path or len(path) > MAX_PATH or "\\" in path \
            or any(ord(c) < 32 or ord(c) == 127 for c in path) or not is_text(path):
        raise BadRequest(f"invalid path {path[:200]!r}" if isinstance(path, str) else "invalid path")
    parts = path.strip("/").split("/")
    if path.startswith("/") or any(p in ("", ".", "..") or _is_dotgit(p) for p in parts):
        raise BadRequest(f"invalid path {path[:200]!r}: paths are relative, without '.', '..' or '.git' parts")
    return "/".join(parts)


class _Tree:
    """A tree being edited: loaded from git lazily, only along the touched paths."""

    def __init__(self, repo: pygit2.Repository, tree: pygit2.Tree | None):
        self.repo = repo
        self.items: dict[str, tuple[int, str] | _Tree] = {}
        if tree is not None:
            for obj in tree:
                self.items[obj.name] = (obj.filemode, str(obj.id))

    def child(self, name: str, *, create: bool, full: str, path: str = "") -> _Tree | None:
        item = self.items.get(name)
        if isinstance(item, _Tree):
            return item
        if item is None:
            if not create:
                return None
            sub = _Tree(self.repo, None)
        elif item[0] == pygit2.GIT_FILEMODE_TREE:
            sub = _Tree(self.repo, self.repo[item[1]])
        else:
            if not create:
                return None
            raise BadRequest(f"cannot write {path!r}: {full!r} is a file")
        self.items[name] = sub
        return sub

    def walk_to(self, path: str, *, create: bool) -> tuple[_Tree | None, str]:
        *dirs, leaf = path.split("/")
        node: _Tree | None = self
        done = []
        for d in dirs:
            done.append(d)
            assert node is not None
            node = node.child(d, create=create, full="/".join(done), path=path)
            if node is None:
                return None, leaf
        return node, leaf

    def write(self) -> str | None:
        """Write the tree and its edited subtrees; None when it ends up empty."""
        builder = self.repo.TreeBuilder()
        count = 0
        for name, item in self.items.items():
            if isinstance(item, _Tree):
                oid = item.write()
                if oid is None:
                    continue
                builder.insert(name, pygit2.Oid(hex=oid), pygit2.GIT_FILEMODE_TREE)
            else:
                builder.insert(name, pygit2.Oid(hex=item[1]), item[0])
            count += 1
        return str(builder.write()) if count else None


def build_tree(repo: pygit2.Repository, parent: str | None, ops: list[Op]) -> str:
    root = _Tree(repo, repo[parent].peel(pygit2.Tree) if parent else None)
    for op in ops:
        if isinstance(op, AddFile):
            node, leaf = root.walk_to(op.path, create=True)
            assert node is not None
            old = node.items.get(leaf)
            if isinstance(old, _Tree) or (isinstance(old, tuple) and old[0] == pygit2.GIT_FILEMODE_TREE):
                raise BadRequest(f"cannot write file {op.path!r}: a folder has that name")
            mode = MODE_EXEC if isinstance(old, tuple) and old[0] == MODE_EXEC else MODE_FILE
            node.items[leaf] = (mode, op.oid)
        elif isinstance(op, DeleteFile):
            node, leaf = root.walk_to(op.path, create=False)
            item = node.items.get(leaf) if node is not None else None
            if item is None:
                raise EntryNotFound(f"A file with this name doesn't exist: {op.path}")
            # A folder named by deletedFile goes with everything in it, as on the Hub (and `git rm -r`):
            # huggingface_hub's delete_file sends deletedFile for a path without a trailing slash.
            del node.items[leaf]  # type: ignore[union-attr]
        else:
            if op.path == "":
                root.items.clear()
                continue
            node, leaf = root.walk_to(op.path, create=False)
            item = node.items.get(leaf) if node is not None else None
            if item is None or (isinstance(item, tuple) and item[0] != pygit2.GIT_FILEMODE_TREE):
                raise EntryNotFound(f"A folder with this name doesn't exist: {op.path}")
            del node.items[leaf]  # type: ignore[union-attr]
    oid = root.write()
    if oid is None:
        oid = str(repo.TreeBuilder().write())
    return oid


def make_commit(repo: pygit2.Repository, parent: str | None, ops: list[Op], *, author: str, email: str,
                message: str) -> str:
    """Write the commit of ``ops`` on ``parent`` (None: a root commit), moving no ref; its sha."""
    tree = build_tree(repo, parent, ops)
    sig = pygit2.Signature(author, email, int(time.time()), 0)
    parents = [pygit2.Oid(hex=parent)] if parent else []
    return str(repo.create_commit(None, sig, sig, message, pygit2.Oid(hex=tree), parents))


class CommitWriter:
    def __init__(self, chain: HookChain, reader: RepoReader, *, email_domain: str = "users.noreply.gitd",
                 git: GitRunner | None = None, disk: DiskSpace | None = None):
        self.chain = chain
        self.disk = disk  # below its watermark, commits are refused (507) before anything is written
        self.reader = reader
        self.email_domain = email_domain
        self.git = git  # for git's object checks on new objects (as pushes get); None: unchecked
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    @contextlib.asynccontextmanager
    async def quarantine(self, path: Path) -> AsyncIterator[ObjectQuarantine]:
        """Where one commit's new objects are written; whatever is not committed is removed on exit."""
        if self.disk is not None:
            self.disk.check()
        q = await asyncio.to_thread(ObjectQuarantine, path)
        try:
            yield q
        finally:
            await asyncio.to_thread(q.discard)

    async def write_blob(self, q: ObjectQuarantine, data: bytes) -> str:
        return await asyncio.to_thread(q.write_blob, data)

    def _make_commit(self, q: ObjectQuarantine, parent: str | None, ops: list[Op], author: str,
                     message: str) -> str:
        new = make_commit(q.repository(), parent, ops, author=author, email=f"{author}@{self.email_domain}",
                          message=message)
        if self.git is not None:
            q.check(self.git)
        return new

    async def commit_to_branch(self, q: ObjectQuarantine, info: RepoInfo, rev: str, ops: list[Op], *,
                               author: str, message: str, parent_commit: str | None = None) -> str:
        """The one API commit to a branch (the Hub's NDJSON commit, the native API's JSON commit
        and upload): never onto a commit sha; in an empty repository the branch is created, and
        the hook chain's bookkeeping makes it HEAD, as after a first push."""
        check_revision(rev)
        if SHA_RE.match(rev):
            raise BadRequest("commits go to a branch, not to a commit sha")
        ref = ref_for(rev)
        creating = ref.startswith("refs/heads/") and not self.reader.refs(info.path, "refs/heads/")
        if creating:
            check_branch_name(ref.removeprefix("refs/heads/"))
        return await self.commit(q, info, ref, ops, author=author, message=message, parent_commit=parent_commit,
                                 may_create=creating)

    async def commit(self, q: ObjectQuarantine, info: RepoInfo, ref: str, ops: list[Op], *, author: str,
                     message: str, parent_commit: str | None = None, may_create: bool = False,
                     start_point: str | None = None) -> str:
        """Commit ``ops`` on top of ``ref`` and move it; returns the new commit sha.

        ``may_create`` lets a missing ref be created (from ``start_point``, or as a root
        commit). ``parent_commit`` (a sha or prefix) must be the ref's head.
        """
        if not is_text(message):  # a lone surrogate ("\ud800" in JSON): pygit2 cannot encode it
            raise BadRequest("the commit message must be valid Unicode text")
        # One API commit per ref at a time in this daemon, so they queue instead of racing;
        # the compare-and-swap still guards against pushes arriving meanwhile.
        key = f"{info.path}\0{ref}"
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:
            return await self._commit(q, info, ref, ops, author=author, message=message,
                                      parent_commit=parent_commit, may_create=may_create, start_point=start_point)

    async def _commit(self, q: ObjectQuarantine, info: RepoInfo, ref: str, ops: list[Op], *, author: str,
                      message: str,
                      parent_commit: str | None, may_create: bool, start_point: str | None) -> str:
        for _ in range(MAX_ATTEMPTS):
            head = self.reader.head(info.path, ref)
            if head is None and not may_create:
                raise RevisionNotFound(f"Invalid rev id: {ref.removeprefix('refs/heads/')}")
            base = head if head is not None else start_point
            if parent_commit is not None and (base is None or not base.startswith(parent_commit.lower())):
                raise PreconditionFailed(
                    f"parentCommit {parent_commit} is not the head of {ref.removeprefix('refs/heads/')} "
                    f"(the head is {base}); fetch the new head and commit again"
                )
            new = await asyncio.to_thread(self._make_commit, q, base, ops, author, message)
            try:
                await self.chain.apply_updates(info, [RefUpdate(ref, head or ZERO_OID, new)], via="api",
                                               pusher=author, quarantine=q)
            except RefConflict:
                if parent_commit is not None:
                    raise PreconditionFailed(f"{ref} moved while committing; parentCommit {parent_commit} "
                                             "is no longer its head")
                continue
            except PushRejected as exc:
                raise Forbidden(exc.message, code="PushRejected")
            return new
        raise Conflict("the branch kept moving while committing; try again")
