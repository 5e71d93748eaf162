"""Plugins' tabs drawn inside a repository's layout (``gitd_web_tabs``, plugin API 1.2).

The daemon looks the repository up with its own access rules first (a repository the
caller may not read is a 404 page), requires the tab's ``access``, and for a POST also
write access and the form's CSRF token; then the plugin's handler runs on a plugin thread
with the plugin routes' time limit, and its HTML fragment is placed in the page."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from markupsafe import Markup

from gitd.access.rules import AccessLevel
from gitd.errors import Forbidden, GitdError, NotFound
from gitd.http.routing import Match, Router
from gitd.jobs.threads import ThreadPool
from gitd.plugins.events import RepoInfo
from gitd.plugins.view import RepoViews
from gitd.plugins.web import WebRequest, WebTab
from gitd.web.core import RepoPage, WebCore, page_handler

log = logging.getLogger("gitd.web")
LEVEL_NAMES = {AccessLevel.READ: "read", AccessLevel.WRITE: "write", AccessLevel.ADMIN: "admin"}


class PluginTimeout(GitdError):
    status = 503
    code = "PluginTimeout"


class TabPages:
    def __init__(self, core: WebCore, views: RepoViews, *, timeout: float = 30.0):
        self.core = core
        self.views = views
        self.timeout = timeout
        self.threads = ThreadPool("gitd-web-tabs")

    def add_routes(self, router: Router) -> None:
        router.add(("GET", "POST"), "/{repo}/tab/{plugin}/{name}", self.tab, name="web-plugin-tab")

    @page_handler
    async def tab(self, request: web.Request, m: Match) -> web.StreamResponse:
        page = self.core.repo(request, m)
        plugin, name = m.params["plugin"], m.params["name"]
        found = await asyncio.to_thread(self.core.tabs.find, page.info, page.level, plugin, name)
        if found is None:
            raise NotFound("this repository has no such tab")
        form: dict[str, str] = {}
        if request.method == "POST":
            if page.level < AccessLevel.WRITE:
                raise Forbidden("you do not have write access to this repository")
            form = await self.core.form(request, limit=256 * 1024)
        wreq = self._request(request, page, found, plugin, form)
        try:
            async with asyncio.timeout(self.timeout):
                fragment = await self.threads.run(found.handler, wreq)
        except TimeoutError:
            log.error("plugin %s: tab %s took more than %.0fs", plugin, name, self.timeout)
            raise PluginTimeout("the plugin took too long to answer; try again later") from None
        except GitdError:
            raise
        except Exception:
            log.exception("plugin %s failed drawing tab %s of %s", plugin, name, page.repo.full_name)
            raise GitdError("the plugin failed to draw this tab") from None
        if not isinstance(fragment, str):
            raise GitdError("the plugin failed to draw this tab", detail=f"{plugin}: not a str: {type(fragment)}")

        def build() -> dict[str, Any]:
            return {"page": page, "repo": page.repo, "tabs": self.core.repo_tabs(request, page, f"tab:{plugin}:{name}"),
                    "label": found.label, "fragment": Markup(fragment)}

        html = await self.core.offload.run(lambda: self.core.render(request, "repo/tab.html", **build()))
        return self.core.respond(request, html, frames=found.frame_src)

    def _request(self, request: web.Request, page: RepoPage, tab: WebTab, plugin: str,
                 form: dict[str, str]) -> WebRequest:
        def find_repo(full_name: str, repo_type: str) -> RepoInfo | None:
            return self.core.readable(request, full_name, repo_type)

        info = page.info
        return WebRequest(method=request.method, query=dict(request.query), form=form,
                          user=page.principal.name, repo=info, level=LEVEL_NAMES.get(page.level, "read"),
                          url=f"{page.url}/tab/{plugin}/{tab.name}", repo_url=page.url,
                          csrf_token=self.core.sessions.csrf_token(request),
                          view_factory=lambda: self.views.open(info), find_repo=find_repo)
