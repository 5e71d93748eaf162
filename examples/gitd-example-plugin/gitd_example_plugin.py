"""gitd-example-plugin: a complete gitd plugin, written against the public plugin API 1.

* pre-receive: refuses a push that adds commits whose subject starts with "WIP" to the
  repository's default branch (other branches may carry work in progress);
* post-receive: records each push (who, how, which refs, how many files it changed on
  the default branch) in the plugin's own table;
* HTTP: ``GET /api/{models,datasets,spaces,codes}/NS/REPO/pushes`` lists a repository's
  pushes to whoever may read it; ``GET /api/plugins/pushlog/mine`` lists the caller's own;
* repository info: ``model_info``/``dataset_info`` answers carry ``"pushes": N``;
* command line: ``gitd pushlog show NS/REPO``.

Settings (``[plugins.pushlog]`` in gitd.toml, or GITD_PLUGINS__PUSHLOG__<KEY>):

    wip_prefix = "WIP"   # "" turns the WIP check off
    keep = 1000          # pushes kept per repository
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass

from gitd import (
    CliCommand,
    HTTPError,
    PluginContext,
    PluginError,
    PluginRequest,
    PushEvent,
    PushRejected,
    RepoInfo,
    RepoRoute,
    Route,
    hookimpl,
)


@dataclass(frozen=True)
class Settings:
    wip_prefix: str = "WIP"
    keep: int = 1000


# The plugin's tables: numbered by position; append new migrations, never edit these.
MIGRATIONS = [
    """CREATE TABLE {prefix}pushes (
        key TEXT PRIMARY KEY,
        repo_id INTEGER NOT NULL,
        repo TEXT NOT NULL,
        type TEXT NOT NULL,
        pusher TEXT,
        via TEXT NOT NULL,
        refs TEXT NOT NULL,
        files_changed INTEGER NOT NULL,
        at REAL NOT NULL
    )""",
    "CREATE INDEX {prefix}pushes_by_repo ON {prefix}pushes (repo_id, at)",
]


class PushLog:
    def __init__(self, context: PluginContext):
        # A bad setting raises SettingsError naming the key: gitd logs it and refuses
        # pushes until the configuration is fixed.
        self.settings = context.settings(Settings)
        self.storage = context.storage
        self.storage.migrate(MIGRATIONS)

    # -- hooks ---------------------------------------------------------------------------------
    @hookimpl
    def gitd_pre_receive(self, event: PushEvent) -> None:
        prefix = self.settings.wip_prefix
        update = event.default_branch_update()
        if not prefix or update is None or update.is_delete:
            return
        # The pushed commits are still in git's quarantine; event.git_lines() and
        # event.view see them. List the commits new to the repository:
        for line in event.git_lines("rev-list", update.new, "--not", "--all"):
            commit = event.view.commit(line.decode())
            if commit.message.startswith(prefix):
                subject = commit.message.splitlines()[0]
                raise PushRejected(
                    f"{event.repo.default_branch} does not take work in progress: commit {commit.id[:7]} "
                    f'is "{subject}".\nPush it to another branch, or reword it (git commit --amend).'
                )

    @hookimpl
    def gitd_post_receive(self, event: PushEvent) -> None:
        # A durable job: it may run again after a crash, so it must be idempotent. The key
        # names the push (repository and ref updates); a second run finds the row.
        key = f"{event.repo.id}:" + ",".join(f"{u.ref}:{u.old}:{u.new}" for u in event.updates)
        main = event.default_branch_update()
        changed = 0
        if main is not None and not main.is_delete:
            changed = len(event.view.diff(None if main.is_create else main.old, main.new))
        refs = json.dumps([[u.ref, u.kind] for u in event.updates])
        with self.storage.transaction() as db:
            db.execute("INSERT OR IGNORE INTO {prefix}pushes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       [key, event.repo.id, event.repo.full_name, event.repo.type, event.pusher, event.via, refs,
                        changed, time.time()])
            db.execute("DELETE FROM {prefix}pushes WHERE repo_id = ? AND key NOT IN (SELECT key FROM {prefix}pushes "
                       "WHERE repo_id = ? ORDER BY at DESC LIMIT ?)",
                       [event.repo.id, event.repo.id, self.settings.keep])

    @hookimpl
    def gitd_repo_deleted(self, repo: RepoInfo) -> None:
        self.storage.execute("DELETE FROM {prefix}pushes WHERE repo_id = ?", [repo.id])

    @hookimpl
    def gitd_repo_info(self, repo: RepoInfo) -> dict:
        # Asked on every info request: answer from the table, never from the repository.
        return {"pushes": self._count(repo.id)}

    @hookimpl
    def gitd_http_routes(self) -> list:
        return [RepoRoute("GET", "/pushes", self.list_pushes, summary="the repository's recorded pushes"),
                Route("GET", "/mine", self.my_pushes, signed_in=True, summary="your own pushes")]

    @hookimpl
    def gitd_cli_commands(self) -> list:
        return [CliCommand("pushlog", "show", "list a repository's recorded pushes", self.show, self.show_arguments)]

    # -- HTTP ----------------------------------------------------------------------------------
    def list_pushes(self, request: PluginRequest) -> list[dict]:
        # gitd has already checked that the caller may read request.repo.
        assert request.repo is not None
        return self._pushes("repo_id = ?", [request.repo.id])

    def my_pushes(self, request: PluginRequest) -> list[dict]:
        mine = []
        for push in self._pushes("pusher = ?", [request.user]):
            try:  # only repositories the caller can still read (one may have gone private)
                request.repository(push["repo"], push["type"])
            except HTTPError:
                continue
            mine.append(push)
        return mine

    # -- command line --------------------------------------------------------------------------
    def show_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("repo", metavar="NS/NAME")

    def show(self, args: argparse.Namespace) -> int:
        repo_id = [p["repo_id"] for p in self._pushes("repo = ?", [args.repo])][:1]
        if not repo_id:
            raise PluginError(f"no pushes recorded for {args.repo}")
        for push in self._pushes("repo_id = ?", repo_id):
            refs = ", ".join(f"{kind} {ref}" for ref, kind in push["refs"])
            print(f"{push['pusher'] or '-'} via {push['via']}: {refs} ({push['files_changed']} file(s) changed)")
        return 0

    # -- storage -------------------------------------------------------------------------------
    def _count(self, repo_id: int) -> int:
        return self.storage.query("SELECT count(*) AS n FROM {prefix}pushes WHERE repo_id = ?", [repo_id])[0]["n"]

    def _pushes(self, where: str, params: list) -> list[dict]:
        rows = self.storage.query(f"SELECT * FROM {{prefix}}pushes WHERE {where} ORDER BY at, rowid", params)
        return [{"repo": r["repo"], "repo_id": r["repo_id"], "type": r["type"], "pusher": r["pusher"], "via": r["via"],
                 "refs": json.loads(r["refs"]), "files_changed": r["files_changed"]} for r in rows]
