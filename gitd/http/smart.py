"""Git Smart HTTP: info/refs, git-upload-pack and git-receive-pack (stateless RPC).

Thin: it resolves the repository, asks the access function, and hands the streams to
the shared git runner. Request bodies arrive already gunzipped by aiohttp (its
``auto_decompress``), so they are decompressed exactly once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from gitd.access import Access
from gitd.errors import BadRequest, Forbidden, UnsupportedMediaType
from gitd.gitserve import GitServe
from gitd.gitservice import CHUNK, GitRunner, sanitize_protocol
from gitd.hookchain import PushSessions
from gitd.http.context import principal
from gitd.http.routing import Match, Router
from gitd.metrics import Metrics
from gitd.repos import RepoService
from gitd.store import Repo

SERVICES = {"git-upload-pack": "upload-pack", "git-receive-pack": "receive-pack"}
NO_CACHE = {
    "Cache-Control": "no-cache, max-age=0, must-revalidate",
    "Expires": "Fri, 01 Jan 1980 00:00:00 GMT",
    "Pragma": "no-cache",
}
_HEX = frozenset(b"0123456789abcdefABCDEF")


def pkt_line(data: bytes) -> bytes:
    return b"%04x" % (len(data) + 4) + data


class SmartHTTP:
    def __init__(self, repos: RepoService, access: Access, git: GitRunner, sessions: PushSessions,
                 metrics: Metrics, *, hook_socket: Path, hooks_enabled: bool = True):
        self.repos = repos
        self.access = access
        self.git = git
        self.sessions = sessions
        self.metrics = metrics
        self.hook_socket = hook_socket
        self.hooks_enabled = hooks_enabled
        self.serve = GitServe(repos, access, git, sessions, metrics, hook_socket=hook_socket,
                              hooks_enabled=hooks_enabled)

    def add_routes(self, router: Router) -> None:
        router.add("GET", "/{repo}/info/refs", self.info_refs, style="git", name="git-info-refs")
        router.add("POST", "/{repo}/git-upload-pack", self.rpc, style="git", name="git-upload-pack")
        router.add("POST", "/{repo}/git-receive-pack", self.rpc, style="git", name="git-receive-pack")

    def _authorize(self, request: web.Request, m: Match, service: str) -> Repo:
        assert m.repo is not None
        repo = self.repos.find(m.repo.type, m.repo.namespace, m.repo.name)
        return self.serve.authorize(principal(request), repo, SERVICES[service])

    async def info_refs(self, request: web.Request, m: Match) -> web.StreamResponse:
        service = request.query.get("service", "")
        if service not in SERVICES:
            raise Forbidden("dumb HTTP is not supported; use a git client that speaks smart HTTP")
        repo = self._authorize(request, m, service)
        protocol = sanitize_protocol(request.headers.get("Git-Protocol"))
        response = web.StreamResponse(
            headers={"Content-Type": f"application/x-{service}-advertisement", **NO_CACHE}
        )
        v2 = service == "git-upload-pack" and protocol is not None and "version=2" in protocol.split(":")

        async def start() -> None:
            await response.prepare(request)
            if not v2:
                await response.write(pkt_line(f"# service={service}\n".encode()) + b"0000")

        await self._run(request, response, repo, service, ["--stateless-rpc", "--advertise-refs"],
                        stdin=None, protocol=protocol, on_start=start)
        return response

    async def rpc(self, request: web.Request, m: Match) -> web.StreamResponse:
        service = m.route.name
        repo = self._authorize(request, m, service)
        expected = f"application/x-{service}-request"
        if request.content_type != expected:
            raise UnsupportedMediaType(f"expected Content-Type {expected}")
        body = await self._checked_body(request)
        response = web.StreamResponse(headers={"Content-Type": f"application/x-{service}-result", **NO_CACHE})

        async def start() -> None:
            await response.prepare(request)

        await self._run(request, response, repo, service, ["--stateless-rpc"], stdin=body,
                        protocol=sanitize_protocol(request.headers.get("Git-Protocol")), on_start=start)
        return response

    async def _checked_body(self, request: web.Request) -> AsyncIterator[bytes]:
        """Check the body starts with a pkt-line length, then stream all of it."""
        try:
            head = await request.content.readexactly(4)
        except Exception:
            raise BadRequest("malformed request: the body is not a git pkt-line stream") from None
        if not set(head) <= _HEX:
            raise BadRequest("malformed request: the body is not a git pkt-line stream")

        async def stream() -> AsyncIterator[bytes]:
            yield head
            async for chunk in request.content.iter_chunked(CHUNK):
                yield chunk

        return stream()

    async def _run(self, request: web.Request, response: web.StreamResponse, repo: Repo, service: str,
                   args: list[str], *, stdin: AsyncIterator[bytes] | None, protocol: str | None,
                   on_start) -> None:
        await self.serve.run(repo, principal(request), SERVICES[service], args, via="http",
                             stdin=stdin, sink=response.write, protocol=protocol, on_start=on_start)
        if not response.prepared:
            await on_start()
        await response.write_eof()
