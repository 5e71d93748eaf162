"""gitd's route patterns, registered in aiohttp's own dispatcher.

Handlers add routes with ``Router.add(methods, pattern, handler, style=, name=)``;
``Router.install`` puts them into the application's ``UrlDispatcher``. Patterns are
strings such as ``/{repo}/info/refs`` or ``/api/{types}/{ns}/{name}/resolve/{rev}/{path*}``:

* ``{x}`` matches one non-empty segment;
* ``{x*}`` matches the rest of the path (possibly empty), joined with '/';
* ``{repo}`` matches a repository: an optional type prefix (datasets/, spaces/,
  codes/; none for models), the namespace and the name, with or without ``.git``.
  It becomes one aiohttp route per type prefix, whose regexes match valid names only
  (``gitd.names.is_valid_name``), so a path naming no valid repository matches no route.

Hub clients send revisions such as ``refs%2Fpr%2F1`` as one segment. aiohttp (3.10.6 and
later) matches on ``URL.path_safe``, where %2F and %25 stay encoded, and decodes each
placeholder afterwards, so such a segment stays one parameter. A path holding a NUL or a
percent escape that does not decode (invalid UTF-8) matches nothing: 404 before any
handler runs. A path that no route matches gets 404, or 405 with the methods its path
allows.

Order: aiohttp tries routes by their literal prefix, longest first (``/api/...`` before
``/{repo}/...``), then in the order they were added; the first match wins.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from gitd.names import PREFIX_TYPE, RepoName

Handler = Callable[[web.Request, "Match"], Awaitable[web.StreamResponse]]
# What runs a request once routed (gitd.http.app.run_match): the match, or None and the
# methods the path allows (empty: 404).
Runner = Callable[[web.Request, "Match | None", set[str]], Awaitable[web.StreamResponse]]

# How errors are rendered for a route family (see gitd.http.errors).
STYLES = ("plain", "git", "lfs", "hub", "api")

# gitd.names.is_valid_name as a regex for one segment (tests/unit/test_routing.py holds
# them equal): 1-96 of [A-Za-z0-9._-] starting with a letter or digit, no "..", not
# ending in ".git" in any case. A repository's name may carry one more ".git".
_NAME = r"(?![^/]*\.\.)[A-Za-z0-9][A-Za-z0-9._-]{0,95}(?<!\.[gG][iI][tT])"
# CSGHub's URL layout also names models: /models/{ns}/{name}.git (csghub-sdk clones from there).
_ALIASES = {"models": "model"}
_NOT_A_PREFIX = "(?!(?:" + "|".join(map(re.escape, [*PREFIX_TYPE, *_ALIASES])) + ")/)"
_REPO_TYPES = [("", "model"), *((prefix, t) for prefix, t in PREFIX_TYPE.items()), *_ALIASES.items()]
# Path prefixes under which the Hub-style and LFS routes are served again, as CSGHub does:
# /hf for huggingface_hub (csghub-cli sets HF_ENDPOINT={endpoint}/hf), /csg for csghub-sdk's
# own downloads (/csg/api/models/{id}/revision/{rev}, /csg/{id}/resolve/{rev}/{path}).
MOUNTS = ("/hf", "/csg")
MOUNTED_STYLES = frozenset({"hub", "lfs"})
_SEGMENT = r"[^/]+"
_REST = r"(?:/(?s:.*))?"  # (?s: a decoded %0A is a character like any other
# In URL.path_safe only %2F and %25 stay encoded: any other escape left is one that did not decode.
_UNDECODED = re.compile(r"%(?![2][fF5])[0-9A-Fa-f]{2}")


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


def aiohttp_paths(route: Route) -> list[tuple[str, str | None, str | None]]:
    """(aiohttp path, repository type or None, name of the ``{x*}`` placeholder or None) for
    each form of ``route``: one per type prefix where it has ``{repo}``."""
    forms: list[tuple[list[str], str | None]] = [([], None)]
    star = None
    for part in route.parts:
        if star is not None:
            raise ValueError(f"{route.pattern}: {{{star}*}} must be the last part")
        if part == "{repo}":
            forms = [([*segs, *([prefix] if prefix else []),
                       "{_ns:" + (_NAME if prefix else _NOT_A_PREFIX + _NAME) + "}",
                       "{_name:" + _NAME + r"(?:\.git)?}"], t)
                     for segs, _ in forms for prefix, t in _REPO_TYPES]
        elif part.startswith("{") and part.endswith("*}"):
            star = part[1:-2]
        elif part.startswith("{") and part.endswith("}"):
            forms = [([*segs, "{" + part[1:-1] + ":" + _SEGMENT + "}"], t) for segs, t in forms]
        else:
            forms = [([*segs, part], t) for segs, t in forms]  # aiohttp escapes literal parts itself
    paths = []
    for segs, repo_type in forms:
        if star is not None and not segs:
            raise ValueError(f"{route.pattern}: {{{star}*}} cannot be the whole path")
        path = "/" + "/".join(segs) + ("{" + star + ":" + _REST + "}" if star is not None else "")
        paths.append((path, repo_type, star))
    return paths


def _clean(path_safe: str) -> bool:
    return "\0" not in path_safe and ("%" not in path_safe or _UNDECODED.search(path_safe) is None)


class Router:
    """The routes handlers add, in order; ``install`` registers them with aiohttp."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

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
        route = Route(frozenset(wanted), pattern, handler, style, name or pattern, parts)
        aiohttp_paths(route)  # a pattern it cannot express fails here, not at install
        self.routes.append(route)

    def install(self, dispatcher: web.UrlDispatcher, run: Runner) -> None:
        """Register every route with ``dispatcher``, each handing its Match to ``run``, and
        last a catch-all that hands ``run`` None (404, or 405 with the allowed methods)."""
        # The same routes without the catch-all: resolving a request no route took there
        # gives the methods its path allows, as cheaply as aiohttp finds them.
        shadow = web.UrlDispatcher()
        taken: dict[str, set[str]] = {}  # methods per path: a later route with the same ones never runs
        for route in self.routes:
            forms = aiohttp_paths(route)
            if route.style in MOUNTED_STYLES:
                forms += [(mount + path, repo_type, star) for mount in MOUNTS for path, repo_type, star in forms]
            for path, repo_type, star in forms:
                methods = route.methods - taken.setdefault(path, set())
                if methods:
                    taken[path] |= methods
                    endpoint = _endpoint(route, repo_type, star, run)
                    for method in sorted(methods):
                        dispatcher.add_route(method, path, endpoint)
                        shadow.add_route(method, path, endpoint)

        async def unmatched(request: web.Request) -> web.StreamResponse:
            allowed: set[str] = set()
            if _clean(request.rel_url.path_safe):
                refused = (await shadow.resolve(request)).http_exception
                if isinstance(refused, web.HTTPMethodNotAllowed):
                    allowed = set(refused.allowed_methods)
            return await run(request, None, allowed)

        dispatcher.add_route("*", "/{_unmatched:(?s:.*)}", unmatched)


def _endpoint(route: Route, repo_type: str | None, star: str | None,
              run: Runner) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        if not _clean(request.rel_url.path_safe):
            return await run(request, None, set())
        info = request.match_info
        params = {k: v for k, v in info.items() if k[0] != "_"}
        if star is not None:
            params[star] = params[star][1:]
        repo = None
        if repo_type is not None:
            name = info["_name"]
            suffix = name.endswith(".git")
            repo = RepoName(repo_type, info["_ns"], name[:-4] if suffix else name, suffix)
        return await run(request, Match(route, params, repo), set())

    return endpoint
