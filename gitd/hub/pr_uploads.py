"""Whether a Git LFS upload is for a pull request, so that a public repository's readers may
send it (the rule itself: ``Access.require_lfs_upload`` in gitd.access.rules).

On the Hub any signed-in reader of a public repository may open a pull request, LFS files
included. huggingface_hub 2.4 shows which uploads those are in two ways:

- adding to an open pull request (``create_commit(revision="refs/pr/N")``): the batch
  request's ``ref`` names ``refs/pr/N``; it is for that pull request when the caller may
  commit to it (its author, while it is open: ``may_add_to``);
- opening one (``create_commit(create_pr=True)``): the batch request carries no ``ref`` at
  all, but the client asked ``preupload?create_pr=1`` first. ``announce`` records, per
  repository and account, the sizes of the files that preupload sent through LFS, for
  ``ttl`` seconds; a batch without a ``ref`` is for a pull request when every object in
  it has one of those sizes.

A batch whose ``ref`` names a branch (or anything else) is never for a pull request. The
announcements live in this process (bounded, least recently used first out), like the
other in-process state listed in docs/architecture.md.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

from gitd.access.rules import Principal
from gitd.clock import SYSTEM_CLOCK, Clock
from gitd.store import Repo
from gitd.store.discussions import Discussion, Discussions

OPEN = ("open", "draft")


def pr_number(rev: str) -> int | None:
    """N for the revision ``refs/pr/N``, else None."""
    tail = rev.removeprefix("refs/pr/")
    return int(tail) if tail != rev and tail.isascii() and tail.isdigit() and len(tail) < 10 else None


class PullRequestUploads:
    def __init__(self, discussions: Discussions, *, clock: Clock = SYSTEM_CLOCK, ttl: float = 3600,
                 max_callers: int = 10_000, max_sizes: int = 100_000):
        self.discussions = discussions
        self.clock = clock
        self.ttl = ttl
        self.max_callers = max_callers
        self.max_sizes = max_sizes
        self._announced: OrderedDict[tuple[int, int], tuple[float, set[int]]] = OrderedDict()
        self._lock = threading.Lock()

    def pull_request(self, principal: Principal, repo: Repo, num: int) -> Discussion | None:
        """Pull request ``num`` when ``principal`` may commit to it as its author (open), else None."""
        d = self.discussions.get(repo.id, num)
        if d is None or not d.is_pull_request or principal.account is None or d.author != principal.account.name:
            return None
        return d

    def may_add_to(self, principal: Principal, repo: Repo, num: int) -> bool:
        d = self.pull_request(principal, repo, num)
        return d is not None and d.status in OPEN

    def announce(self, principal: Principal, repo: Repo, sizes: Iterable[int]) -> None:
        """A preupload for a new pull request was answered: ``sizes`` go through LFS."""
        if principal.account is None:
            return
        key = (repo.id, principal.account.id)
        now = self.clock.monotonic()
        with self._lock:
            found = self._announced.pop(key, None)
            held = found[1] if found is not None and found[0] > now else set()
            for size in sizes:
                if len(held) >= self.max_sizes:
                    break
                held.add(size)
            self._announced[key] = (now + self.ttl, held)
            while len(self._announced) > self.max_callers:
                self._announced.popitem(last=False)

    def announced(self, principal: Principal, repo: Repo, sizes: Iterable[int]) -> bool:
        """Whether a preupload for a new pull request announced every one of ``sizes``."""
        if principal.account is None:
            return False
        with self._lock:
            found = self._announced.get((repo.id, principal.account.id))
        if found is None or found[0] <= self.clock.monotonic():
            return False
        wanted = set(sizes)
        return bool(wanted) and wanted <= found[1]

    def for_pull_request(self, principal: Principal, repo: Repo, ref: str | None, sizes: Iterable[int]) -> bool:
        """Whether a batch upload naming ``ref`` (None: none) of objects of ``sizes`` is for a
        pull request ``principal`` may open or add to."""
        if ref is None:
            return self.announced(principal, repo, sizes)
        num = pr_number(ref)
        return num is not None and self.may_add_to(principal, repo, num)
