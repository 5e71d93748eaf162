"""Git Smart HTTP: info/refs, git-upload-pack and git-receive-pack (stateless RPC).

Thin: it resolves the repository, asks the access function, reads the negotiation
(``gitd.http.rpc_body``: gzip decoded there, with bounds) before a git process slot is
taken, and hands the streams to the shared git runner.

Response headers are sent with git's first byte of output, not before: a request
git refuses before answering (a malformed pkt-line stream, an unreadable body) still
gets a clean 4xx status with git's reason. Once the first byte is out, errors travel
inside the pkt-line stream, as git itself reports them.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from gitd.errors import BadRequest, Forbidden, GitdError, UnsupportedMediaType
from gitd.git.gateway import GitGateway
from gitd.git.runner import GitResult, printable, sanitize_protocol
from gitd.http.capabilities import CapabilityCache
from gitd.http.context import principal
from gitd.http.routing import Match, Router
from gitd.http.rpc_body import DEFAULT_LIMITS, BodyLimits, ClientGone, negotiated
from gitd.store import Repo

log = logging.getLogger("gitd.http.smart")

SMART_SERVICES = {"git-upload-pack": "upload-pack", "git-receive-pack": "receive-pack"}
NO_CACHE = {
    "Cache-Control": "no-cache, max-age=0, must-revalidate",
    "Expires": "Fri, 01 Jan 1980 00:00:00 GMT",
    "Pragma": "no-cache",
}
CAPTURE_CAP = 64 * 1024


def pkt_line(data: bytes) -> bytes:
    return b"%04x" % (len(data) + 4) + data


def git_reason(result: GitResult, repo_path: Path, repo_name: str) -> str:
    """git's own one-line reason for refusing a request, without server paths."""
    lines = [printable(ln) for ln in result.stderr.splitlines() if ln.strip()]
    fatal = [ln for ln in lines if ln.startswith(("fatal:", "error:"))]
    reason = (fatal or lines or ["no reason given"])[-1]
    return reason.replace(str(repo_path), repo_name)[:300]


class SmartHTTP:
    """Git over HTTP: routing, request bodies and responses; ``serve`` (shared with SSH)
    decides access and runs git."""

    def __init__(self, serve: GitGateway, capabilities: CapabilityCache, limits: BodyLimits = DEFAULT_LIMITS):
        self.serve = serve
        self.repos = serve.repos
        self.capabilities = capabilities
        self.limits = limits

    def add_routes(self, router: Router) -> None:
        router.add("GET", "/{repo}/info/refs", self.info_refs, style="git", name="git-info-refs")
        router.add("POST", "/{repo}/git-upload-pack", self.rpc, style="git", name="git-upload-pack")
        router.add("POST", "/{repo}/git-receive-pack", self.rpc, style="git", name="git-receive-pack")

    def _authorize(self, request: web.Request, m: Match, service: str) -> Repo:
        assert m.repo is not None
        repo = self.repos.find(m.repo.type, m.repo.namespace, m.repo.name)
        return self.serve.authorize(principal(request), repo, SMART_SERVICES[service])

    async def info_refs(self, request: web.Request, m: Match) -> web.StreamResponse:
        service = request.query.get("service", "")
        if service not in SMART_SERVICES:
            raise Forbidden("dumb HTTP is not supported; use a git client that speaks smart HTTP")
        repo = self._authorize(request, m, service)
        protocol = sanitize_protocol(request.headers.get("Git-Protocol"))
        v2 = service == "git-upload-pack" and protocol is not None and "version=2" in protocol.split(":")
        content_type = f"application/x-{service}-advertisement"
        args = ["--stateless-rpc", "--advertise-refs"]
        if not v2:
            # v0/v1 advertisements start with the service line; v2 with "version 2" (as http-backend does).
            prefix = pkt_line(f"# service={service}\n".encode()) + b"0000"
            return await self._run(request, repo, service, args, stdin=None, protocol=protocol, prefix=prefix,
                                   content_type=content_type)
        assert protocol is not None
        key = self.capabilities.key(self.repos.path(repo), protocol)
        cached = self.capabilities.get(key)
        if cached is not None:
            return web.Response(body=cached, headers={"Content-Type": content_type, **NO_CACHE})
        captured = bytearray()
        response = await self._run(request, repo, service, args, stdin=None, protocol=protocol,
                                   content_type=content_type, capture=captured)
        if len(captured) < CAPTURE_CAP:  # whole, not cut at the cap
            self.capabilities.put(key, bytes(captured))
        return response

    async def rpc(self, request: web.Request, m: Match) -> web.StreamResponse:
        service = m.route.name
        repo = self._authorize(request, m, service)
        expected = f"application/x-{service}-request"
        if request.content_type != expected:
            raise UnsupportedMediaType(f"expected Content-Type {expected}")
        try:
            body = await negotiated(request, SMART_SERVICES[service], self.limits)
        except ClientGone:
            log.info("%s %s: the client disconnected before sending its request", service, repo.full_name)
            return self._abort(request, web.StreamResponse())
        return await self._run(request, repo, service, ["--stateless-rpc"], stdin=body,
                               protocol=sanitize_protocol(request.headers.get("Git-Protocol")),
                               content_type=f"application/x-{service}-result")

    async def _run(self, request: web.Request, repo: Repo, service: str, args: list[str], *,
                   stdin: AsyncIterator[bytes] | None, protocol: str | None, content_type: str,
                   prefix: bytes = b"", capture: bytearray | None = None) -> web.StreamResponse:
        """Run git with the request body as its input and its output as the response body.

        ``capture`` collects a copy of a small output (a v2 capability advertisement) when
        git succeeds; it is left empty otherwise."""
        short = SMART_SERVICES[service]
        path = self.repos.path(repo)
        response = web.StreamResponse(headers={"Content-Type": content_type, **NO_CACHE})

        async def start() -> None:
            await response.prepare(request)
            if prefix:
                await response.write(prefix)

        async def sink(chunk: bytes) -> None:
            if not response.prepared:
                await start()
            if capture is not None and len(capture) < CAPTURE_CAP:
                capture.extend(chunk)
            await response.write(chunk)

        try:
            result = await self.serve.run(repo, principal(request), short, args, via="http", stdin=stdin,
                                          sink=sink, protocol=protocol, address=request.remote)
        except ClientGone:
            log.info("%s %s: the client disconnected before sending its whole request", short, repo.full_name)
            return self._abort(request, response)
        except ConnectionError:
            log.info("%s %s: the client disconnected", short, repo.full_name)
            return self._abort(request, response)
        except GitdError as exc:
            if not response.prepared:
                raise
            log.info("%s %s failed after the response started: %s", short, repo.full_name, exc.message)
            return self._abort(request, response)
        if not response.prepared:
            if result.returncode != 0:
                reason = git_reason(result, path, repo.full_name)
                if stdin is None:
                    raise GitdError(f"git {short} failed", detail=reason)
                raise BadRequest(f"git {short} refused the request: {reason}")
            await start()
        if result.returncode != 0 and capture is not None:
            capture.clear()
        await response.write_eof()
        return response

    @staticmethod
    def _abort(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
        """End a request whose client is gone, or whose answer cannot be finished: drop the
        connection so the client never takes a cut-off answer for a whole one."""
        response.force_close()
        if request.transport is not None:
            request.transport.close()
        return response
