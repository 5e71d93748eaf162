"""Plugins' host routes (API 1.3): requests whose Host is ``LABEL.DOMAIN`` for a domain a
plugin declared (``gitd.HostRoute``) are served as the path the plugin names for that label
followed by the request's own path (``/spaces/NS/NAME/app`` + ``/index.html``), through
the daemon's routes: the same authentication, access checks, limits and metrics as the
path itself. A label the plugin does not know (None), a host in no declared domain, and
a path that already starts with the named prefix are served as they are.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from yarl import URL

from gitd.plugins.contrib import HostRoute

log = logging.getLogger("gitd.plugins.http")


class HostRoutes:
    def __init__(self, routes: list[tuple[str, HostRoute]]):
        # The longest domain first: a plugin's sub-domain wins over another's parent domain.
        self.routes = sorted(routes, key=lambda r: -len(r[1].domain))

    def match(self, host: str) -> tuple[str, HostRoute, str] | None:
        host = host.lower().rstrip(".")
        for plugin, route in self.routes:
            suffix = "." + route.domain
            if host.endswith(suffix):
                label = host[:-len(suffix)]
                if label and "." not in label:
                    return plugin, route, label
        return None

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        found = self.match(request.url.host or "") if self.routes else None
        if found is None:
            return await handler(request)
        plugin, route, label = found
        try:
            prefix = await asyncio.to_thread(route.target, label)  # the plugin's code, off the event loop
        except Exception:
            log.exception("plugin %s: host route %s failed for %r", plugin, route.domain, label)
            raise web.HTTPServiceUnavailable(text="this host's plugin failed; try again later") from None
        if prefix is None:
            return await handler(request)
        if not isinstance(prefix, str) or not prefix.startswith("/") or "?" in prefix or "#" in prefix:
            log.error("plugin %s: host route %s answered %r, not a path; ignored", plugin, route.domain, prefix)
            return await handler(request)
        prefix = prefix.rstrip("/")
        path = request.rel_url.raw_path
        if path == prefix or path.startswith(prefix + "/"):
            return await handler(request)  # already the space's own URL (an app's absolute links)
        url = URL.build(path=prefix + path, query_string=request.rel_url.raw_query_string, encoded=True)
        routed = request.clone(rel_url=url)
        match = await request.app.router.resolve(routed)
        match.add_app(request.app)
        match.freeze()
        routed._match_info = match  # what aiohttp's own dispatch sets before a handler runs
        return await match.handler(routed)
