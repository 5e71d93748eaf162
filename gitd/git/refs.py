"""Ref reads and atomic ref updates on bare repositories (no work tree)."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path
from typing import Protocol

import pygit2

from gitd.errors import Conflict
from gitd.git.env import git_env
from gitd.plugins.events import ZERO_OID, RefUpdate


class RefChanges(Protocol):
    """A number that changes whenever the daemon moves refs (any push, API commit or mirror
    update). Ref read caches compare it instead of asking the disk on every read (see
    ``gitd.hub.gitread.LooseRefs``). Repository paths come from ids that are never reused,
    so creating or deleting a repository needs no bump.

    The interface of state that several daemon processes would have to share:
    ``InProcessRefChanges`` serves one process; callers only see this protocol."""

    @property
    def value(self) -> int:
        """The current number: equal numbers mean no ref moved in between."""

    def bump(self) -> None:
        """Refs moved (or may have): every reader must look again."""


class InProcessRefChanges:
    """``RefChanges`` for one daemon process."""

    def __init__(self) -> None:
        self._next = itertools.count(1)
        self.value = 0

    def bump(self) -> None:
        self.value = next(self._next)  # one atomic step under the GIL: no two bumps collide


class RefConflict(Conflict):
    """A ref was not at the expected old value (someone else moved it first)."""


def update_refs(repo_path: Path, updates: list[RefUpdate]) -> None:
    """Move every ref in one transaction, each only if it still has its ``old`` value.

    Uses ``git update-ref --stdin`` so the locking is the same as git receive-pack's:
    concurrent API commits and pushes never lose each other's updates.
    """
    lines = ["start"]
    for ref, old, new in updates:
        if not ref.startswith("refs/") or any(c in ref for c in "\0\n "):
            raise ValueError(f"bad ref name {ref!r}")
        if new == ZERO_OID:
            lines.append(f"delete {ref} {old}")
        else:
            lines.append(f"update {ref} {new} {old}")
    lines += ["prepare", "commit"]
    proc = subprocess.run(["git", "update-ref", "--stdin"], input="\n".join(lines).encode() + b"\n",
                          capture_output=True, env=git_env(git_dir=repo_path))
    if proc.returncode != 0:
        raise RefConflict("the branch moved while this change was being made; retry on top of the new head",
                          detail=proc.stderr.decode("utf-8", "replace"))


def head_branch(repo: pygit2.Repository) -> str | None:
    """The branch HEAD points to (even when unborn), e.g. 'main'."""
    try:
        target = repo.references["HEAD"].target
    except KeyError:
        return None
    if isinstance(target, str) and target.startswith("refs/heads/"):
        return target[len("refs/heads/"):]
    return None


def landed_updates(repo_path: Path, updates: list[RefUpdate]) -> list[RefUpdate]:
    """The updates whose ref now has the new value (deleted refs: gone).

    Used after a crash to tell which updates of an interrupted push actually happened.
    """
    try:
        repo = pygit2.Repository(str(repo_path))
    except pygit2.GitError:
        return []
    landed = []
    for update in updates:
        try:
            current = str(repo.references[update.ref].resolve().target)
        except (KeyError, pygit2.GitError):
            current = ZERO_OID
        if current == update.new:
            landed.append(update)
    return landed


def head_left_unborn(repo_path: Path, created_branches: list[str]) -> bool:
    """Whether HEAD names a branch that does not exist and that none of ``created_branches``
    is: then it is for the push's bookkeeping to point HEAD at one of them (a few reads of
    small files; no repository is opened)."""
    if not created_branches:
        return False
    try:
        head = (repo_path / "HEAD").read_text(encoding="utf-8").strip()
    except OSError:
        return False
    if not head.startswith("ref: refs/heads/") or head[5:] in created_branches:
        return False
    ref = head[5:]
    if (repo_path / ref).is_file():
        return False
    try:
        packed = (repo_path / "packed-refs").read_bytes()
    except OSError:
        packed = b""
    return f" {ref}\n".encode() not in packed


def point_unborn_head(repo_path: Path, created_branches: list[str], preferred: str) -> str | None:
    """After a push: if HEAD names a branch that does not exist, point it at a branch that
    was just created (``preferred`` if among them, else the first). Returns the branch HEAD
    was pointed at, or None if HEAD was left alone."""
    if not created_branches:
        return None
    try:  # the common case, cheaply: HEAD names one of the branches just created
        head = (repo_path / "HEAD").read_text(encoding="utf-8").strip()
    except OSError:
        head = ""
    if head.startswith("ref: ") and head[5:] in created_branches:
        return None
    repo = pygit2.Repository(str(repo_path))
    if not repo.head_is_unborn:
        return None
    current = head_branch(repo)
    if current and f"refs/heads/{current}" in repo.references:
        return None
    wanted = f"refs/heads/{preferred}"
    target = wanted if wanted in created_branches else created_branches[0]
    if target not in repo.references:
        return None
    repo.references.create("HEAD", target, force=True)
    return target[len("refs/heads/"):]
