"""A user's settings: access tokens (created with a scope, shown once, revoked), SSH keys,
the password, organisations and their members; and creating a repository."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from gitd.access.passwords import Passwords
from gitd.access.rules import AccessLevel
from gitd.errors import BadRequest, Conflict, Forbidden, GitdError, NotFound
from gitd.http.routing import Match, Router
from gitd.hub.native_accounts import ssh_fingerprint
from gitd.names import REPO_TYPES, check_account_name, check_name
from gitd.store import Account
from gitd.store.accounts import ORG_ROLES
from gitd.web.core import LIST_PATH, WebCore, page_handler

SECTIONS = (("tokens", "Access tokens"), ("keys", "SSH keys"), ("password", "Password"),
            ("orgs", "Organisations"))


class SettingsPages:
    def __init__(self, core: WebCore, passwords: Passwords):
        self.core = core
        self.passwords = passwords

    def add_routes(self, router: Router) -> None:
        router.add(("GET", "POST"), "/settings/{section}", self.settings, name="web-settings")
        router.add(("GET", "POST"), "/organizations/{org}/settings", self.org, name="web-org-settings")
        router.add(("GET", "POST"), "/new", self.new_repo, name="web-new-repo")

    def _render(self, request: web.Request, section: str, *, status: int = 200, **values: Any) -> web.Response:
        html = self.core.render(request, f"settings/{section}.html", sections=SECTIONS, section=section, **values)
        return self.core.respond(request, html, status=status)

    @page_handler
    async def settings(self, request: web.Request, m: Match) -> web.StreamResponse:
        section = m.params["section"]
        if section not in dict(SECTIONS):
            raise NotFound("no such settings page")
        account = self.core.user(request)
        values: dict[str, Any] = {"message": None, "error": None, "secret": None}
        status = 200
        if request.method == "POST":
            form = await self.core.form(request, limit=64 * 1024)
            try:
                values.update(await getattr(self, f"_{section}")(account, form))
            except GitdError as exc:
                if exc.status >= 500:
                    raise
                values["error"], status = exc.message, exc.status
        accounts = self.core.accounts
        values.update(tokens=accounts.tokens(account), keys=accounts.ssh_keys(account),
                      orgs=accounts.orgs_of(account))
        return self._render(request, section, status=status, **values)

    async def _tokens(self, account: Account, form: dict[str, str]) -> dict[str, Any]:
        if form.get("action") == "revoke":
            self.core.accounts.revoke_token(account, form.get("name", ""))
            return {"message": f"Revoked token {form.get('name')}."}
        name, scope = form.get("name", "").strip(), form.get("scope", "read")
        if not name or len(name) > 100:
            raise BadRequest("a token needs a name (at most 100 characters)")
        if scope not in ("read", "write"):
            raise BadRequest("the scope is read or write")
        secret = self.core.auth.create_token(account, name, scope)
        return {"secret": secret, "message": f"Created token {name}. Copy it now: it is not shown again."}

    async def _keys(self, account: Account, form: dict[str, str]) -> dict[str, Any]:
        if form.get("action") == "remove":
            self.core.accounts.remove_ssh_key(account, form.get("fingerprint", ""))
            return {"message": "Removed the key."}
        text = form.get("key", "").strip()
        fingerprint, normalised = ssh_fingerprint(text)
        parts = text.split(None, 2)
        title = form.get("title", "").strip() or (parts[2] if len(parts) > 2 else "")
        self.core.accounts.add_ssh_key(account, fingerprint, normalised, title[:200])
        return {"message": f"Added key {fingerprint}."}

    async def _password(self, account: Account, form: dict[str, str]) -> dict[str, Any]:
        if await asyncio.to_thread(self.passwords.check, account.name, form.get("current", "")) is None:
            raise Forbidden("the current password is wrong")
        if form.get("new", "") != form.get("again", ""):
            raise BadRequest("the two new passwords differ")
        await asyncio.to_thread(self.passwords.set, account, form.get("new", ""))
        # Setting a password ends every session, this one too: log in again with the new one.
        raise web.HTTPSeeOther("/login?next=/settings/password")

    async def _orgs(self, account: Account, form: dict[str, str]) -> dict[str, Any]:
        name = check_account_name(form.get("name", "").strip())
        org = self.core.accounts.create_org(name, account)
        return {"message": f"Created organisation {org.name}."}

    # -- an organisation's members -----------------------------------------------------------------
    @page_handler
    async def org(self, request: web.Request, m: Match) -> web.StreamResponse:
        account = self.core.user(request)
        accounts = self.core.accounts
        org = accounts.find(m.params["org"])
        who = self.core.who(request)
        level = self.core.access.namespace_level(who, org) if org is not None and org.kind == "org" \
            else AccessLevel.NONE
        if org is None or level == AccessLevel.NONE:
            raise NotFound("no such organisation")
        message, error, status = None, None, 200
        if request.method == "POST":
            if level < AccessLevel.ADMIN:
                raise Forbidden("only the organisation's admins can change its members")
            form = await self.core.form(request, limit=16 * 1024)
            try:
                message = self._member_change(org, form)
            except GitdError as exc:
                if exc.status >= 500:
                    raise
                error, status = exc.message, exc.status
        html = self.core.render(request, "settings/org.html", org=org, members=accounts.members(org),
                                is_admin=level >= AccessLevel.ADMIN, roles=ORG_ROLES, message=message, error=error,
                                me=account)
        return self.core.respond(request, html, status=status)

    def _member_change(self, org: Account, form: dict[str, str]) -> str:
        accounts = self.core.accounts
        user = accounts.find(form.get("user", "").strip())
        if user is None or user.kind != "user":
            raise NotFound(f"no user {form.get('user', '')[:100]!r}")
        if form.get("action") == "remove":
            admins = [a.id for a, r in accounts.members(org) if r == "admin"]
            if admins == [user.id]:
                raise BadRequest("an organisation keeps at least one admin")
            accounts.remove_member(org, user)
            return f"Removed {user.name}."
        role = form.get("role", "read")
        if role != "admin" and [a.id for a, r in accounts.members(org) if r == "admin"] == [user.id]:
            raise BadRequest("an organisation keeps at least one admin")
        accounts.set_member(org, user, role)
        return f"{user.name} is now a member with role {role}."

    # -- a new repository ----------------------------------------------------------------------------
    @page_handler
    async def new_repo(self, request: web.Request, m: Match) -> web.StreamResponse:
        account = self.core.user(request)
        accounts = self.core.accounts
        owners = [account] + [o for o, r in accounts.orgs_of(account) if r in ("write", "admin")]
        values: dict[str, Any] = {"owners": owners, "types": REPO_TYPES, "error": None, "form": {}}
        status = 200
        if request.method == "POST":
            form = await self.core.form(request, limit=16 * 1024)
            values["form"] = form
            try:
                repo = self._create(request, form)
            except GitdError as exc:
                if exc.status >= 500:
                    raise
                values["error"], status = exc.message, exc.status
            else:
                raise web.HTTPSeeOther("/" + repo.url_path)
        values["type_paths"] = LIST_PATH
        return self.core.respond(request, self.core.render(request, "new_repo.html", **values), status=status)

    def _create(self, request: web.Request, form: dict[str, str]):
        repo_type = form.get("type", "model")
        if repo_type not in REPO_TYPES:
            raise BadRequest("unknown repository type")
        name = check_name(form.get("name", "").strip(), "repository name")
        owner = self.core.accounts.find(form.get("owner", ""))
        self.core.access.require_namespace(self.core.who(request), owner, AccessLevel.WRITE)
        assert owner is not None
        if self.core.repos.find(repo_type, owner.name, name) is not None:
            raise Conflict(f"{owner.name}/{name} already exists")
        repo = self.core.repos.create(owner, name, repo_type, private=form.get("visibility") == "private")
        description = form.get("description", "").strip()[:500]
        if description:
            repo = self.core.repos.rows.update(repo, description=description)
        return repo
