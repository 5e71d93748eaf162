"""Routing on the raw request path.

aiohttp (like most frameworks) decodes %2F before routing, but Hub clients send
revisions such as ``refs%2Fpr%2F1`` as one segment. So gitd splits the *raw* path on
'/' first and percent-decodes each segment afterwards. Patterns are strings such as
``/{repo}/info/refs`` or ``/api/{types}/{ns}/{name}/resolve/{rev}/{path*}``:

* ``{x}`` matches one segment;
* ``{x*}`` matches the rest of the path (possibly empty), joined with '/';
* ``{repo}`` matches a repository: an optional type prefix (datasets/, spaces/,
  codes/; none for models), the namespace and the name, with or without ``.git``.

A segment that does not decode cleanly, or a repository part that is not a valid
name, never matches: such requests end as 404 without touching the filesystem.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import unquote

from aiohttp import web

from gitd.names import PREFIX_TYPE, RepoName, is_valid_name

Handler = Callable[[web.Request, "Match"], Awaitable[web.StreamResponse]]

# How errors are rendered for a route family (see gitd.http.errors).
STYLES = ("plain", "git", "lfs", "hub", "api")


@dataclass
class Match:
    route: Route
    params: dict[str, str] = field(default_factory=dict)
    repo: RepoName | None = None


@dataclass(frozen=True)
class Route:
    methods: frozenset[str]
    pattern: str
    handler: Handler
    style: str
    name: str
    parts: tuple[str, ...]


# What Router.resolve remembers per (method, path): the route, its parameters, the repository
# part and, when nothing matched, the methods the path allows.
_Known = tuple[Route | None, tuple[tuple[str, str], ...], RepoName | None, frozenset[str]]
MEMO_ENTRIES = 4096
MEMO_PATH_MAX = 512


def split_raw_path(raw_path: str) -> list[str] | None:
    """'/a/b%2Fc/' -> ['a', 'b/c', '']; None for undecodable input."""
    path = raw_path.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/"):
        return None
    try:
        segments = [unquote(seg, errors="strict") for seg in path[1:].split("/")]
    except UnicodeDecodeError:
        return None
    if any("\0" in seg for seg in segments):
        return None
    return segments


def _match_repo(segments: list[str], i: int) -> tuple[RepoName, int] | None:
    repo_type = "model"
    if i < len(segments) and segments[i] in PREFIX_TYPE:
        repo_type = PREFIX_TYPE[segments[i]]
        i += 1
    if i + 2 > len(segments):
        return None
    namespace, name = segments[i], segments[i + 1]
    suffix = name.endswith(".git")
    if suffix:
        name = name[:-4]
    if not (is_valid_name(namespace) and is_valid_name(name)):
        return None
    return RepoName(repo_type, namespace, name, suffix), i + 2


def match(route: Route, segments: list[str]) -> Match | None:
    m = Match(route=route)
    i = 0
    for part in route.parts:
        if part == "{repo}":
            found = _match_repo(segments, i)
            if found is None:
                return None
            m.repo, i = found
        elif part.startswith("{") and part.endswith("*}"):
            m.params[part[1:-2]] = "/".join(segments[i:])
            return m
        elif part.startswith("{") and part.endswith("}"):
            if i >= len(segments) or segments[i] == "":
                return None
            m.params[part[1:-1]] = segments[i]
            i += 1
        else:
            if i >= len(segments) or segments[i] != part:
                return None
            i += 1
    return m if i == len(segments) else None


class Router:
    """Routes are tried in the order they were added; the first match wins. An index by
    first path segment keeps that order while skipping routes that cannot match."""

    def __init__(self) -> None:
        self.routes: list[Route] = []
        self._by_first: dict[str, list[Route]] | None = None
        self._open: list[Route] = []  # routes whose first part is a placeholder
        self._memo: dict[tuple[str, str], _Known] = {}

    def add(self, methods: str | tuple[str, ...], pattern: str, handler: Handler, *, style: str = "plain",
            name: str | None = None) -> None:
        if style not in STYLES:
            raise ValueError(f"unknown error style {style!r}")
        if isinstance(methods, str):
            methods = (methods,)
        wanted = {m.upper() for m in methods}
        if "GET" in wanted:
            wanted.add("HEAD")
        parts = tuple(p for p in pattern.strip("/").split("/"))
        self.routes.append(Route(frozenset(wanted), pattern, handler, style, name or pattern, parts))
        self._by_first = None
        self._memo.clear()

    def _index(self) -> dict[str, list[Route]]:
        by_first: dict[str, list[Route]] = {}
        self._open = [r for r in self.routes if r.parts[0].startswith("{")]
        for literal in {r.parts[0] for r in self.routes if not r.parts[0].startswith("{")}:
            by_first[literal] = [r for r in self.routes if r.parts[0] == literal or r.parts[0].startswith("{")]
        self._by_first = by_first
        return by_first

    def resolve(self, method: str, raw_path: str) -> tuple[Match | None, set[str]]:
        """The matching route, or (None, methods the path would allow).

        Matching is a pure function of the method and the path, and clients repeat the same
        few URLs (every download starts with HEAD /resolve of it), so answers for short paths
        are remembered, a bounded number of them."""
        path = raw_path.partition("?")[0].partition("#")[0]
        key = (method, path)
        known = self._memo.get(key)
        if known is None:
            known = self._resolve(method, path)
            if len(path) <= MEMO_PATH_MAX:
                if len(self._memo) >= MEMO_ENTRIES:
                    self._memo.clear()
                self._memo[key] = known
        route, params, repo, allowed = known
        if route is None:
            return None, set(allowed)
        return Match(route, dict(params), repo), set()

    def _resolve(self, method: str, raw_path: str) -> _Known:
        segments = split_raw_path(raw_path)
        if segments is None:
            return None, (), None, frozenset()
        by_first = self._by_first if self._by_first is not None else self._index()
        allowed: set[str] = set()
        for route in by_first.get(segments[0], self._open):
            m = match(route, segments)
            if m is None:
                continue
            if method.upper() in route.methods:
                return route, tuple(m.params.items()), m.repo, frozenset()
            allowed |= route.methods
        return None, (), None, frozenset(allowed)
