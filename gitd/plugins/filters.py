"""Plugins' answers to listing filters (the ``gitd_repo_filter`` hook).

A plugin that indexes repositories (by tag, by library, ...) answers which repositories
match a listing's filters; the Hub listing intersects the answers with what the caller
may read, in SQL. An answer is a collection of repository ids, or a ``RepoIds`` when the
matches may be many: the listing then walks its own order and asks only about the
repositories it is about to show, instead of receiving 100,000 ids.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from gitd.plugins.host import PluginHost

log = logging.getLogger("gitd.plugins")

REPO_FILTER = "gitd_repo_filter"


@dataclass(frozen=True)
class RepoIds:
    """The repositories a filter matches, without listing them all.

    ``count``: how many match (an upper bound will do, and counting may stop past
    ``RepoIds.MANY``); ``all()``: every matching id, asked only when ``count`` is at most
    ``MANY``; ``among(ids)``: which of ``ids`` match (the listing asks in batches of a few
    hundred as it walks its order, when the matches are many).
    """

    MANY: ClassVar[int] = 5000

    count: int
    all: Callable[[], Iterable[int]]
    among: Callable[[Sequence[int]], Iterable[int]]

    @classmethod
    def of(cls, ids: Collection[int]) -> RepoIds:
        known = frozenset(int(i) for i in ids)
        return cls(len(known), lambda: known, lambda batch: [i for i in batch if i in known])


class RepoFilters:
    def __init__(self, plugins: PluginHost):
        self.plugins = plugins

    def active(self) -> bool:
        return bool(self.plugins.implementations(REPO_FILTER))

    def match(self, repo_type: str, filters: dict[str, list[str]]) -> list[RepoIds] | None:
        """Every plugin's answer (each a ``RepoIds``), or None when no plugin handled the
        filters (blocking: call it on a worker thread). A plugin that fails is logged and
        left out; its answer then does not narrow the listing."""
        answers = []
        for name, answer in self.plugins.collect(REPO_FILTER, repo_type=repo_type, filters=filters):
            if isinstance(answer, RepoIds):
                answers.append(answer)
            elif isinstance(answer, Collection) and not isinstance(answer, str | bytes | dict):
                answers.append(RepoIds.of(answer))
            else:
                log.error("plugin %s: gitd_repo_filter answered %s, not ids; ignored", name, type(answer).__name__)
        return answers or None
