"""What every Hub API handler shares: repo lookup with the access decision, URLs, paging."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from gitd.access.rules import Access, AccessLevel, Principal
from gitd.errors import BadRequest, Forbidden, GitdError, NotFound, Unauthorized
from gitd.http.context import base_url, principal
from gitd.http.offload import Offload
from gitd.http.routing import Match
from gitd.names import is_valid_name
from gitd.repos import RepoService
from gitd.store import Repo
from gitd.store.redirects import Redirects

# /api/{types}/... -> repository type.
API_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space", "codes": "code"}
TYPE_API = {v: k for k, v in API_TYPES.items()}


@dataclass(frozen=True)
class RepoCtx:
    repo: Repo
    path: Path
    level: AccessLevel
    principal: Principal


def gated_repo_error(who: Principal, repo: Repo) -> GitdError:
    """What the Hub answers a caller its gate holds back (huggingface_hub raises GatedRepoError)."""
    message = (f"Access to {repo.type} {repo.full_name} is restricted: it is a gated repository. Ask for access "
               f"(POST /api/{TYPE_API[repo.type]}/{repo.full_name}/ask-access) and wait for it to be granted")
    if who.is_anonymous:
        return Unauthorized(message + "; you must be authenticated to access it.", code="GatedRepo")
    return Forbidden(message + ".", code="GatedRepo")


class HubBase:
    """Base of the Hub handler classes: looks repositories up and asks ``Access``.

    A gated repository's gate (gitd.store.gates) holds back the readers it has not let in:
    from everything of it, unless the class ``shows_gated`` (what the Hub shows of a gated
    repository to all: its info, history and discussions)."""

    shows_gated = False

    def __init__(self, repos: RepoService, access: Access, *, public_url: str = "",
                 redirects: Redirects | None = None, offload: Offload | None = None):
        self.repos = repos
        self.access = access
        self.public_url = public_url
        self.redirects = redirects
        # Where client-controlled data is parsed: off the loop, with a time limit.
        self.offload = offload if offload is not None else Offload()

    def base(self, request: web.Request) -> str:
        return base_url(request, self.public_url)

    def repo_url(self, request: web.Request, repo: Repo) -> str:
        return f"{self.base(request)}/{repo.url_path}"

    def lookup(self, request: web.Request, repo_type: str, namespace: str, name: str,
               needed: AccessLevel = AccessLevel.READ, *, show_gated: bool = False) -> RepoCtx:
        who = principal(request)
        repo = None
        if is_valid_name(namespace) and is_valid_name(name):
            repo = self.repos.find(repo_type, namespace, name)
            if repo is None and request.method in ("GET", "HEAD"):
                self._follow_move(request, repo_type, namespace, name)
        if repo is not None and self.access.gated_out(who, repo):
            if not (self.shows_gated or show_gated):
                raise gated_repo_error(who, repo)
            level = self.access.require(who, repo, needed, gate=False)
        else:
            level = self.access.require(who, repo, needed)
        assert repo is not None
        return RepoCtx(repo, self.repos.path(repo), level, who)

    def _follow_move(self, request: web.Request, repo_type: str, namespace: str, name: str) -> None:
        """Redirect reads of a moved repository's old name, as the Hub and GitHub do; only callers
        who may read the repository learn where it went (everyone else gets RepoNotFound)."""
        if self.redirects is None:
            return
        target_id = self.redirects.find(repo_type, namespace, name)
        target = self.repos.rows.by_id(target_id) if target_id is not None else None
        if target is None or self.access.level(principal(request), target) < AccessLevel.READ:
            return
        old = re.compile(rf"/{re.escape(namespace)}/{re.escape(name)}(?=/|\.git|$)", re.IGNORECASE)
        new_path = old.sub(f"/{target.namespace}/{target.name}", request.rel_url.raw_path, count=1)
        query = f"?{request.rel_url.raw_query_string}" if request.rel_url.raw_query_string else ""
        raise web.HTTPTemporaryRedirect(f"{self.base(request)}{new_path}{query}")

    def api_repo(self, request: web.Request, m: Match, needed: AccessLevel = AccessLevel.READ, *,
                 show_gated: bool = False) -> RepoCtx:
        """The repository of an ``/api/{types}/{ns}/{name}/...`` route."""
        repo_type = API_TYPES.get(m.params["types"])
        if repo_type is None:
            raise NotFound(f"unknown repository type {m.params['types']!r}")
        return self.lookup(request, repo_type, m.params["ns"], m.params["name"], needed, show_gated=show_gated)

    def web_repo(self, request: web.Request, m: Match, needed: AccessLevel = AccessLevel.READ) -> RepoCtx:
        """The repository of a ``/{repo}/...`` route (type prefix in the URL)."""
        assert m.repo is not None
        return self.lookup(request, m.repo.type, m.repo.namespace, m.repo.name, needed)


def api_patterns(tail: str) -> str:
    return "/api/{types}/{ns}/{name}" + tail


def dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


PIECE = 500


def dumps_in_pieces(data: Any) -> str:
    """``dumps(data)``, built from pieces of at most PIECE list items: one json.dumps call holds the GIL
    for as long as it runs, which for a big answer (100,000 siblings) would pause the event loop even
    from another thread. Long lists at the top level or one level down are split."""
    def value(v: Any) -> str:
        if isinstance(v, list) and len(v) > PIECE:
            return "[" + ",".join(dumps(v[i:i + PIECE])[1:-1] for i in range(0, len(v), PIECE)) + "]"
        return dumps(v)

    if isinstance(data, dict):
        return "{" + ",".join(f"{dumps(str(k))}:{value(v)}" for k, v in data.items()) + "}"
    return value(data)


def json_response(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=dumps(data), status=status, content_type="application/json", headers=headers)


def int_param(request: web.Request, name: str, default: int, *, lo: int = 0, hi: int = 1 << 31) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer")
    return max(lo, min(hi, value))


def bool_param(request: web.Request, name: str, default: bool = False) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


def refuse_params(request: web.Request, names: tuple[str, ...], what: str) -> None:
    """400 ``UnsupportedParameter`` naming every query parameter of ``names`` the request
    carries: parameters the Hub takes and gitd does not implement are refused, never ignored
    (huggingface_hub sends each of them only when its caller sets it)."""
    refused = sorted(k for k in names if k in request.query)
    if refused:
        raise BadRequest(f"{what} not supported by this server: {', '.join(refused)}", code="UnsupportedParameter")


def next_link(base: str, request: web.Request, **overrides: Any) -> str:
    """An absolute ``Link: <...>; rel="next"`` header value: the same query with ``overrides``."""
    items = [(k, v) for k, v in request.query.items() if k not in overrides]
    items += [(k, str(v)) for k, v in overrides.items()]
    return f'<{base}{request.rel_url.raw_path}?{urlencode(items)}>; rel="next"'
