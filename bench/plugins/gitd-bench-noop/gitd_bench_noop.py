"""A gitd plugin that implements every hook and does nothing."""

from __future__ import annotations

from typing import Any

import gitd


class Noop:
    def __init__(self, settings: dict[str, Any]):
        self.settings = settings

    @gitd.hookimpl
    def gitd_pre_receive(self, event: gitd.PushEvent) -> None:
        return None

    @gitd.hookimpl
    def gitd_post_receive(self, event: gitd.PushEvent) -> None:
        return None

    @gitd.hookimpl
    def gitd_repo_created(self, repo: gitd.RepoInfo) -> None:
        return None

    @gitd.hookimpl
    def gitd_repo_deleted(self, repo: gitd.RepoInfo) -> None:
        return None
