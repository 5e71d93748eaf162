"""The composition root: the one place that builds gitd's collaborators from the config.

``Parts(data, config)`` builds each collaborator the first time it is asked for and keeps
it, so a CLI command builds only what it uses (``gitd user add`` opens the store and
nothing else) and the daemon builds everything once. Nothing receives ``Parts`` itself:
each collaborator gets exactly what it uses through its constructor. Only the entry
points (``gitd.cli`` and ``gitd.server``) hold a ``Parts``.

State that several daemon processes would have to share is built here behind one
interface each (``PushSessions``, ``RefChanges``, the store's change stamp behind the
caches), so a multi-process deployment would change the lines below, not the callers.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from gitd.access.auth import Authenticator
from gitd.access.rules import Access
from gitd.clock import SYSTEM_CLOCK, Clock
from gitd.config import Config
from gitd.git.fsck import fsck_settings
from gitd.git.gateway import GitGateway
from gitd.git.refs import InProcessRefChanges, RefChanges
from gitd.git.runner import GitRunner
from gitd.hooks.chain import HookChain
from gitd.hooks.sessions import InProcessPushSessions, PushSessions
from gitd.jobs.queue import JobQueue
from gitd.metrics import Metrics
from gitd.names import REPO_TYPES
from gitd.paths import DataDir
from gitd.plugins.context import PluginServices
from gitd.plugins.events import RepoInfo
from gitd.plugins.host import PluginHost
from gitd.portal import Portal
from gitd.repos import RepoService
from gitd.store import Accounts, Repos, Store

if TYPE_CHECKING:
    from aiohttp import web

    from gitd.hooks.api import HookAPI
    from gitd.http.hosts import HostRoutes
    from gitd.http.offload import Offload
    from gitd.http.relay_lane import RelayLane
    from gitd.http.routing import Router
    from gitd.http.rpc_body import BodyLimits
    from gitd.hub.commits import CommitWriter
    from gitd.hub.common import RepoCtx
    from gitd.hub.files import HubFiles
    from gitd.hub.gitread import RepoReader
    from gitd.hub.pr_uploads import PullRequestUploads
    from gitd.hub.seed import RepoSeeder
    from gitd.hub.webhook_events import WebhookEvents
    from gitd.jobs.workers import JobWorkers
    from gitd.lfs.service import LfsService
    from gitd.limits.connections import ConnectionLimiter
    from gitd.limits.rates import RateLimits
    from gitd.ops.diskspace import DiskSpace
    from gitd.ops.scheduler import Periodic
    from gitd.plugins.secrets import PluginSecrets
    from gitd.plugins.view import RepoViews
    from gitd.plugins.writer import RepoWriter
    from gitd.ssh.server import SSHTransport
    from gitd.store.discussions import Discussion
    from gitd.store.lastused import LastUsed
    from gitd.web.site import WebSite


class Parts:
    def __init__(self, data: DataDir, config: Config, *, plugins: PluginHost | None = None,
                 clock: Clock = SYSTEM_CLOCK):
        self.data = data
        self.config = config
        self.clock = clock
        if plugins is not None:
            self.__dict__["plugins"] = plugins

    # -- the store and accounts ------------------------------------------------------------------
    @cached_property
    def store(self) -> Store:
        store = Store(self.data.db_file, busy_timeout=self.config.get_float("database.busy_timeout"))
        store.migrate()
        return store

    @cached_property
    def last_used(self) -> LastUsed:
        """When tokens were last used: written in the background, never on a request's path."""
        from gitd.store.lastused import LastUsed

        return LastUsed(self.store)

    @cached_property
    def pr_uploads(self) -> PullRequestUploads:
        """Which Git LFS uploads are for a pull request (a public repository's readers may send those):
        shared by the Hub's preupload and the LFS batch API."""
        from gitd.hub.pr_uploads import PullRequestUploads
        from gitd.store.discussions import Discussions

        return PullRequestUploads(Discussions(self.store), clock=self.clock,
                                  ttl=max(600, self.config.get_int("lfs.href_ttl")))

    @cached_property
    def accounts(self) -> Accounts:
        return Accounts(self.store)

    @cached_property
    def repo_rows(self) -> Repos:
        return Repos(self.store)

    @cached_property
    def auth(self) -> Authenticator:
        return Authenticator(self.accounts, self.data.secret_key_file.read_bytes(), clock=self.clock,
                             record_use=self.last_used.token_used)

    @cached_property
    def access(self) -> Access:
        from gitd.store.gates import RepoGates

        return Access(self.accounts, anonymous_read=self.config.get_bool("auth.anonymous_read"),
                      gates=RepoGates(self.store))

    # -- plugins, jobs and the hook chain ---------------------------------------------------------
    @cached_property
    def plugins(self) -> PluginHost:
        host = PluginHost(self.config, self.plugin_services()).load_entry_points()
        from gitd.store.webhooks import Webhooks

        if host.enabled("webhooks") and Webhooks(self.store).exist():
            host.register("webhooks", self._webhook_events(host))
        return host

    def _webhook_events(self, host: PluginHost) -> WebhookEvents:
        from gitd.hub.webhook_events import WebhookEvents
        from gitd.store.webhooks import Webhooks

        return WebhookEvents(host.context("webhooks"), Webhooks(self.store), self.accounts, self.repo_rows,
                             self.access, public_url=self.config.get_str("server.public_url"))

    def start_webhooks(self) -> None:
        """The daemon's webhook deliveries are the built-in plugin ``webhooks`` (gitd.hub.webhook_events),
        registered once a webhook exists: repository events reach it as plugin hooks, each delivery is
        its own durable task. Until then it adds no job to any push."""
        host = self.plugins
        if host.enabled("webhooks") and not host.pm.has_plugin("webhooks"):
            host.register("webhooks", self._webhook_events(host))

    def webhook_events(self) -> WebhookEvents | None:
        from gitd.hub.webhook_events import WebhookEvents

        found = self.plugins.pm.get_plugin("webhooks")
        return found if isinstance(found, WebhookEvents) else None

    def plugin_services(self) -> PluginServices:
        """What every plugin's context offers, each part made on first use."""
        from gitd.plugins.storage import PluginStorage

        def storage(name: str) -> PluginStorage:
            _ = self.store  # the database exists and is migrated
            return PluginStorage(self.data.db_file, name)

        def submit(plugin: str, repo: RepoInfo | None, task: str, payload: dict, key: str | None,
                   delay: float) -> int | None:
            return self.chain.submit_task(plugin, repo, task, payload, key, delay)

        def find_repo(full_name: str, repo_type: str | None) -> RepoInfo | None:
            ns, _, name = full_name.partition("/")
            types = [repo_type] if repo_type else list(REPO_TYPES)
            found = [r for t in types if (r := self.repos.find(t, ns, name)) is not None]
            return self.repos.info(found[0]) if found else None

        def list_repos(repo_type: str | None) -> list[RepoInfo]:
            return [self.repos.info(r) for r in self.repo_rows.list(repo_type=repo_type)]

        def writer(repo: RepoInfo, plugin: str) -> RepoWriter:
            from gitd.plugins.writer import RepoWriter, apply_through

            return RepoWriter(repo, apply=apply_through(self.portal, self.chain), lfs=self.lfs, portal=self.portal,
                              author=plugin)

        def secrets(name: str) -> PluginSecrets:
            from gitd.plugins.secrets import PluginSecrets

            return PluginSecrets(self.data.secrets / "plugins.key", name)

        def create_repo(full_name: str, repo_type: str, private: bool) -> RepoInfo:
            ns, _, name = full_name.partition("/")
            return self.repos.info(self.repos.create(self.accounts.get(ns), name, repo_type, private=private))

        def cache_dir(name: str) -> Path:
            path = self.data.plugin_dir(name)
            path.mkdir(parents=True, exist_ok=True)
            return path

        def progress(text: str) -> bool:
            return self.jobs.report_progress(text)

        def access_token(repo: RepoInfo, level: str, ttl: float) -> str:
            from gitd.access.rules import AccessLevel

            return self.auth.sign_daemon(repo.id, AccessLevel.WRITE if level == "write" else AccessLevel.READ, ttl)

        from gitd.plugins.gitcmd import GitCommands

        git = GitCommands(fsck_settings(self.config), self.data.run / "no-hooks")
        return PluginServices(storage=storage, views=lambda: self.views, submit=submit, find_repo=find_repo,
                              list_repos=list_repos, writer=writer, git=git, secrets=secrets,
                              create_repo=create_repo, cache_dir=cache_dir, progress=progress,
                              access_token=access_token)

    @cached_property
    def portal(self) -> Portal:
        """Runs the daemon's coroutines for code on worker threads (plugins)."""
        return Portal()

    @cached_property
    def views(self) -> RepoViews:
        """Read-only repository views for plugins, with LFS content read through the LFS store."""
        from gitd.plugins.view import RepoViews, ServiceLfsReader

        return RepoViews(ServiceLfsReader(self.lfs, self.portal))

    @cached_property
    def jobs(self) -> JobQueue:
        cfg = self.config
        return JobQueue(self.store, max_attempts=cfg.get_int("jobs.max_attempts"),
                        backoff_base=cfg.get_float("jobs.backoff_base"), backoff_max=cfg.get_float("jobs.backoff_max"))

    @cached_property
    def ref_changes(self) -> RefChanges:
        return InProcessRefChanges()

    @cached_property
    def chain(self) -> HookChain:
        return HookChain(self.plugins, self.jobs, self.repo_rows, ref_changes=self.ref_changes,
                         enabled=self.config.get_bool("hooks.enabled"),
                         pre_receive_timeout=self.config.get_float("hooks.pre_receive_timeout"),
                         views=self.views, intent_grace=self.config.get_float("hooks.intent_grace"))

    @cached_property
    def repos(self) -> RepoService:
        return RepoService(self.data, self.accounts, self.repo_rows, self.chain,
                           default_branch=self.config.get_str("git.default_branch"))

    # -- resources the daemon watches ------------------------------------------------------------
    @cached_property
    def disk(self) -> DiskSpace:
        """Free space under the data directory (and a local LFS store), with the watermark
        below which writes are refused ([server] min_free_space)."""
        from gitd.ops.diskspace import DiskSpace

        paths = [self.data.root, self.data.repos]
        if self.config.get_str("lfs.backend") == "local":
            paths.append(self.data.lfs)
        return DiskSpace(paths, self.config.get_size("server.min_free_space"), clock=self.clock)

    # -- git -------------------------------------------------------------------------------------
    @cached_property
    def metrics(self) -> Metrics:
        return Metrics()

    @cached_property
    def git(self) -> GitRunner:
        cfg = self.config
        return GitRunner(hooks_dir=self.data.hooks, max_processes=cfg.get_int("git.max_processes"),
                         timeout=float(cfg.get_int("git.timeout")), fsck=fsck_settings(cfg),
                         max_per_client=cfg.get_int("git.max_processes_per_client"),
                         max_anonymous=cfg.get_int("git.max_processes_anonymous"),
                         queue_timeout=cfg.get_float("git.queue_timeout"))

    @cached_property
    def sessions(self) -> PushSessions:
        return InProcessPushSessions(ttl=max(3600.0, float(self.config.get_int("git.timeout"))), clock=self.clock)

    @cached_property
    def gateway(self) -> GitGateway:
        """The one git service gateway Smart HTTP and SSH share."""
        return GitGateway(self.repos, self.access, self.git, self.sessions, self.metrics,
                          ref_changes=self.ref_changes, hook_socket=self.data.hook_socket,
                          hooks_enabled=self.config.get_bool("hooks.enabled"), disk=self.disk)

    # -- LFS -------------------------------------------------------------------------------------
    @cached_property
    def lfs(self) -> LfsService:
        from gitd.lfs.locks import Locks
        from gitd.lfs.objects import ObjectTable
        from gitd.lfs.service import LfsService
        from gitd.lfs.storage.base import LocalFiles
        from gitd.lfs.storage.factory import build_storage

        cfg = self.config
        storage = build_storage(cfg, self.data, clock=self.clock)
        return LfsService(ObjectTable(self.store), storage, Locks(self.store),
                          max_object_size=cfg.get_size("lfs.max_object_size"),
                          direct_uploads=cfg.get_bool("lfs.s3.direct"),
                          disk=self.disk if isinstance(storage, LocalFiles) else None)

    # -- reading and writing repositories ------------------------------------------------------
    @cached_property
    def reader(self) -> RepoReader:
        from gitd.hub.gitread import RepoReader
        from gitd.hub.handles import RepoHandles

        handles = RepoHandles(max_age=self.config.get_float("hub.handle_max_age"), clock=self.clock)
        return RepoReader(self.ref_changes, cache_entries=self.config.get_int("hub.resolve_cache_entries"),
                          handles=handles)

    @cached_property
    def commit_writer(self) -> CommitWriter:
        from gitd.hub.commits import CommitWriter

        return CommitWriter(self.chain, self.reader, email_domain=self.config.get_str("hub.commit_email_domain"),
                            git=self.git, disk=self.disk)

    @cached_property
    def seeder(self) -> RepoSeeder:
        """Creates repositories with their first commit, as on the Hub."""
        from gitd.hub.seed import RepoSeeder

        return RepoSeeder(self.repos, self.commit_writer)

    @cached_property
    def offload(self) -> Offload:
        """Runs work on client-controlled data (cards, trees, big JSON) off the loop, with a time limit."""
        from gitd.http.offload import Offload

        return Offload(workers=self.config.get_int("server.offload_threads"),
                       limit=self.config.get_float("server.offload_timeout"))

    # -- the daemon's front doors ---------------------------------------------------------------
    def router(self) -> Router:
        """Every HTTP route: operations, the Hub and native APIs, Smart HTTP, LFS."""
        from gitd.http.capabilities import CapabilityCache
        from gitd.http.lfs import LfsHTTP
        from gitd.http.lfs_locks import LfsLocksHTTP
        from gitd.http.ops import Ops
        from gitd.http.plugin_routes import PluginRoutes
        from gitd.http.routing import Router
        from gitd.http.smart import SmartHTTP

        cfg = self.config
        router = Router()
        Ops(self.store, self.metrics, self.git.slots, disk=self.disk, storage=self.lfs.storage.health,
            clock=self.clock).add_routes(router)
        plugin_routes = PluginRoutes(self.plugins, self.repos, self.access, self.views,
                                     timeout=cfg.get_float("plugins.http_timeout"),
                                     public_url=cfg.get_str("server.public_url"), auth=self.auth)
        # /api/plugins/NAME/... belongs to the plugins: before the Hub's /api/{types}/{ns}/{name}.
        plugin_routes.add_plugin_routes(router)
        # The Hub API first: its /api/... and /{repo}/resolve/... routes must win over the git routes.
        files = self._add_hub_routes(router)
        SmartHTTP(self.gateway, CapabilityCache(), self.body_limits()).add_routes(router)
        LfsHTTP(self.repos, self.access, self.auth, self.lfs, self.metrics,
                public_url=cfg.get_str("server.public_url"), href_ttl=cfg.get_int("lfs.href_ttl"),
                max_batch_objects=cfg.get_int("lfs.max_batch_objects"),
                multipart_threshold=cfg.get_size("lfs.multipart_threshold"),
                multipart_chunk_size=cfg.get_size("lfs.multipart_chunk_size"),
                pr_uploads=self.pr_uploads).add_routes(router)
        LfsLocksHTTP(self.repos, self.access, self.lfs).add_routes(router)
        # Plugins' repository routes last: the daemon's own routes win over them.
        plugin_routes.add_repo_routes(router)
        if cfg.get_bool("web.enabled"):
            # The web UI's pages after every API and git route: those keep their paths.
            self.web_site(files).add_routes(router)
        return router

    def web_site(self, files: HubFiles) -> WebSite:
        """The web UI (gitd/web): server-rendered pages, browser sessions, plugins' tabs."""
        from gitd.access.passwords import Passwords
        from gitd.hub.files import FileView
        from gitd.hub.listing import RepoListing
        from gitd.plugins.fields import InfoFields
        from gitd.plugins.filters import RepoFilters
        from gitd.store.comments import Comments
        from gitd.store.discussions import Discussions
        from gitd.store.redirects import Redirects
        from gitd.web.core import WebCore, WebSettings
        from gitd.web.login import LoginLimiter
        from gitd.web.render import Renderer
        from gitd.web.sessions import WebSessions
        from gitd.web.site import WebSite
        from gitd.web.tabs import WebTabs

        cfg = self.config
        public_url = cfg.get_str("server.public_url")
        settings = WebSettings(public_url=public_url, tree_page=cfg.get_int("web.tree_page"),
                               list_page=cfg.get_int("web.list_page"), max_view=cfg.get_size("web.max_file_view"),
                               max_highlight=cfg.get_size("web.max_highlight"), max_edit=cfg.get_size("web.max_edit"),
                               regular_upload_max=cfg.get_size("hub.regular_upload_max"),
                               max_upload_files=cfg.get_int("web.max_upload_files"))
        sessions = WebSessions(self.store, self.data.secret_key_file.read_bytes(),
                               ttl=cfg.get_float("web.session_ttl"), public_url=public_url, clock=self.clock)
        redirects = Redirects(self.store)
        core = WebCore(self.repos, self.access, self.accounts, self.auth, sessions, Renderer(), self.reader,
                       self.offload, WebTabs(self.plugins), settings, redirects=redirects)
        return WebSite(core, repo_rows=self.repo_rows, view=FileView(self.lfs, url_ttl=cfg.get_int("lfs.href_ttl")),
                       files=files, fields=InfoFields(self.plugins),
                       listing=RepoListing(self.repo_rows, RepoFilters(self.plugins)), views=self.views,
                       chain=self.chain, writer=self.commit_writer, lfs=self.lfs, passwords=Passwords(self.accounts),
                       limiter=LoginLimiter(cfg.get_int("web.login_attempts"), cfg.get_float("web.login_window")),
                       discussions=Discussions(self.store), comments=Comments(self.store), redirects=redirects,
                       git=self.git, tmp=self.data.tmp, email_domain=cfg.get_str("hub.commit_email_domain"),
                       max_object_size=cfg.get_size("lfs.max_object_size"),
                       plugin_timeout=cfg.get_float("plugins.http_timeout"))

    def _add_hub_routes(self, router: Router) -> HubFiles:
        from gitd.hub.collections import HubCollections
        from gitd.hub.discussion_actions import DiscussionActions
        from gitd.hub.discussions import PullRequests
        from gitd.hub.files import FileView, HubFiles
        from gitd.hub.gating import HubGating
        from gitd.hub.history import HubHistory
        from gitd.hub.info import HubInfo
        from gitd.hub.likes import HubLikes
        from gitd.hub.manage import HubManage
        from gitd.hub.native import NativeAPI
        from gitd.hub.native_accounts import NativeAccounts
        from gitd.hub.repo_upkeep import HubUpkeep
        from gitd.hub.upload import HubUploads, UploadPlanner
        from gitd.hub.user_repos import HubUserRepos
        from gitd.hub.webhooks import HubWebhooks
        from gitd.plugins.fields import InfoFields
        from gitd.plugins.filters import RepoFilters
        from gitd.store.collections import Collections
        from gitd.store.comments import Comments
        from gitd.store.discussion_events import DiscussionEvents
        from gitd.store.discussions import Discussions
        from gitd.store.likes import Likes
        from gitd.store.redirects import Redirects
        from gitd.store.webhooks import Webhooks

        cfg = self.config
        repos, access, reader = self.repos, self.access, self.reader
        view = FileView(self.lfs, url_ttl=cfg.get_int("lfs.href_ttl"))
        common = {"public_url": cfg.get_str("server.public_url"), "redirects": Redirects(self.store),
                  "offload": self.offload}
        max_card_size, max_paths = cfg.get_size("hub.max_card_size"), cfg.get_int("hub.max_paths_info")
        prs = PullRequests(repos, access, Discussions(self.store), reader, self.chain, comments=Comments(self.store),
                           events=DiscussionEvents(self.store), **common)
        files = HubFiles(repos, access, reader, view, max_paths=max_paths, **common)
        files.add_resolve_route(router)
        # /api/settings/webhooks and /api/v1/... first: the Hub's /api/{types}/{ns}/{name} patterns would
        # match them too.
        HubWebhooks(Webhooks(self.store), self.accounts, self.repo_rows, access,
                    on_create=self.start_webhooks).add_routes(router)
        HubCollections(Collections(self.store), self.accounts, self.repo_rows, access).add_routes(router)
        HubUserRepos(repos, self.repo_rows, self.accounts, access, self.store).add_routes(router)
        likes = Likes(self.store)
        HubLikes(repos, access, self.accounts, self.repo_rows, likes, **common).add_routes(router)

        async def tell_webhooks(ctx: RepoCtx, d: Discussion, action: str, comment: dict | None) -> None:
            events = self.webhook_events()
            if events is not None:
                await events.discussion_listener(ctx, d, action, comment)

        prs.listeners.append(tell_webhooks)
        accounts_api = NativeAccounts(self.accounts, self.auth, self.access)
        planner = UploadPlanner(reader, view, regular_upload_max=cfg.get_size("hub.regular_upload_max"),
                                max_paths=max_paths, lfs_by_content=cfg.get_bool("hub.lfs_by_content"))
        NativeAPI(repos, access, self.accounts, self.repo_rows, reader, self.commit_writer, view, accounts_api,
                  planner, self.seeder, max_inline_file=cfg.get_size("hub.max_inline_file"),
                  max_listed_files=cfg.get_int("hub.max_listed_files"), fields=InfoFields(self.plugins),
                  plugins=self.plugins, **common).add_routes(router)
        HubManage(repos, access, self.accounts, self.seeder, max_card_size=max_card_size, **common).add_routes(router)
        HubInfo(repos, access, self.repo_rows, reader, view, fields=InfoFields(self.plugins),
                filters=RepoFilters(self.plugins), max_card_size=max_card_size,
                max_listed_files=cfg.get_int("hub.max_listed_files"),
                listing_cache_entries=cfg.get_int("hub.listing_cache_entries"), likes=likes,
                **common).add_routes(router)
        files.add_routes(router)
        HubHistory(repos, access, reader, self.chain, email_domain=cfg.get_str("hub.commit_email_domain"),
                   **common).add_routes(router)
        HubUploads(repos, access, reader, self.commit_writer, prs, view, planner, self.pr_uploads,
                   max_inline_file=cfg.get_size("hub.max_inline_file"),
                   max_commit_size=cfg.get_size("hub.max_commit_size"),
                   inline_decodes=cfg.get_int("hub.inline_decodes"), **common).add_routes(router)
        prs.add_routes(router)
        HubUpkeep(repos, access, reader, self.chain, self.store, git=self.git,
                  email_domain=cfg.get_str("hub.commit_email_domain"), **common).add_routes(router)
        DiscussionActions(prs, git=self.git, email_domain=cfg.get_str("hub.commit_email_domain")).add_routes(router)
        if access.gates is not None:
            HubGating(repos, access, self.accounts, access.gates, **common).add_routes(router)
        return files

    def body_limits(self) -> BodyLimits:
        """How much of a git request the daemon reads ahead, and how far it inflates gzip."""
        from gitd.http.rpc_body import BodyLimits

        cfg = self.config
        return BodyLimits(negotiation=cfg.get_size("git.negotiation_buffer"),
                          inflate_ratio=cfg.get_int("limits.inflate_ratio"),
                          inflate_max=cfg.get_size("limits.inflate_max"))

    def rate_limits(self) -> RateLimits:
        from gitd.limits.rates import RateLimits, TokenBuckets

        cfg = self.config

        def buckets(kind: str) -> TokenBuckets | None:
            rate = cfg.get_float(f"limits.rate_per_{kind}")
            if rate <= 0:
                return None
            return TokenBuckets(rate, cfg.get_float(f"limits.burst_per_{kind}"), cfg.get_int("limits.rate_keys"))

        return RateLimits(per_address=buckets("address"), per_token=buckets("token"))

    @cached_property
    def connections(self) -> ConnectionLimiter:
        """The connection limits every listener shares ([server] max_connections: 0 sizes it from
        the descriptor limit, raised to its hard limit first)."""
        from gitd.limits.connections import ConnectionLimiter, automatic_cap, raise_descriptor_limit

        cfg = self.config
        total = cfg.get_int("server.max_connections")
        descriptors = raise_descriptor_limit()
        if total <= 0:
            total = automatic_cap(descriptors, cfg.get_int("git.max_processes"))
        return ConnectionLimiter(total, cfg.get_int("server.max_connections_per_address"),
                                 refused=self.metrics.connections_refused)

    def http_app(self) -> web.Application:
        from gitd.http.app import build_app
        from gitd.hub.bare_ids import bare_repo_miss

        hosts = self.host_routes
        return build_app(self.router(), self.auth, self.metrics, rates=self.rate_limits(),
                         body_timeout=self.config.get_float("server.body_timeout"), miss=bare_repo_miss,
                         middlewares=[hosts.middleware] if hosts.routes else [])

    @cached_property
    def host_routes(self) -> HostRoutes:
        """Plugins' per-host names (API 1.3: a space's own host name)."""
        from gitd.http.hosts import HostRoutes
        from gitd.plugins.contrib import HostRoute

        return HostRoutes([(name, route) for name, routes in self.plugins.collect("gitd_http_hosts")
                           for route in routes if isinstance(route, HostRoute)])

    def relay_lane(self, rates: RateLimits) -> RelayLane | None:
        """The relay lane for plugins' relayed routes (API 1.6), or None: no plugin relays, the
        lane is switched off, or the access log is on (the lane writes none)."""
        from gitd.http.relay_lane import RelayLane
        from gitd.plugins.contrib import RepoRoute

        cfg = self.config
        if not cfg.get_bool("server.relay_lane") or cfg.get_bool("server.access_log"):
            return None
        routes = [(name, route) for name, routes in self.plugins.collect("gitd_http_routes") for route in routes
                  if isinstance(route, RepoRoute) and route.relay is not None]
        if not routes:
            return None
        return RelayLane(routes, auth=self.auth, repos=self.repos, access=self.access, rates=rates,
                         metrics=self.metrics, hosts=self.host_routes,
                         header_timeout=cfg.get_float("server.header_timeout"),
                         body_timeout=cfg.get_float("server.body_timeout"))

    def hook_api(self) -> HookAPI:
        from gitd.hooks.api import HookAPI

        return HookAPI(self.sessions, self.chain, self.repos)

    def job_workers(self) -> JobWorkers:
        from gitd.jobs.workers import JobWorkers

        cfg = self.config
        return JobWorkers(self.jobs, self.chain.run_job, workers=cfg.get_int("jobs.workers"),
                          poll_interval=cfg.get_float("jobs.poll_interval"), timeout=cfg.get_float("jobs.timeout"),
                          start_delay=cfg.get_float("jobs.start_delay"))

    def periodic(self) -> Periodic:
        """The daemon's periodic work: letting go of pygit2 handles on packs gc replaced,
        sweeping what crashes left behind, probing a remote LFS store."""
        from gitd.ops.maintenance import Sweeper
        from gitd.ops.scheduler import Periodic

        periodic = Periodic()
        handles = self.reader.handles
        periodic.every("repo-handles", max(1.0, handles.max_age / 4), handles.sweep_quietly)
        storage, cfg = self.lfs.storage, self.config
        sweeper = Sweeper(self.data, storage, cfg.get_duration("maintenance.grace"),
                          lock_grace=cfg.get_duration("maintenance.lock_grace"))
        interval = cfg.get_duration("maintenance.interval")
        periodic.every("leftovers", interval, sweeper.run, first=min(interval, 60.0))
        if storage.health is not None:  # a remote store: know it is down before a client finds out
            periodic.every("lfs-probe", self.config.get_float("lfs.probe_interval"), storage.probe, first=0)
        return periodic

    def ssh_transport(self, http_listener: Callable[[], str]) -> SSHTransport:
        """The SSH transport; ``http_listener()`` tells the bound HTTP address once it is known
        (LFS over SSH hands out HTTP links when no public URL is configured)."""
        from gitd.ssh.commands import SSHCommands, lfs_http_base
        from gitd.ssh.keys import SSHKeys
        from gitd.ssh.lfs_service_backend import lfs_service_backends
        from gitd.ssh.server import SSHTransport

        cfg = self.config
        public_url = cfg.get_str("server.public_url")

        def http_base(local_host: str | None) -> str:
            return lfs_http_base(public_url, http_listener(), local_host)

        keys = SSHKeys(self.accounts)
        lfs_backend = lfs_service_backends(self.lfs, self.metrics) if cfg.get_bool("ssh.lfs_transfer") else None
        commands = SSHCommands(self.repos, self.gateway, self.auth, keys, http_base=http_base,
                               token_ttl=cfg.get_int("auth.signed_token_ttl"), lfs_backend=lfs_backend)
        return SSHTransport(commands, keys, self.data.ssh_host_key, login_timeout=cfg.get_float("ssh.login_timeout"),
                            ciphers=[str(c) for c in cfg.get_list("ssh.ciphers")],
                            macs=[str(m) for m in cfg.get_list("ssh.macs")], connections=self.connections)

    def close(self) -> None:
        for context in (self.__dict__["plugins"].contexts.values() if "plugins" in self.__dict__ else ()):
            if context._storage is not None:
                context._storage.close()
        if "portal" in self.__dict__:
            self.portal.close()
        if "last_used" in self.__dict__:
            self.last_used.close()  # best effort: waits at most its short busy timeout
        if "store" in self.__dict__:
            self.store.close()
