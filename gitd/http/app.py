"""The public HTTP application: gitd's routes in aiohttp's dispatcher, in front of thin handlers."""

from __future__ import annotations

import logging
import time

from aiohttp import web

from gitd.errors import GitdError, NotFound
from gitd.http.capabilities import CapabilityCache
from gitd.http.context import AUTHENTICATOR
from gitd.http.errors import error_response
from gitd.http.lfs import LfsHTTP
from gitd.http.lfs_locks import LfsLocksHTTP
from gitd.http.ops import Ops
from gitd.http.routing import Match, Router
from gitd.http.smart import SmartHTTP
from gitd.hub import add_hub_routes
from gitd.lfs.content import ServiceContent
from gitd.services import Services

log = logging.getLogger("gitd.http")

SERVICES = web.AppKey("services", Services)


def build_router(services: Services) -> Router:
    router = Router()
    Ops(services.store, services.metrics).add_routes(router)
    # The Hub API first: its /api/... and /{repo}/resolve/... routes must win over the git routes.
    add_hub_routes(router, services,
                   lfs=ServiceContent(services.lfs, url_ttl=services.config.get_int("lfs.href_ttl")))
    SmartHTTP(services.serve, CapabilityCache()).add_routes(router)
    LfsHTTP(services.repos, services.access, services.auth, services.lfs, services.metrics,
            public_url=services.config.get_str("server.public_url"),
            href_ttl=services.config.get_int("lfs.href_ttl"),
            max_batch_objects=services.config.get_int("lfs.max_batch_objects"),
            multipart_threshold=services.config.get_size("lfs.multipart_threshold"),
            multipart_chunk_size=services.config.get_size("lfs.multipart_chunk_size")).add_routes(router)
    LfsLocksHTTP(services.repos, services.access, services.lfs).add_routes(router)
    return router


async def run_match(request: web.Request, match: Match | None, allowed: set[str]) -> web.StreamResponse:
    """Run the matched route's handler (or answer 404/405), render GitdError in the route's
    style, and count the request in the metrics."""
    metrics = request.app[SERVICES].metrics
    started = time.monotonic()
    route_name = match.route.name if match else "unmatched"
    style = match.route.style if match else "plain"
    status = 500
    try:
        if match is None:
            if allowed:
                raise web.HTTPMethodNotAllowed(request.method, sorted(allowed))
            raise NotFound("not found")
        response = await match.route.handler(request, match)
        status = response.status
        return response
    except GitdError as exc:
        if exc.detail:
            log.info("%s %s -> %s: %s (%s)", request.method, request.path, exc.status, exc.message, exc.detail)
        status = exc.status
        response = error_response(exc, style)
        if request.content.exception() is not None:
            # The body broke (bad gzip, cut chunking): answer, then close the connection
            # instead of draining a stream that cannot be read.
            response.force_close()
            request.content.feed_eof()
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics.http_requests.inc(method=request.method, route=route_name, status=str(status))
        metrics.http_duration.observe(time.monotonic() - started, route=route_name)


def build_app(services: Services, router: Router | None = None) -> web.Application:
    # client_max_size bounds only read()/json()/post(); streamed bodies are unaffected.
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[SERVICES] = services
    app[AUTHENTICATOR] = services.auth
    (router if router is not None else build_router(services)).install(app.router, run_match)
    return app
