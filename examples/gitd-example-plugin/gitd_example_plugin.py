"""gitd-example-plugin: a complete, minimal gitd plugin.

* pre-receive: refuses a push that adds commits whose subject starts with "WIP"
  to the repository's default branch (other branches may carry work in progress);
* post-receive: appends one JSON line per push to the file named by the
  ``log_file`` setting;
* repo created / deleted: appends a line too.

Settings (``[plugins.pushlog]`` in gitd.toml, or GITD_PLUGINS__PUSHLOG__<KEY>):

    log_file = "/var/lib/gitd/push-log.jsonl"   # required for the log
    wip_prefix = "WIP"                          # "" turns the WIP check off
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import gitd
from gitd import PushEvent, RepoInfo


class PushLog:
    def __init__(self, settings: dict[str, Any]):
        # Settings arrive as the [plugins.pushlog] table; values set through environment
        # variables arrive as strings. Check them here: an exception makes gitd refuse
        # pushes (with the reason in its log) until the configuration is fixed.
        log_file = settings.get("log_file")
        self.log_file = Path(log_file) if log_file else None
        self.wip_prefix = str(settings.get("wip_prefix", "WIP"))
        # Jobs run on several threads at once: guard shared state.
        self.lock = threading.Lock()

    @gitd.hookimpl
    def gitd_pre_receive(self, event: PushEvent) -> None:
        if not self.wip_prefix:
            return
        default = f"refs/heads/{event.repo.default_branch}"
        for update in event.updates:
            if update.ref != default or update.is_delete:
                continue
            # The pushed commits are still in git's quarantine; event.git() and
            # event.repository can read them. List the commits new to the repository:
            for line in event.git_lines("rev-list", update.new, "--not", "--all"):
                commit = event.repository.get(line.decode())
                if commit.message.startswith(self.wip_prefix):
                    raise gitd.PushRejected(
                        f"{event.repo.default_branch} does not take work in progress: commit "
                        f"{commit.short_id} is \"{commit.message.splitlines()[0]}\".\n"
                        f"Push it to another branch, or reword it (git commit --amend)."
                    )

    @gitd.hookimpl
    def gitd_post_receive(self, event: PushEvent) -> None:
        # A durable job: it may run again after a crash, so it must be idempotent.
        # The key names the push (repository and its ref updates); a second run finds it.
        key = f"{event.repo.id}:" + ",".join(f"{ref}:{old}:{new}" for ref, old, new in event.updates)
        self._append(key, {
            "event": "push", "repo": event.repo.full_name, "type": event.repo.type, "pusher": event.pusher,
            "via": event.via, "updates": [list(u) for u in event.updates],
        })

    @gitd.hookimpl
    def gitd_repo_created(self, repo: RepoInfo) -> None:
        self._append(f"created:{repo.id}", {"event": "created", "repo": repo.full_name, "type": repo.type})

    @gitd.hookimpl
    def gitd_repo_deleted(self, repo: RepoInfo) -> None:
        self._append(f"deleted:{repo.id}", {"event": "deleted", "repo": repo.full_name, "type": repo.type})

    def _append(self, key: str, record: dict[str, Any]) -> None:
        if self.log_file is None:
            return
        with self.lock:
            if self.log_file.exists():
                with self.log_file.open(encoding="utf-8") as f:
                    if any(json.loads(line).get("key") == key for line in f if line.strip()):
                        return  # already logged by an earlier run of this job
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            with self.log_file.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"key": key, **record}) + "\n")
