"""What a plugin contributes besides hooks: HTTP routes and CLI subcommands.

Routes are declared with ``Route`` (mounted under ``/api/plugins/NAME``) and
``RepoRoute`` (mounted under a repository's API path, after the daemon's access check);
``HostRoute`` (API 1.3) serves a domain's host names as paths of those routes.
A handler takes one ``PluginRequest`` and returns a JSON-able value (answered as JSON,
status 200), a ``Response``, or, for ``async`` handlers only, an aiohttp
``StreamResponse`` it prepared itself. Plain (non-async) handlers run on a worker thread
with a time limit, so they may block (a database query, reading a file). Raise
``HTTPError(status, message)`` to answer an error.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from gitd.plugins.events import RepoInfo
    from gitd.plugins.view import RepoView

Level = Literal["read", "write", "admin"]
Handler = Callable[["PluginRequest"], Any]

ROUTE_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
ANY_METHOD = "*"  # API 1.2: a RepoRoute that takes every method in ROUTE_METHODS (a reverse proxy)
Mount = Literal["api", "repo"]


def _check_route(method: str, path: str) -> None:
    if method.upper() not in ROUTE_METHODS and method != ANY_METHOD:
        raise ValueError(f"unsupported HTTP method {method!r}")
    if not path.startswith("/") or "//" in path or ".." in path:
        raise ValueError(f"a route path starts with '/' and has no empty or '..' segments: {path!r}")


@dataclass(frozen=True)
class Route:
    """``METHOD /api/plugins/NAME{path}``. ``path`` may hold ``{param}`` segments and end with
    ``{param*}`` (the rest of the path). ``signed_in``: anonymous callers get 401."""

    method: str
    path: str
    handler: Handler
    signed_in: bool = False
    summary: str = ""

    def __post_init__(self) -> None:
        _check_route(self.method, self.path)
        if self.method == ANY_METHOD:
            raise ValueError("only a RepoRoute may take every method ('*')")


# First segments below a repository's URL that belong to git, LFS and the Hub.
RESERVED_REPO_SEGMENTS = frozenset({"info", "objects", "HEAD", "resolve", "blob", "tree", "raw", "commit",
                                    "commits", "discussions", "settings", "api"})


@dataclass(frozen=True)
class RepoRoute:
    """``METHOD /api/{types}/NS/REPO{path}`` for the repository types in ``types``. The daemon
    looks the repository up and requires ``access`` (read, write or admin) of the caller
    before the handler runs; a repository the caller may not read answers 404, as a
    missing one does. The handler finds it as ``request.repo`` and ``request.view``."""

    method: str
    path: str
    handler: Handler
    access: Level = "read"
    types: tuple[str, ...] = ("model", "dataset", "space", "code")
    summary: str = ""
    # API 1.2. ``mount="repo"``: under the repository's own URL, ``/{prefix}NS/REPO{path}``
    # (``/spaces/NS/REPO/app/...``), beside its git URLs, instead of under ``/api/...``;
    # its path must start with a literal segment git and the Hub do not use (not ``info``,
    # ``resolve``, ``git-*``, ...). ``stream=True``: the daemon does not read the body; the
    # handler must be ``async`` and reads ``request.raw`` itself (a proxy, a WebSocket).
    mount: Mount = "api"
    stream: bool = False
    # API 1.6. A reverse proxy's fast lane: called on the event loop (answer from memory, at
    # once) with the repository of a plain HTTP request this route takes, after the
    # daemon's authentication and access check; a ``RelayTarget`` has the daemon relay the
    # request to that app itself, without running the handler; None runs the handler. Only
    # for ``mount="repo"``, ``stream=True`` routes whose path is ``/SEGMENT/{NAME*}``.
    relay: Callable[[RepoInfo], RelayTarget | None] | None = None

    def __post_init__(self) -> None:
        _check_route(self.method, self.path)
        if self.access not in ("read", "write", "admin"):
            raise ValueError(f"access must be read, write or admin, not {self.access!r}")
        if self.mount not in ("api", "repo"):
            raise ValueError(f"mount must be api or repo, not {self.mount!r}")
        if self.mount == "repo":
            first = self.path.strip("/").split("/")[0]
            if not first or first.startswith("{") or first in RESERVED_REPO_SEGMENTS or first.startswith("git-"):
                raise ValueError(f"a repo-mounted route starts with a literal segment of its own, not {first!r}")
        if self.stream and not inspect.iscoroutinefunction(self.handler):
            raise ValueError("a stream=True route needs an async handler (it reads request.raw)")
        if self.relay is not None and (self.mount != "repo" or not self.stream
                                       or not RELAY_PATH.fullmatch(self.path)):
            raise ValueError("relay needs a mount='repo', stream=True route whose path is /SEGMENT/{NAME*}")


RELAY_PATH = re.compile(r"/[A-Za-z0-9._-]+/\{[A-Za-z_][A-Za-z0-9_]*\*\}")


@dataclass(frozen=True)
class RelayTarget:
    """API 1.6. Where the daemon relays a request itself (``RepoRoute.relay``): the app that
    listens on 127.0.0.1:``port``, sent the request's path below the route's segment. The
    daemon calls ``done`` once the answer has ended, whole or not (or the app could not be
    reached): the place to count the request as finished."""

    port: int
    done: Callable[[], None] | None = None


_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")


@dataclass(frozen=True)
class HostRoute:
    """API 1.3. Requests whose Host is ``LABEL.{domain}`` (one more DNS label) are served as
    the path ``target(LABEL)`` followed by their own path, through the daemon's routes, with
    its authentication and access checks (``target`` maps ``demo--alice`` to
    ``/spaces/alice/demo/app``). ``target`` runs on a worker thread, for each such request;
    None: the request is served as it is."""

    domain: str
    target: Callable[[str], str | None]

    def __post_init__(self) -> None:
        if not isinstance(self.domain, str) or not _DOMAIN.match(self.domain.lower()):
            raise ValueError(f"a host route's domain is a DNS name (example.com), not {self.domain!r}")
        object.__setattr__(self, "domain", self.domain.lower())


@dataclass(frozen=True)
class Response:
    """An answer other than JSON with status 200."""

    body: bytes | str | Any = b""
    status: int = 200
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


class HTTPError(Exception):
    """Answer ``status`` with ``{"error": message}`` (as every gitd API error)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class PluginRequest:
    """One request to a plugin route, as the daemon authenticated it."""

    def __init__(self, *, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str],
                 params: Mapping[str, str], user: str | None, body: bytes = b"",
                 repo: RepoInfo | None = None, view_factory: Callable[[], RepoView] | None = None,
                 find_repo: Callable[[str, str, Level], RepoInfo] | None = None, raw: Any = None,
                 base_url: str = "", repo_token: Callable[[RepoInfo, float], str] | None = None):
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.params = params
        self.user = user  # the signed-in user's name, or None
        self.body = body
        self.repo = repo
        self._view_factory = view_factory
        self._view: RepoView | None = None
        self._find_repo = find_repo
        self.raw = raw  # the aiohttp request, for async handlers that stream
        # The URL clients reach the daemon at (``[server] public_url``, else this request's
        # scheme and host), without a trailing slash: for links in answers.
        self.base_url = base_url
        self._repo_token = repo_token

    @property
    def view(self) -> RepoView:
        """The repository's ``RepoView`` (``RepoRoute`` handlers)."""
        if self._view is None:
            if self._view_factory is None:
                raise HTTPError(400, "this route names no repository")
            self._view = self._view_factory()
        return self._view

    def json(self) -> Any:
        """The body parsed as JSON; HTTPError 400 if it is not."""
        try:
            return json.loads(self.body or b"null")
        except (ValueError, RecursionError):  # ValueError: also not UTF-8, a number of 4300+ digits
            raise HTTPError(400, "the request body is not valid JSON") from None

    def repository(self, full_name: str, repo_type: str = "model", access: Level = "read") -> RepoInfo:
        """Look a repository up by ``ns/name`` and require ``access`` to it, as the daemon does
        for its own routes (for routes that take the repository as a parameter). Raises
        HTTPError: 404 for a repository the caller may not read, as for a missing one (401
        for an anonymous caller), 403 when they may read but not write."""
        if self._find_repo is None:
            raise HTTPError(500, "repository lookup is not available here")
        return self._find_repo(full_name, repo_type, access)

    def repo_token(self, repo: RepoInfo, ttl: float = 3600.0) -> str:
        """A token that reads ``repo`` (and nothing else) as the caller, for a process the
        plugin starts on their behalf (an inference engine fetching its model; API 1.4).

        Signed by the daemon and bound to the credential the caller came with: revoking that
        token ends this one too; it lives ``ttl`` seconds at most (less when the caller came
        with a shorter-lived signed token). HTTPError 401 for an anonymous caller, 404 when
        the caller may not read ``repo``."""
        if self._repo_token is None:
            raise HTTPError(500, "repository tokens are not available here")
        if self.user is None:
            raise HTTPError(401, "sign in: a token is minted on your behalf")
        return self._repo_token(repo, ttl)


@dataclass(frozen=True)
class CliCommand:
    """``gitd GROUP NAME ...``: ``arguments(parser)`` declares its arguments (argparse),
    ``run(args)`` runs it and returns an exit status (None: 0). Print results to stdout;
    raise ``gitd.PluginError`` (or any exception) to fail with a one-line message."""

    group: str
    name: str
    help: str
    run: Callable[[argparse.Namespace], int | None]
    arguments: Callable[[argparse.ArgumentParser], None] | None = None
