"""The public HTTP application: one raw-path router in front of thin handlers (the routes
are built by the composition root, ``gitd.compose``)."""

from __future__ import annotations

import logging
import time

from aiohttp import web

from gitd.access.auth import Authenticator
from gitd.errors import GitdError, NotFound
from gitd.http.context import AUTHENTICATOR
from gitd.http.errors import error_response
from gitd.http.routing import Router
from gitd.metrics import Metrics

log = logging.getLogger("gitd.http")

ROUTER = web.AppKey("router", Router)
METRICS = web.AppKey("metrics", Metrics)


async def dispatch(request: web.Request) -> web.StreamResponse:
    router = request.app[ROUTER]
    metrics = request.app[METRICS]
    started = time.monotonic()
    match, allowed = router.resolve(request.method, request.raw_path)
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


def build_app(router: Router, auth: Authenticator, metrics: Metrics) -> web.Application:
    # client_max_size bounds only read()/json()/post(); streamed bodies are unaffected.
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[METRICS] = metrics
    app[AUTHENTICATOR] = auth
    app[ROUTER] = router
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app
