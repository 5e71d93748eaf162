"""A commit's changes for its page: which files changed (``RepoView.diff``, bounded, walking
only subtrees that differ), and for text files a unified diff by pygit2 (its C code).
Git LFS files are summarised by their objects (size, sha256), binary and very large
files by their sizes; the page stops adding diffs after a number of files or lines."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pygit2

from gitd.plugins.view import FileChange, LimitExceeded, RepoView
from gitd.web.highlight import SNIFF

CONTEXT = 3


@dataclass
class FileDiff:
    path: str
    change: str  # added | modified | deleted
    kind: str  # text | lfs | binary | large | skipped
    lines: list[tuple[str, int | None, int | None, str]] = field(default_factory=list)  # (op, old n, new n, text)
    added: int = 0
    removed: int = 0
    old: dict[str, Any] | None = None
    new: dict[str, Any] | None = None


@dataclass
class CommitDiff:
    files: list[FileDiff]
    total_files: int
    too_big: bool = False  # more files changed than could be listed
    cut: bool = False  # later files are listed without their lines


def _side(entry) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {"size": entry.size, "oid": entry.oid, "lfs": entry.lfs.oid if entry.lfs is not None else None}


def _blob(repo: pygit2.Repository, entry) -> pygit2.Blob | None:
    return repo[entry.oid] if entry is not None else None


def diff_commit(view: RepoView, parent: str | None, commit: str, *, max_files: int, max_lines: int,
                max_blob: int, max_entries: int = 100_000) -> CommitDiff:
    try:
        changes = view.diff(parent, commit, limit=max_entries)
    except LimitExceeded:
        return CommitDiff([], 0, too_big=True)
    out = CommitDiff([], len(changes))
    budget = max_lines
    repo = view.repository
    for change in changes[:max_files]:
        fd = FileDiff(change.path, change.change, "text", old=_side(change.old), new=_side(change.new))
        out.files.append(fd)
        if (change.old is not None and change.old.lfs is not None) or (change.new is not None and
                                                                        change.new.lfs is not None):
            fd.kind = "lfs"
            continue
        if any(e is not None and e.size > max_blob for e in (change.old, change.new)):
            fd.kind = "large"
            continue
        if budget <= 0:
            fd.kind = "skipped"
            out.cut = True
            continue
        budget -= _text_lines(repo, change, fd, budget)
    out.cut = out.cut or len(changes) > max_files
    return out


def _text_lines(repo: pygit2.Repository, change: FileChange, fd: FileDiff, budget: int) -> int:
    old, new = _blob(repo, change.old), _blob(repo, change.new)
    for blob in (old, new):
        if blob is not None and b"\0" in blob.data[:SNIFF]:
            fd.kind = "binary"
            return 0
    patch = pygit2.Patch.create_from(old, new, old_as_path=change.path, new_as_path=change.path,
                                     context_lines=CONTEXT)
    used = 0
    for hunk in patch.hunks:
        fd.lines.append(("@", None, None, hunk.header.rstrip("\n")))
        for line in hunk.lines:
            if used >= budget:
                fd.lines.append(("…", None, None, "(the rest of this diff is not shown)"))
                return used
            op = {"+": "+", "-": "-"}.get(line.origin, " ")
            if line.origin in ("<", ">", "="):
                continue  # "no newline at end of file" markers
            fd.lines.append((op, line.old_lineno if line.old_lineno >= 0 else None,
                             line.new_lineno if line.new_lineno >= 0 else None,
                             line.content.rstrip("\n")))
            used += 1
            if op == "+":
                fd.added += 1
            elif op == "-":
                fd.removed += 1
    return used
