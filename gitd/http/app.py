"""The public HTTP application: one raw-path router in front of thin handlers."""

from __future__ import annotations

import logging
import math
import time

from aiohttp import web

from gitd.config import Config
from gitd.errors import GitdError, NotFound, TooManyRequests, UnsupportedMediaType
from gitd.http.body_watch import BodyWatch
from gitd.http.capabilities import CapabilityCache
from gitd.http.context import AUTHENTICATOR
from gitd.http.errors import error_response
from gitd.http.lfs import LfsHTTP
from gitd.http.lfs_locks import LfsLocksHTTP
from gitd.http.ops import Ops
from gitd.http.routing import Router
from gitd.http.rpc_body import BodyLimits
from gitd.http.smart import SMART_SERVICES, SmartHTTP
from gitd.hub import add_hub_routes
from gitd.lfs.content import ServiceContent
from gitd.limits.rates import RateLimits, TokenBuckets
from gitd.services import Services

log = logging.getLogger("gitd.http")

SERVICES = web.AppKey("services", Services)
ROUTER = web.AppKey("router", Router)
RATES = web.AppKey("rates", RateLimits)
BODY_TIMEOUT = web.AppKey("body_timeout", float)

# Routes no rate limit applies to (health checks come from one address, often).
UNLIMITED = frozenset({"healthz", "readyz", "metrics"})
# The only routes whose request bodies may be compressed (git gzips big fetch negotiations);
# they inflate them themselves, with bounds (gitd.http.rpc_body).
INFLATING = frozenset(SMART_SERVICES)


def body_limits(config: Config) -> BodyLimits:
    return BodyLimits(negotiation=config.get_size("git.negotiation_buffer"),
                      inflate_ratio=config.get_int("limits.inflate_ratio"),
                      inflate_max=config.get_size("limits.inflate_max"))


def rate_limits(config: Config) -> RateLimits:
    def buckets(kind: str) -> TokenBuckets | None:
        rate = config.get_float(f"limits.rate_per_{kind}")
        if rate <= 0:
            return None
        return TokenBuckets(rate, config.get_float(f"limits.burst_per_{kind}"), config.get_int("limits.rate_keys"))

    return RateLimits(per_address=buckets("address"), per_token=buckets("token"))


def build_router(services: Services) -> Router:
    router = Router()
    Ops(services.store, services.metrics, services.git.slots).add_routes(router)
    # The Hub API first: its /api/... and /{repo}/resolve/... routes must win over the git routes.
    add_hub_routes(router, services,
                   lfs=ServiceContent(services.lfs, url_ttl=services.config.get_int("lfs.href_ttl")))
    SmartHTTP(services.serve, CapabilityCache(), body_limits(services.config)).add_routes(router)
    LfsHTTP(services.repos, services.access, services.auth, services.lfs, services.metrics,
            public_url=services.config.get_str("server.public_url"),
            href_ttl=services.config.get_int("lfs.href_ttl"),
            max_batch_objects=services.config.get_int("lfs.max_batch_objects"),
            multipart_threshold=services.config.get_size("lfs.multipart_threshold"),
            multipart_chunk_size=services.config.get_size("lfs.multipart_chunk_size")).add_routes(router)
    LfsLocksHTTP(services.repos, services.access, services.lfs).add_routes(router)
    return router


async def dispatch(request: web.Request) -> web.StreamResponse:
    router = request.app[ROUTER]
    metrics = request.app[SERVICES].metrics
    started = time.monotonic()
    match, allowed = router.resolve(request.method, request.raw_path)
    route_name = match.route.name if match else "unmatched"
    style = match.route.style if match else "plain"
    status = 500
    watch = None
    try:
        if match is None:
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
        response = await match.route.handler(request, match)
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
        if watch is not None:
            watch.stop()
        metrics.http_requests.inc(method=request.method, route=route_name, status=str(status))
        metrics.http_duration.observe(time.monotonic() - started, route=route_name)


def build_app(services: Services, router: Router | None = None) -> web.Application:
    # client_max_size bounds only read()/json()/post(); streamed bodies are unaffected.
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[SERVICES] = services
    app[AUTHENTICATOR] = services.auth
    app[ROUTER] = router if router is not None else build_router(services)
    app[RATES] = rate_limits(services.config)
    app[BODY_TIMEOUT] = services.config.get_float("server.body_timeout")
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app


def _compressed(request: web.Request) -> bool:
    encoding = request.headers.get("Content-Encoding")
    return encoding is not None and encoding.strip().lower() not in ("", "identity")
