"""Repositories: rows in the store plus bare git repositories on disk.

Every creation, deletion, rename and visibility change goes through RepoService, the
same for the CLI and the APIs, so the hook chain always hears about it.
"""

from __future__ import annotations

import logging
import secrets
import shutil
from pathlib import Path

import pygit2

from gitd.hooks.chain import HookChain
from gitd.names import check_name, check_repo_type
from gitd.paths import DataDir
from gitd.plugins.events import RepoInfo
from gitd.store import Account, Accounts, Repo, Repos

log = logging.getLogger("gitd.repos")


def new_bare_repository(path: Path, default_branch: str, hooks: Path) -> Path:
    """A new, empty bare repository configured as gitd serves them, made beside ``path``
    under a temporary name (returned): rename it to ``path`` once it is ready."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    repo = pygit2.init_repository(str(staging), bare=True, initial_head=default_branch)
    cfg = repo.config
    # Pushes made straight into the data dir run our hooks too, which refuse them.
    cfg["core.hooksPath"] = str(hooks)
    cfg["core.logAllRefUpdates"] = True
    cfg["receive.denyNonFastForwards"] = False
    return staging


class RepoService:
    def __init__(self, data: DataDir, accounts: Accounts, rows: Repos, chain: HookChain, *,
                 default_branch: str = "main"):
        self.data = data
        self.accounts = accounts
        self.rows = rows
        self.chain = chain
        self.default_branch = default_branch
        self._paths: dict[int, Path] = {}

    def path(self, repo: Repo) -> Path:
        # A pure function of the id, asked on every request: remembered (Path objects are costly).
        found = self._paths.get(repo.id)
        if found is None:
            if len(self._paths) >= 100_000:
                self._paths.clear()
            found = self._paths[repo.id] = self.data.repo_path(repo.id)
        return found

    def info(self, repo: Repo) -> RepoInfo:
        return RepoInfo(id=repo.id, namespace=repo.namespace, name=repo.name, type=repo.type,
                        private=repo.private, path=self.path(repo), default_branch=repo.default_branch)

    def find(self, repo_type: str, namespace: str, name: str) -> Repo | None:
        return self.rows.find(repo_type, namespace, name)

    def create(self, owner: Account, name: str, repo_type: str = "model", *, private: bool = False) -> Repo:
        check_name(name, "repository name")
        check_repo_type(repo_type)
        repo = self.rows.insert(owner, name, repo_type, private=private, default_branch=self.default_branch)
        try:
            self._init_on_disk(self.path(repo), repo.default_branch)
        except Exception:
            self.rows.delete(repo)
            raise
        self.chain.repo_created(self.info(repo))
        log.info("created %s repository %s (id %d)", repo.type, repo.full_name, repo.id)
        return repo

    def _init_on_disk(self, path: Path, default_branch: str) -> None:
        if path.exists():
            # A leftover from a crash between creating and recording: never reuse it.
            shutil.rmtree(path)
        staging = new_bare_repository(path, default_branch, self.data.hooks)
        staging.rename(path)

    def delete(self, repo: Repo) -> None:
        info = self.info(repo)
        self.rows.delete(repo)
        path = self.path(repo)
        if path.exists():
            trash = self.data.tmp / f"deleted-{repo.id}-{secrets.token_hex(4)}"
            trash.parent.mkdir(parents=True, exist_ok=True)
            path.rename(trash)
            shutil.rmtree(trash, ignore_errors=True)
        self.chain.repo_deleted(info)
        log.info("deleted %s repository %s (id %d)", repo.type, repo.full_name, repo.id)

    def set_private(self, repo: Repo, private: bool) -> Repo:
        changed = self.rows.update(repo, private=private)
        if bool(repo.private) != bool(private):
            self.chain.visibility_changed(self.info(changed))
        return changed

    def move(self, repo: Repo, owner: Account, name: str) -> Repo:
        """Rename or transfer; the path on disk depends only on the id, so nothing moves."""
        check_name(name, "repository name")
        moved = self.rows.update(repo, owner_id=owner.id, name=name)
        if (moved.namespace, moved.name) != (repo.namespace, repo.name):
            self.chain.repo_renamed(self.info(moved), repo.namespace, repo.name)
        return moved
