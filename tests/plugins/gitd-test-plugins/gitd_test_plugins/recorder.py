"""Records every hook call. In pre-receive it also reads the pushed commits through
``event.repository`` (pygit2 with the quarantine), proving plugins can see them."""

from __future__ import annotations

from typing import Any

import pygit2

import gitd
from gitd import PushEvent, RepoInfo
from gitd_test_plugins import event_dict, record_dir, write_record


class Recorder:
    def __init__(self, settings: dict[str, Any]):
        self.dir = record_dir(settings)
        self.settings = settings

    @gitd.hookimpl
    def gitd_pre_receive(self, event: PushEvent) -> None:
        repo = event.repository
        commits = {}
        for update in event.updates:
            if update.is_delete:
                continue
            obj = repo.get(update.new)
            commit = obj.peel(pygit2.Commit) if obj is not None else None
            if commit is not None:
                commits[update.new] = {
                    "message": commit.message,
                    "files": sorted(entry.name for entry in commit.tree),
                }
        write_record(self.dir, "pre", {**event_dict(event), "commits": commits,
                                       "quarantine": sorted(event.git_env), "settings": self.settings})

    @gitd.hookimpl
    def gitd_post_receive(self, event: PushEvent) -> None:
        write_record(self.dir, "post", event_dict(event))

    @gitd.hookimpl
    def gitd_repo_created(self, repo: RepoInfo) -> None:
        write_record(self.dir, "created", {"full_name": repo.full_name, "type": repo.type, "id": repo.id,
                                           "path_exists": repo.path.exists()})

    @gitd.hookimpl
    def gitd_repo_deleted(self, repo: RepoInfo) -> None:
        write_record(self.dir, "deleted", {"full_name": repo.full_name, "type": repo.type, "id": repo.id,
                                           "path_exists": repo.path.exists()})

