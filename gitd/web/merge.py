"""Merging a pull request (its ref ``refs/pr/N``) into the repository's default branch:
a fast-forward when the branch has not moved since, else a merge commit (git's
three-way merge of trees, refused on conflicts). New objects go through a quarantine
and git's object checks, and the branch moves through the hook chain, as any API commit."""

from __future__ import annotations

import asyncio
import time

import pygit2

from gitd.errors import Conflict, Forbidden, PushRejected
from gitd.git.quarantine import ObjectQuarantine
from gitd.git.refs import RefConflict
from gitd.git.runner import GitRunner
from gitd.hooks.chain import HookChain
from gitd.plugins.events import RefUpdate, RepoInfo


def _merge_commit(q: ObjectQuarantine, base: str, head: str, author: str, email: str, message: str,
                  git: GitRunner | None) -> str | None:
    """The commit merging ``head`` into ``base`` (``head`` itself for a fast-forward; None when
    there is nothing to merge); Conflict when the trees conflict."""
    repo = q.repository()
    if base == head or repo.descendant_of(base, head):
        return None
    if repo.descendant_of(head, base):
        return head
    index = repo.merge_commits(base, head)
    if index.conflicts is not None:
        paths = sorted({(e.our or e.their or e.ancestor).path for e in index.conflicts if
                        (e.our or e.their or e.ancestor) is not None})
        raise Conflict("the pull request conflicts with the branch in " + ", ".join(paths[:10]) +
                       (" and more" if len(paths) > 10 else "") + "; merge it with git")
    tree = index.write_tree(repo)
    sig = pygit2.Signature(author, email, int(time.time()), 0)
    commit = str(repo.create_commit(None, sig, sig, message, tree, [pygit2.Oid(hex=base), pygit2.Oid(hex=head)]))
    if git is not None:
        q.check(git)
    return commit


async def merge_into(chain: HookChain, info: RepoInfo, base_ref: str, base: str, head: str, *, author: str,
                     email: str, message: str, git: GitRunner | None) -> str | None:
    """Merge commit ``head`` into ``base_ref`` (now at ``base``); the branch's new head, or None
    when ``head`` is already in it."""
    q = await asyncio.to_thread(ObjectQuarantine, info.path)
    try:
        new = await asyncio.to_thread(_merge_commit, q, base, head, author, email, message, git)
        if new is None:
            return None
        try:
            await chain.apply_updates(info, [RefUpdate(base_ref, base, new)], via="api", pusher=author, quarantine=q)
        except RefConflict:
            raise Conflict("the branch moved while merging; try again")
        except PushRejected as exc:
            raise Forbidden(exc.message, code="PushRejected")
        return new
    finally:
        await asyncio.to_thread(q.discard)
