"""Test a gitd plugin in-process: ``PluginHarness`` and the ``gitd_harness`` pytest fixture.

The harness runs the real daemon parts (a data directory, the SQLite store, the hook
chain, the job queue, the LFS store on local disk, the HTTP application) with exactly
one plugin registered, the one under test. It writes commits straight into bare
repositories and moves refs through the hook chain, as a push does, so pre-receive
checks run in-line and post-receive work is queued as jobs that ``run_jobs()`` runs::

    def test_refuses_big_files(gitd_harness):
        h = gitd_harness(MyPlugin, settings={"max_size": "1KiB"})
        repo = h.repo("alice/model")
        with pytest.raises(gitd.PushRejected, match="too big"):
            h.commit(repo, {"big.bin": b"x" * 2000})
        h.commit(repo, {"small.txt": "ok"})
        h.run_jobs()
        assert h.storage.query("SELECT count(*) AS n FROM {prefix}pushes")[0]["n"] == 1

The fixture comes with gitd (a pytest plugin registered through the ``pytest11`` entry
point), so a plugin's tests need no conftest.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Mapping
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pygit2

from gitd.compose import Parts
from gitd.config import Config
from gitd.datainit import init_data_dir
from gitd.jobs.queue import Job
from gitd.lfs.pointer import format_pointer
from gitd.paths import DataDir
from gitd.plugins.events import ZERO_OID, PushEvent, RefUpdate, RepoInfo
from gitd.plugins.host import PluginHost
from gitd.plugins.storage import PluginStorage
from gitd.plugins.view import RepoView

__all__ = ["HarnessResponse", "LfsBytes", "PluginHarness"]


@dataclass(frozen=True)
class LfsBytes:
    """File content to commit as a Git LFS pointer, its object stored in the LFS store."""

    data: bytes
    upload: bool = True  # False: commit the pointer without storing the object


@dataclass(frozen=True)
class HarnessResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class PluginHarness:
    def __init__(self, plugin: Any, root: Path, *, name: str = "plugin", settings: Mapping[str, Any] | None = None,
                 config: Mapping[str, Any] | None = None):
        """``plugin``: the plugin class (instantiated with its context, as the daemon does)
        or object; ``settings``: its ``[plugins.NAME]`` table; ``config``: other settings by
        dotted key (``{"jobs.max_attempts": 1}``)."""
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.name = name
        data = DataDir(self.root)
        lines = ["[hooks]", 'program = "python"', "", f"[plugins.{name}]"]
        lines += [f"{key} = {_toml(value)}" for key, value in (settings or {}).items()]
        data.config_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        init_data_dir(self.root)
        cfg = Config.load(data.config_file)
        for key, value in (config or {}).items():
            cfg.set(key, value)
        self.parts = Parts(data, cfg)
        host = PluginHost(cfg, self.parts.plugin_services())
        self.parts.__dict__["plugins"] = host  # exactly one plugin: the one under test
        host.register(name, plugin)
        self.plugin = host.pm.get_plugin(name)
        self._server: Any = None
        self._session: Any = None

    # -- the plugin's side ----------------------------------------------------------------------
    @property
    def context(self):
        return self.parts.plugins.context(self.name)

    @property
    def storage(self) -> PluginStorage:
        return self.context.storage

    def view(self, repo: RepoInfo) -> RepoView:
        return self.parts.views.open(repo)

    # -- accounts and repositories --------------------------------------------------------------
    def user(self, name: str = "alice", *, admin: bool = False) -> str:
        if self.parts.accounts.find(name) is None:
            self.parts.accounts.create_user(name, is_admin=admin)
        return name

    def token(self, user: str, *, scope: str = "write") -> str:
        account = self.parts.accounts.get(self.user(user), "user")
        return self.parts.auth.create_token(account, f"harness-{time.monotonic_ns()}", scope)

    def repo(self, full_name: str = "alice/model", *, type: str = "model", private: bool = False,
             files: Mapping[str, bytes | str | LfsBytes] | None = None) -> RepoInfo:
        """Create a repository (its namespace becomes a user if it is none yet), with a first
        commit of ``files`` if given."""
        namespace, name = full_name.split("/")
        self.user(namespace)
        row = self.parts.repos.create(self.parts.accounts.get(namespace), name, type, private=private)
        info = self.parts.repos.info(row)
        if files:
            self.commit(info, files, message="initial commit")
        return self.refresh(info)

    def refresh(self, repo: RepoInfo) -> RepoInfo:
        row = self.parts.repo_rows.by_id(repo.id)
        assert row is not None, f"repository {repo.full_name} no longer exists"
        return self.parts.repos.info(row)

    def rename(self, repo: RepoInfo, new_name: str) -> RepoInfo:
        row = self.parts.repo_rows.by_id(repo.id)
        assert row is not None
        owner = self.parts.accounts.get(repo.namespace)
        return self.parts.repos.info(self.parts.repos.move(row, owner, new_name))

    def set_private(self, repo: RepoInfo, private: bool) -> RepoInfo:
        row = self.parts.repo_rows.by_id(repo.id)
        assert row is not None
        return self.parts.repos.info(self.parts.repos.set_private(row, private))

    def delete(self, repo: RepoInfo) -> None:
        row = self.parts.repo_rows.by_id(repo.id)
        assert row is not None
        self.parts.repos.delete(row)

    # -- pushes ----------------------------------------------------------------------------------
    def commit(self, repo: RepoInfo, files: Mapping[str, bytes | str | LfsBytes | None], *,
               branch: str | None = None, message: str = "change", via: str = "http",
               pusher: str | None = None, push_options: list[str] | None = None) -> PushEvent:
        """Commit ``files`` (None deletes a path) on ``branch`` (default: the repository's)
        and move the branch through the hook chain as a push would. Raises
        ``gitd.PushRejected`` when a pre-receive check refuses it (no ref moves)."""
        repo = self.refresh(repo)
        ref = f"refs/heads/{branch or repo.default_branch}"
        repository = pygit2.Repository(str(repo.path))
        existing = repository.references.get(ref)
        parent = repository[existing.resolve().target].peel(pygit2.Commit) if existing is not None else None
        index = pygit2.Index()
        if parent is not None:
            index.read_tree(parent.tree)
        for path, content in files.items():
            if content is None:
                index.remove(path)
                continue
            blob = repository.create_blob(self._content(repo, content))
            index.add(pygit2.IndexEntry(path, blob, pygit2.GIT_FILEMODE_BLOB))
        tree = index.write_tree(repository)
        author = pusher or repo.namespace
        sig = pygit2.Signature(author, f"{author}@example.com")
        new = str(repository.create_commit(None, sig, sig, message, tree, [parent.id] if parent else []))
        return self.update_refs(repo, [RefUpdate(ref, str(parent.id) if parent else ZERO_OID, new)], via=via,
                                pusher=author, push_options=push_options)

    def update_refs(self, repo: RepoInfo, updates: list[RefUpdate], *, via: str = "http",
                    pusher: str | None = None, push_options: list[str] | None = None) -> PushEvent:
        """Move refs through the hook chain (pre-receive, atomic update, post-receive jobs)."""
        chain = self.parts.chain
        return self.parts.portal.run(lambda: chain.apply_updates(repo, updates, via=via, pusher=pusher,
                                                                 push_options=push_options or []))

    def _content(self, repo: RepoInfo, content: bytes | str | LfsBytes) -> bytes:
        if isinstance(content, str):
            return content.encode()
        if isinstance(content, LfsBytes):
            oid = hashlib.sha256(content.data).hexdigest()
            if content.upload:
                lfs = self.parts.lfs

                async def chunks():
                    yield content.data

                self.parts.portal.run(lambda: lfs.receive(repo.id, oid, len(content.data), chunks()))
            return format_pointer(oid, len(content.data))
        return content

    # -- jobs ------------------------------------------------------------------------------------
    def jobs(self, state: str | None = None) -> list[Job]:
        return self.parts.jobs.list(state=state, limit=10_000)

    def run_jobs(self, *, raise_errors: bool = True, max_jobs: int = 1000, due_only: bool = False) -> int:
        """Run every queued job now, in this thread, in order (jobs that queue more jobs
        included); returns how many ran. A job that raises is recorded as a failed attempt and,
        with ``raise_errors``, its exception is raised here. ``due_only``: leave jobs queued
        for later (tasks submitted with a ``delay``, a plugin's periodic work) where they are."""
        queue, ran = self.parts.jobs, 0
        while ran < max_jobs:
            job = queue.claim(due_by=None if due_only else float("inf"))
            if job is None:
                return ran
            ran += 1
            try:
                self.parts.chain.run_job(job)
            except Exception as exc:
                queue.fail(job, f"{type(exc).__name__}: {exc}", permanent=True)
                if raise_errors:
                    raise
            else:
                queue.complete(job)
        raise RuntimeError(f"more than {max_jobs} jobs: does a job keep queueing itself?")

    # -- what the plugin contributes ---------------------------------------------------------------
    def repo_info(self, repo: RepoInfo, commit: str | None = None) -> dict[str, Any]:
        """The fields the plugin adds to the repository's info answer."""
        from gitd.plugins.fields import InfoFields

        repo = self.refresh(repo)
        commit = commit or self.view(repo).head()
        return InfoFields(self.parts.plugins).add(repo, commit, {})

    def http(self, method: str, path: str, *, user: str | None = None, json_body: Any = None,
             body: bytes | None = None, headers: Mapping[str, str] | None = None) -> HarnessResponse:
        """A request to the daemon's HTTP application (the plugin's routes included), signed
        in as ``user`` (with a fresh token) or anonymous."""
        sent = dict(headers or {})
        if user is not None:
            sent["Authorization"] = f"Bearer {self.token(user)}"
        if json_body is not None:
            body = json.dumps(json_body).encode()
            sent.setdefault("Content-Type", "application/json")
        return self.parts.portal.run(lambda: self._request(method, path, sent, body))

    async def _request(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> HarnessResponse:
        from aiohttp import ClientSession
        from aiohttp.test_utils import TestServer

        if self._server is None:
            self._server = TestServer(self.parts.http_app(), host="127.0.0.1")
            await self._server.start_server()
            self._session = ClientSession()
        async with self._session.request(method, self._server.make_url(path), headers=headers, data=body,
                                         allow_redirects=False) as resp:
            return HarnessResponse(resp.status, dict(resp.headers), await resp.read())

    def cli(self, *argv: str) -> tuple[int, str]:
        """Run ``gitd ARGV`` (the plugin's commands included) on the harness's data directory;
        returns (exit status, standard output)."""
        from gitd import cli

        out = io.StringIO()
        with redirect_stdout(out):
            try:
                code = cli.main(["--data", str(self.root), *argv], plugins=self.parts.plugins)
            except SystemExit as exc:
                code = int(exc.code or 0)
        return code, out.getvalue()

    def close(self) -> None:
        if self._server is not None:
            server, session = self._server, self._session

            async def stop() -> None:
                await session.close()
                await server.close()

            self.parts.portal.run(stop)
            self._server = None
        self.parts.close()


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"setting values are booleans, numbers, strings or lists, not {type(value).__name__}")

