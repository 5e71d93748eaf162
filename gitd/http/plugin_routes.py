"""Plugins' HTTP routes, mounted behind the daemon's authentication and access check.

``Route``s go under ``/api/plugins/NAME/``; ``RepoRoute``s under a repository's API path,
``/api/{models,datasets,spaces,codes}/NS/REPO/...``, after the daemon has looked the
repository up and required the route's access level of the caller (a repository the
caller may not read is a 404, exactly as for the daemon's own routes). A plugin handler
never sees a request the daemon has not authenticated, and cannot skip the check.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from typing import Any

from aiohttp import web

from gitd.access.auth import Authenticator
from gitd.access.rules import Access, AccessLevel
from gitd.errors import GitdError, NotFound, PayloadTooLarge, Unauthorized
from gitd.http.context import base_url, principal
from gitd.http.routing import Match, Router
from gitd.hub.common import API_TYPES, api_patterns
from gitd.jobs.threads import ThreadPool
from gitd.names import check_repo_type, split_full_name
from gitd.plugins.contrib import ANY_METHOD, ROUTE_METHODS, HTTPError, PluginRequest, RepoRoute, Response, Route
from gitd.plugins.events import RepoInfo
from gitd.plugins.host import PluginHost
from gitd.plugins.view import RepoViews
from gitd.repos import RepoService

log = logging.getLogger("gitd.plugins.http")

LEVELS = {"read": AccessLevel.READ, "write": AccessLevel.WRITE, "admin": AccessLevel.ADMIN}
_REPO_PARAMS = ("types", "ns", "name")


class PluginTimeout(GitdError):
    status = 503
    code = "PluginTimeout"


class PluginRoutes:
    def __init__(self, plugins: PluginHost, repos: RepoService, access: Access, views: RepoViews, *,
                 timeout: float = 30.0, max_body: int = 1 << 20, public_url: str = "",
                 auth: Authenticator | None = None):
        self.plugins = plugins
        self.auth = auth
        self.public_url = public_url
        self.repos = repos
        self.access = access
        self.views = views
        self.timeout = timeout
        self.max_body = max_body
        self.threads = ThreadPool("gitd-plugin-http")
        self._routes: list[tuple[str, Route | RepoRoute]] | None = None

    def _declared(self) -> list[tuple[str, Route | RepoRoute]]:
        if self._routes is None:
            self._routes = []
            for name, routes in self.plugins.collect("gitd_http_routes"):
                for route in routes:
                    if isinstance(route, Route | RepoRoute):
                        self._routes.append((name, route))
                    else:
                        log.error("plugin %s: %r is neither a Route nor a RepoRoute; ignored", name, route)
        return self._routes

    def add_plugin_routes(self, router: Router) -> None:
        """``Route``s, under ``/api/plugins/NAME`` (a prefix no other route uses)."""
        for name, route in self._declared():
            if isinstance(route, Route):
                self._add(router, name, route, f"/api/plugins/{name}{route.path}")

    def add_repo_routes(self, router: Router) -> None:
        """``RepoRoute``s, under the repositories' API paths, or (``mount="repo"``, API 1.2)
        under their own URLs (after the daemon's own routes)."""
        for name, route in self._declared():
            if isinstance(route, RepoRoute):
                pattern = "/{repo}" + route.path if route.mount == "repo" else api_patterns(route.path)
                self._add(router, name, route, pattern)

    def _add(self, router: Router, name: str, route: Route | RepoRoute, pattern: str) -> None:
        methods = ROUTE_METHODS if route.method == ANY_METHOD else route.method
        router.add(methods, pattern, self._handler(name, route), style="api",
                   name=f"plugin:{name}:{route.method} {route.path}")
        log.info("plugin %s serves %s %s", name, route.method, pattern)

    def _handler(self, plugin: str, route: Route | RepoRoute):
        async def handle(request: web.Request, m: Match) -> web.StreamResponse:
            who = principal(request)  # the daemon's authentication: bad credentials are a 401 here
            if isinstance(route, Route) and route.signed_in and who.account is None:
                raise Unauthorized("sign in to use this route")
            info: RepoInfo | None = None
            params = dict(m.params)
            if isinstance(route, RepoRoute):
                if m.repo is not None:  # mount="repo": the repository's own URL
                    repo_type, ns, name = m.repo.type, m.repo.namespace, m.repo.name
                else:
                    repo_type, ns, name = API_TYPES.get(params["types"]), params["ns"], params["name"]
                if repo_type is None or repo_type not in route.types:
                    raise NotFound("not found")
                repo = self.repos.find(repo_type, ns, name)
                self.access.require(who, repo, LEVELS[route.access])
                assert repo is not None
                info = self.repos.info(repo)
                for key in _REPO_PARAMS:
                    params.pop(key, None)
            streaming = isinstance(route, RepoRoute) and route.stream
            body = b"" if streaming else await self._body(request)

            def find_repo(full_name: str, repo_type: str = "model", level: str = "read") -> RepoInfo:
                try:
                    ns, name = split_full_name(full_name)
                    check_repo_type(repo_type)
                except GitdError:
                    raise HTTPError(404, f"repository {full_name!r} not found") from None
                found = self.repos.find(repo_type, ns, name)
                try:
                    self.access.require(who, found, LEVELS.get(level, AccessLevel.ADMIN))
                except GitdError as exc:  # 401, 403, or 404 (a private repository looks missing)
                    raise HTTPError(exc.status, exc.message) from None
                assert found is not None
                return self.repos.info(found)

            def repo_token(repo: RepoInfo, ttl: float) -> str:
                if self.auth is None:
                    raise HTTPError(500, "repository tokens are not available here")
                found = self.repos.find(repo.type, repo.namespace, repo.name)
                try:
                    self.access.require(who, found, AccessLevel.READ)
                except GitdError as exc:
                    raise HTTPError(exc.status, exc.message) from None
                assert found is not None
                return self.auth.sign_access(who, found.id, AccessLevel.READ, ttl)

            target = info
            preq = PluginRequest(repo_token=repo_token,
                method=request.method, path=request.path, query=dict(request.query), headers=dict(request.headers),
                params=params, user=who.name, body=body, repo=info, raw=request, find_repo=find_repo,
                base_url=base_url(request, self.public_url),
                view_factory=(lambda: self.views.open(target)) if target is not None else None)
            try:
                if inspect.iscoroutinefunction(route.handler):
                    result = await route.handler(preq)
                else:
                    try:
                        async with asyncio.timeout(self.timeout):
                            result = await self.threads.run(route.handler, preq)
                    except TimeoutError:
                        log.error("plugin %s: %s %s took more than %.0fs", plugin, route.method, route.path,
                                  self.timeout)
                        raise PluginTimeout("the plugin took too long to answer; try again later") from None
            except HTTPError as exc:
                return web.json_response({"error": exc.message}, status=exc.status)
            return _respond(result)

        return handle

    async def _body(self, request: web.Request) -> bytes:
        if request.method in ("GET", "HEAD") or not request.can_read_body:
            return b""
        if request.content_length is not None and request.content_length > self.max_body:
            raise PayloadTooLarge(f"the request body is larger than {self.max_body} bytes")
        out = bytearray()
        async for chunk in request.content.iter_chunked(64 * 1024):
            out += chunk
            if len(out) > self.max_body:
                raise PayloadTooLarge(f"the request body is larger than {self.max_body} bytes")
        return bytes(out)


def _respond(result: Any) -> web.StreamResponse:
    if isinstance(result, web.StreamResponse):
        return result
    if isinstance(result, Response):
        return web.Response(body=result.encoded(), status=result.status, content_type=result.content_type,
                            headers=dict(result.headers))
    try:
        text = json.dumps(result)
    except (TypeError, ValueError):
        raise GitdError("the plugin failed to answer", detail=f"not JSON: {repr(result)[:200]}") from None
    return web.Response(text=text, content_type="application/json")
