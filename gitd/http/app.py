"""The public HTTP application: gitd's routes in aiohttp's dispatcher, in front of thin handlers
(the routes are built by the composition root, ``gitd.compose``)."""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
import uuid
from collections.abc import Callable, Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware

from gitd.access.auth import Authenticator
from gitd.errors import GitdError, NotFound, TooManyRequests, UnsupportedMediaType
from gitd.http.body_watch import BodyWatch
from gitd.http.context import AUTHENTICATOR
from gitd.http.errors import error_response, resource_error
from gitd.http.routing import Match, Router
from gitd.http.smart import SMART_SERVICES
from gitd.limits.rates import RateLimits
from gitd.metrics import Metrics

log = logging.getLogger("gitd.http")

METRICS = web.AppKey("metrics", Metrics)
RATES = web.AppKey("rates", RateLimits)
BODY_TIMEOUT = web.AppKey("body_timeout", float)
# Asked about a request no route took: an error to answer instead of the plain 404/405 (the
# Hub's RepoNotFound for an id without a namespace, gitd.hub.bare_ids), or None.
MISS = web.AppKey("miss", Callable[[str], "GitdError | None"])
# Longest X-Request-Id echoed back; longer or odd ones are replaced by a fresh id.
REQUEST_ID_MAX = 128
REQUEST_ID = re.compile(rf"^[A-Za-z0-9._:;=/+-]{{1,{REQUEST_ID_MAX}}}$")
# The tasks handling requests right now: a shutdown past its grace cancels them.
IN_FLIGHT = web.AppKey("in_flight", set)

# Routes no rate limit applies to (health checks come from one address, often).
UNLIMITED = frozenset({"healthz", "readyz", "metrics"})
# The only routes whose request bodies may be compressed (git gzips big fetch negotiations);
# they inflate them themselves, with bounds (gitd.http.rpc_body).
INFLATING = frozenset(SMART_SERVICES)


async def run_match(request: web.Request, match: Match | None, allowed: set[str]) -> web.StreamResponse:
    """Run the matched route's handler (or answer 404/405) after the limits that apply to every
    request, render GitdError in the route's style, and count the request in the metrics."""
    metrics = request.app[METRICS]
    started = time.monotonic()
    route_name = match.route.name if match else "unmatched"
    style = match.route.style if match else "plain"
    status = 500
    watch = None
    task = asyncio.current_task()
    in_flight = request.app[IN_FLIGHT]
    in_flight.add(task)
    try:
        if match is None:
            miss = request.app[MISS](request.path)
            if miss is not None:
                style = "hub"
                raise miss
            if allowed:
                raise web.HTTPMethodNotAllowed(request.method, sorted(allowed))
            raise NotFound("not found")
        rates = request.app[RATES]
        if rates.enabled and route_name not in UNLIMITED:
            over = rates.check(request.remote, request.headers.get("Authorization"))
            if over is not None:
                metrics.rate_limited.inc(limit=over[0])
                raise TooManyRequests(f"too many requests from your {over[0]}; slow down",
                                      retry_after=max(1, math.ceil(over[1])))
        if request.body_exists and route_name not in INFLATING and _compressed(request):
            # Refused unread: nothing here inflates bodies (aiohttp's auto_decompress is off).
            raise UnsupportedMediaType("compressed request bodies are not accepted here; send it uncompressed")
        watch = BodyWatch.start(request, request.app[BODY_TIMEOUT])
        try:
            response = await match.route.handler(request, match)
        except Exception as exc:
            converted = resource_error(exc)  # a full disk, a database locked elsewhere
            if converted is None:
                raise
            raise converted from exc
        status = response.status
        return response
    except GitdError as exc:
        if exc.detail:
            log.info("%s %s -> %s: %s (%s)", request.method, request.path, exc.status, exc.message, exc.detail)
        status = exc.status
        response = error_response(exc, style)
        if request.content.exception() is not None:
            # The body broke (cut chunking) or stalled (body_timeout): answer, then close the
            # connection instead of draining a stream that cannot be read.
            response.force_close()
            request.content.feed_eof()
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        in_flight.discard(task)
        if watch is not None:
            watch.stop()
        metrics.http_requests.inc(method=request.method, route=route_name, status=str(status))
        metrics.http_duration.observe(time.monotonic() - started, route=route_name)


async def request_id(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer carries X-Request-Id, as the Hub's do: the client's own (X-Request-Id, or the
    X-Amzn-Trace-Id huggingface_hub sends) when it is a plain short token, else a fresh one; the
    client quotes it in its error messages."""
    if "X-Request-Id" in response.headers:
        return
    for name in ("X-Request-Id", "X-Amzn-Trace-Id"):
        given = request.headers.get(name)
        if given is not None and REQUEST_ID.match(given):
            response.headers["X-Request-Id"] = given
            return
    response.headers["X-Request-Id"] = uuid.uuid4().hex


def build_app(router: Router, auth: Authenticator, metrics: Metrics, *, rates: RateLimits | None = None,
              body_timeout: float = 60.0, miss: Callable[[str], GitdError | None] | None = None,
              middlewares: Sequence[Middleware] = ()) -> web.Application:
    # client_max_size bounds only read()/json()/post(); streamed bodies are unaffected.
    app = web.Application(client_max_size=16 * 1024 * 1024, middlewares=list(middlewares))
    app[METRICS] = metrics
    app[AUTHENTICATOR] = auth
    app[RATES] = rates if rates is not None else RateLimits(per_address=None, per_token=None)
    app[BODY_TIMEOUT] = body_timeout
    app[MISS] = miss if miss is not None else (lambda path: None)
    app.on_response_prepare.append(request_id)
    app[IN_FLIGHT] = set()
    router.install(app.router, run_match)
    return app


def cancel_in_flight(app: web.Application) -> int:
    """Cancel every request still being handled (a shutdown past its grace); how many."""
    tasks = [task for task in app[IN_FLIGHT] if task is not None and not task.done()]
    for task in tasks:
        task.cancel()
    return len(tasks)


def _compressed(request: web.Request) -> bool:
    encoding = request.headers.get("Content-Encoding")
    return encoding is not None and encoding.strip().lower() not in ("", "identity")
