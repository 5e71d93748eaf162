"""Builds the daemon's collaborators once, from the data dir and the config.

The CLI and the daemon share this wiring; every collaborator gets what it needs
through its constructor.
"""

from __future__ import annotations

from dataclasses import dataclass

from gitd.access.auth import Authenticator
from gitd.access.rules import Access
from gitd.config import Config
from gitd.git.gateway import GitGateway
from gitd.git.refs import RefChanges
from gitd.git.runner import GitRunner
from gitd.hooks.chain import HookChain
from gitd.hooks.sessions import PushSessions
from gitd.jobs.queue import JobQueue
from gitd.lfs.locks import Locks
from gitd.lfs.objects import ObjectTable
from gitd.lfs.service import LfsService
from gitd.lfs.storage.factory import build_storage
from gitd.metrics import Metrics
from gitd.paths import DataDir
from gitd.plugins.host import PluginHost
from gitd.repos import RepoService
from gitd.store import Accounts, Repos, Store


@dataclass
class Services:
    data: DataDir
    config: Config
    store: Store
    accounts: Accounts
    repo_rows: Repos
    auth: Authenticator
    access: Access
    plugins: PluginHost
    jobs: JobQueue
    chain: HookChain
    repos: RepoService
    git: GitRunner
    sessions: PushSessions
    metrics: Metrics
    lfs: LfsService
    ref_changes: RefChanges  # bumped whenever the daemon moves refs; read caches compare it
    serve: GitGateway  # the one git service runner SSH and Smart HTTP share

    @classmethod
    def build(cls, data: DataDir, config: Config, *, plugins: PluginHost | None = None) -> Services:
        store = Store(data.db_file)
        store.migrate()
        accounts = Accounts(store)
        repo_rows = Repos(store)
        if plugins is None:
            plugins = PluginHost(config).load_entry_points()
        jobs = JobQueue(
            store,
            max_attempts=config.get_int("jobs.max_attempts"),
            backoff_base=config.get_float("jobs.backoff_base"),
            backoff_max=config.get_float("jobs.backoff_max"),
        )
        ref_changes = RefChanges()
        chain = HookChain(plugins, jobs, repo_rows, ref_changes=ref_changes,
                          enabled=config.get_bool("hooks.enabled"),
                          pre_receive_timeout=config.get_float("hooks.pre_receive_timeout"))
        metrics = Metrics()
        git = GitRunner(
            hooks_dir=data.hooks,
            max_processes=config.get_int("git.max_processes"),
            max_per_client=config.get_int("git.max_processes_per_client"),
            max_anonymous=config.get_int("git.max_processes_anonymous"),
            queue_timeout=config.get_float("git.queue_timeout"),
            timeout=float(config.get_int("git.timeout")),
            fsck_objects=config.get_bool("git.fsck_objects"),
        )
        repos = RepoService(data, accounts, repo_rows, chain, default_branch=config.get_str("git.default_branch"))
        access = Access(accounts, anonymous_read=config.get_bool("auth.anonymous_read"))
        sessions = PushSessions(ttl=max(3600.0, float(config.get_int("git.timeout"))))
        return cls(
            data=data,
            config=config,
            store=store,
            accounts=accounts,
            repo_rows=repo_rows,
            auth=Authenticator(accounts, data.secret_key_file.read_bytes()),
            access=access,
            plugins=plugins,
            jobs=jobs,
            chain=chain,
            repos=repos,
            git=git,
            sessions=sessions,
            metrics=metrics,
            lfs=LfsService(ObjectTable(store), build_storage(config, data), Locks(store),
                           max_object_size=config.get_size("lfs.max_object_size"),
                           direct_uploads=config.get_bool("lfs.s3.direct")),
            ref_changes=ref_changes,
            serve=GitGateway(repos, access, git, sessions, metrics, ref_changes=ref_changes,
                           hook_socket=data.hook_socket, hooks_enabled=config.get_bool("hooks.enabled")),
        )

    def close(self) -> None:
        self.store.close()
