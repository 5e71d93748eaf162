"""The web UI's routes, in the order they are registered (after every API and git route, so
those keep their paths: ``/{repo}.git/...``, ``/{repo}/info/refs``, ``/{repo}/resolve/...``
and ``/api/...`` never reach a page)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from gitd.access.passwords import Passwords
from gitd.git.runner import GitRunner
from gitd.hooks.chain import HookChain
from gitd.http.routing import Match, Router
from gitd.hub.commits import CommitWriter
from gitd.hub.files import FileView, HubFiles
from gitd.hub.info import CardCache
from gitd.hub.listing import RepoListing
from gitd.lfs.service import LfsService
from gitd.plugins.fields import InfoFields
from gitd.plugins.view import RepoViews
from gitd.store import Repos
from gitd.store.comments import Comments
from gitd.store.discussions import Discussions
from gitd.store.redirects import Redirects
from gitd.web.community import CommunityPages
from gitd.web.core import WebCore
from gitd.web.edit_pages import EditPages
from gitd.web.explore import Explore
from gitd.web.history_pages import HistoryPages
from gitd.web.login import LoginLimiter, LoginPages
from gitd.web.repo_pages import RepoPages
from gitd.web.repo_settings import RepoSettingsPages
from gitd.web.settings_pages import SettingsPages
from gitd.web.tab_pages import TabPages


class WebSite:
    def __init__(self, core: WebCore, *, repo_rows: Repos, view: FileView, files: HubFiles, fields: InfoFields,
                 listing: RepoListing, views: RepoViews, chain: HookChain, writer: CommitWriter, lfs: LfsService,
                 passwords: Passwords, limiter: LoginLimiter, discussions: Discussions, comments: Comments,
                 redirects: Redirects, git: GitRunner, tmp: Path, email_domain: str, max_object_size: int,
                 plugin_timeout: float):
        cards = CardCache(core.reader)
        self.core = core
        self.pages = [
            LoginPages(core, passwords, limiter),
            SettingsPages(core, passwords),
            Explore(core, repo_rows, cards, fields, listing),
            RepoPages(core, view, files, cards, fields),
            HistoryPages(core, views, chain),
            CommunityPages(core, discussions, comments, chain, views, git=git, email_domain=email_domain),
            EditPages(core, writer, lfs, tmp, max_object_size=max_object_size),
            RepoSettingsPages(core, redirects),
            TabPages(core, views, timeout=plugin_timeout),
        ]

    def add_routes(self, router: Router) -> None:
        router.add("GET", "/static/{name}", self.static, name="web-static")
        for pages in self.pages:
            pages.add_routes(router)

    async def static(self, request: web.Request, m: Match) -> web.StreamResponse:
        return await self.core.renderer.static.serve(request, m.params["name"])
