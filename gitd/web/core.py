"""What every page of the web UI shares: who is asking (a browser session, else an API
token, else anonymous), the repository lookup with the same access rules as the APIs (a
repository the caller may not read is a 404 page, signed in or not), CSRF checks on
forms, and drawing a page.

Page handlers do their blocking work (pygit2, SQLite, Markdown, Jinja) on the offload
threads (``Offload.run``), never on the event loop.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from aiohttp import web

from gitd.access.auth import Authenticator
from gitd.access.rules import ANONYMOUS, Access, AccessLevel, Principal
from gitd.errors import BadRequest, Forbidden, GitdError, NotFound, Unauthorized
from gitd.http.context import PRINCIPAL, read_limited
from gitd.http.offload import Offload
from gitd.http.routing import Match
from gitd.hub.gitread import RepoReader
from gitd.names import TYPE_PREFIX, is_valid_name
from gitd.plugins.events import RepoInfo
from gitd.repos import RepoService
from gitd.store import Account, Accounts, Repo
from gitd.store.redirects import Redirects
from gitd.web.render import Renderer
from gitd.web.sessions import CSRF_FIELD, WebSessions
from gitd.web.tabs import WebTabs

log = logging.getLogger("gitd.web")

TYPE_LABEL = {"model": "Model", "dataset": "Dataset", "space": "Space", "code": "Code"}
LIST_PATH = {"model": "models", "dataset": "datasets", "space": "spaces", "code": "codes"}
FORM_MAX = 2 * 1024 * 1024  # a url-encoded form: an edited file and a few fields


class LoginRequired(GitdError):
    status = 401
    code = "LoginRequired"


@dataclass(frozen=True)
class WebSettings:
    public_url: str = ""
    tree_page: int = 1000
    list_page: int = 30
    max_view: int = 1024 * 1024
    max_highlight: int = 200_000
    max_edit: int = 1024 * 1024
    regular_upload_max: int = 10_000_000
    max_upload_files: int = 100
    commits_page: int = 50
    diff_files: int = 300
    diff_lines: int = 20_000
    diff_blob: int = 1024 * 1024


@dataclass
class RepoPage:
    """A repository as its pages show it, for one caller."""

    repo: Repo
    path: Path
    level: AccessLevel
    principal: Principal
    info: RepoInfo
    tabs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return "/" + self.repo.url_path

    @property
    def can_write(self) -> bool:
        return self.level >= AccessLevel.WRITE

    @property
    def is_admin(self) -> bool:
        return self.level >= AccessLevel.ADMIN


def repo_url(repo: Repo) -> str:
    return "/" + repo.url_path


class WebCore:
    def __init__(self, repos: RepoService, access: Access, accounts: Accounts, auth: Authenticator,
                 sessions: WebSessions, renderer: Renderer, reader: RepoReader, offload: Offload, tabs: WebTabs,
                 settings: WebSettings, redirects: Redirects | None = None):
        self.redirects = redirects
        self.repos = repos
        self.access = access
        self.accounts = accounts
        self.auth = auth
        self.sessions = sessions
        self.renderer = renderer
        self.reader = reader
        self.offload = offload
        self.tabs = tabs
        self.settings = settings

    # -- who is asking ---------------------------------------------------------------------------
    def who(self, request: web.Request) -> Principal:
        found = request.get(PRINCIPAL)
        if found is not None:
            return found
        who = self.sessions.principal(request)
        if who is None:
            try:
                who = self.auth.principal_from_header(request.headers.get("Authorization"))
            except Unauthorized:
                who = ANONYMOUS
        request[PRINCIPAL] = who
        return who

    def user(self, request: web.Request) -> Account:
        """The signed-in account, or LoginRequired (a redirect to the login page)."""
        who = self.who(request)
        if who.account is None:
            raise LoginRequired("sign in to see this page")
        if who.repo_id is not None or who.cap < AccessLevel.WRITE:
            raise Forbidden("this credential cannot change account settings")
        return who.account

    # -- repositories ----------------------------------------------------------------------------
    def repo(self, request: web.Request, m: Match, needed: AccessLevel = AccessLevel.READ) -> RepoPage:
        assert m.repo is not None
        return self.find_repo(request, m.repo.type, m.repo.namespace, m.repo.name, needed)

    def find_repo(self, request: web.Request, repo_type: str, namespace: str, name: str,
                  needed: AccessLevel = AccessLevel.READ) -> RepoPage:
        who = self.who(request)
        repo = self.repos.find(repo_type, namespace, name) if is_valid_name(namespace) and is_valid_name(name) \
            else None
        if repo is None and request.method in ("GET", "HEAD"):
            self._follow_move(request, who, repo_type, namespace, name)
        level = self.access.level(who, repo) if repo is not None else AccessLevel.NONE
        if repo is None or level < AccessLevel.READ:
            # The same page for a private repository as for a missing one, signed in or not.
            raise NotFound("repository not found", code="RepoNotFound")
        if level < needed:
            if who.is_anonymous:
                raise LoginRequired("sign in to do this")
            raise Forbidden("you do not have write access to this repository" if needed == AccessLevel.WRITE
                            else "only the repository's admins can do this")
        return RepoPage(repo, self.repos.path(repo), level, who, self.repos.info(repo))

    def _follow_move(self, request: web.Request, who: Principal, repo_type: str, namespace: str, name: str) -> None:
        """A moved repository's old name leads to its new one, for those who may read it."""
        if self.redirects is None or not (is_valid_name(namespace) and is_valid_name(name)):
            return
        target_id = self.redirects.find(repo_type, namespace, name)
        target = self.repos.rows.by_id(target_id) if target_id is not None else None
        if target is None or self.access.level(who, target) < AccessLevel.READ:
            return
        prefix = "/" + "/".join(p for p in (TYPE_PREFIX[repo_type], namespace, name) if p)
        rest = request.rel_url.raw_path[len(prefix):] if request.rel_url.raw_path.lower().startswith(
            prefix.lower()) else ""
        query = f"?{request.rel_url.raw_query_string}" if request.rel_url.raw_query_string else ""
        raise web.HTTPFound(f"/{target.url_path}{rest}{query}")

    def readable(self, request: web.Request, full_name: str, repo_type: str) -> RepoInfo | None:
        ns, _, name = full_name.partition("/")
        try:
            return self.find_repo(request, repo_type, ns, name).info
        except GitdError:
            return None

    def repo_tabs(self, request: web.Request, page: RepoPage, current: str) -> list[dict[str, Any]]:
        """The tabs of a repository's pages: the daemon's, the plugins', and settings (blocking)."""
        url = page.url
        card = {"model": "Model card", "dataset": "Dataset card", "space": "App", "code": "README"}[page.repo.type]
        tabs = [{"id": "card", "label": card, "url": url},
                {"id": "files", "label": "Files and versions",
                 "url": f"{url}/tree/{quote(page.repo.default_branch, safe='')}"},
                {"id": "commits", "label": "History",
                 "url": f"{url}/commits/{quote(page.repo.default_branch, safe='')}"},
                {"id": "community", "label": "Community", "url": f"{url}/discussions"}]
        for plugin, tab in self.tabs.for_repo(page.info, page.level):
            tabs.append({"id": f"tab:{plugin}:{tab.name}", "label": tab.label, "url": f"{url}/tab/{plugin}/{tab.name}"})
        if page.is_admin:
            tabs.append({"id": "settings", "label": "Settings", "url": f"{url}/settings"})
        for tab in tabs:
            tab["current"] = tab["id"] == current
        return tabs

    # -- forms -----------------------------------------------------------------------------------
    async def form(self, request: web.Request, *, limit: int = FORM_MAX) -> dict[str, str]:
        """A url-encoded POST form, its CSRF token checked (403 otherwise)."""
        if request.content_type not in ("application/x-www-form-urlencoded", ""):
            raise BadRequest("expected a form")
        raw = await read_limited(request, limit, "the form")
        try:
            fields = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=64))
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("the form could not be read")
        self.sessions.check_csrf(request, fields.get(CSRF_FIELD))
        return fields

    # -- pages -----------------------------------------------------------------------------------
    def context(self, request: web.Request, **values: Any) -> dict[str, Any]:
        who = self.who(request)
        user = who.account if who.method == "session" else None
        return {"user": user, "csrf": self.sessions.csrf_token(request), "path": request.path_qs,
                "type_label": TYPE_LABEL, "list_path": LIST_PATH, "type_prefix": TYPE_PREFIX, **values}

    def render(self, request: web.Request, template: str, **values: Any) -> str:
        return self.renderer.render(template, self.context(request, **values))

    def respond(self, request: web.Request, html: str, *, status: int = 200,
                frames: tuple[str, ...] = ()) -> web.Response:
        response = self.renderer.response(html, status=status, frames=frames)
        if self.who(request).method != "session":
            # Signed out: the login form's token lives in a cookie of its own (double submit).
            self.sessions.csrf_token(request, response)
        self.sessions.clear_stale(request, response)
        return response

    async def page(self, request: web.Request, template: str, build: Callable[[], dict[str, Any]], *,
                   status: int = 200, what: str = "the page") -> web.Response:
        """Run ``build`` (blocking reads) and render ``template`` with what it returns, off the loop."""
        self.who(request)
        self.sessions.current(request)  # looked up here, so the thread and the response agree

        def work() -> str:
            return self.render(request, template, **build())

        return self.respond(request, await self.offload.run(work, what=what), status=status)

    async def error_page(self, request: web.Request, exc: GitdError) -> web.StreamResponse:
        if isinstance(exc, LoginRequired) and request.method in ("GET", "HEAD"):
            raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}")
        status = 404 if exc.status == 401 else exc.status
        if exc.detail:
            log.info("%s %s -> %s: %s (%s)", request.method, request.path, status, exc.message, exc.detail)
        html = self.render(request, "error.html", status=status, message=exc.message)
        return self.respond(request, html, status=status)


Handler = Callable[[Any, web.Request, Match], Awaitable[web.StreamResponse]]


def page_handler(method: Handler) -> Handler:
    """A page handler whose GitdErrors become error pages (a login redirect for LoginRequired)."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: web.Request, m: Match) -> web.StreamResponse:
        try:
            return await method(self, request, m)
        except GitdError as exc:
            return await self.core.error_page(request, exc)

    return wrapper


def see_other(location: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(location)
