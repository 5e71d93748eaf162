"""Gated repositories as the Hub serves them (``update_repo_settings(gated="auto"|"manual")``).

A gated repository is public to look at (its info, history and discussions) but its files
are held back (on every transport: gitd.access.rules) from the readers who have not been let
in. A reader asks for access (``POST .../ask-access``, the Hub's gate form): a repository
gated "auto" lets them in at once, one gated "manual" keeps the request pending until one of
its writers accepts or rejects it (``accept_access_request`` and the other calls of
huggingface_hub), or grants access unasked (``grant_access``). ``auth_check`` says whether
the caller may download (403 GatedRepo when the gate holds them back)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gitd.access.rules import Access, AccessLevel
from gitd.errors import BadRequest, Forbidden, NotFound, Unauthorized
from gitd.http.context import read_json
from gitd.http.routing import Match, Router
from gitd.hub.common import HubBase, RepoCtx, api_patterns, gated_repo_error, int_param, json_response, next_link
from gitd.names import is_valid_name
from gitd.repos import RepoService
from gitd.store import Accounts
from gitd.store.gates import STATUSES, AccessRequest, RepoGates

MAX_FIELDS = 16 * 1024


def request_json(r: AccessRequest) -> dict[str, Any]:
    return {"user": {"user": r.user, "fullname": r.user, "email": r.email}, "requestId": f"{r.id:024x}",
            "status": r.status, "timestamp": r.updated_at, "fields": r.fields,
            **({"rejectionReason": r.rejection_reason} if r.rejection_reason else {})}


class HubGating(HubBase):
    shows_gated = True  # the routes that let readers in or tell them they are not yet

    def __init__(self, repos: RepoService, access: Access, accounts: Accounts, gates: RepoGates, **common: Any):
        super().__init__(repos, access, **common)
        self.accounts = accounts
        self.gates = gates

    def add_routes(self, router: Router) -> None:
        router.add("GET", api_patterns("/auth-check"), self.auth_check, style="hub", name="hub-auth-check")
        router.add("GET", api_patterns("/auth-check/write"), self.auth_check_write, style="hub",
                   name="hub-auth-check-write")
        router.add("POST", api_patterns("/ask-access"), self.ask, style="hub", name="hub-ask-access")
        router.add("GET", api_patterns("/user-access-request/{status}"), self.listed, style="hub",
                   name="hub-access-requests")
        router.add("POST", api_patterns("/user-access-request/handle"), self.handle, style="hub",
                   name="hub-access-request-handle")
        router.add("POST", api_patterns("/user-access-request/grant"), self.grant, style="hub",
                   name="hub-access-request-grant")

    # -- readers ---------------------------------------------------------------------------------
    async def auth_check(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self.api_repo(request, m)
        if self.access.gated_out(ctx.principal, ctx.repo):
            raise gated_repo_error(ctx.principal, ctx.repo)
        return json_response({"ok": True})

    async def auth_check_write(self, request: web.Request, m: Match) -> web.StreamResponse:
        self.api_repo(request, m, AccessLevel.WRITE)
        return json_response({"ok": True})

    async def ask(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self.api_repo(request, m)
        account = ctx.principal.account
        if account is None:
            raise Unauthorized("sign in to ask for access")
        if ctx.principal.cap < AccessLevel.WRITE:
            raise Forbidden("this token is read-only: asking for access needs a write token")
        mode = self.gates.mode(ctx.repo.id)
        if mode is None:
            raise BadRequest(f"{ctx.repo.full_name} is not gated: its files are open to all who can read it",
                             code="RepoNotGated")
        body = await read_json(request, offload=self.offload, max_size=MAX_FIELDS)
        fields = body.get("fields", {k: v for k, v in body.items() if k != "fields"})
        if not isinstance(fields, dict):
            raise BadRequest("fields must be a JSON object")
        existing = self.gates.of_user(ctx.repo.id, account.id)
        if existing is not None and existing.status != "pending":
            return json_response(request_json(existing))  # decided already: asking again changes nothing
        status = "accepted" if mode == "auto" else "pending"
        return json_response(request_json(self.gates.put(ctx.repo.id, account.id, status, fields=fields or None)))

    # -- the repository's writers --------------------------------------------------------------------
    def _managed(self, request: web.Request, m: Match) -> RepoCtx:
        ctx = self.api_repo(request, m, AccessLevel.WRITE)
        if self.gates.mode(ctx.repo.id) is None:
            raise BadRequest(f"{ctx.repo.full_name} is not gated", code="RepoNotGated")
        return ctx

    async def listed(self, request: web.Request, m: Match) -> web.StreamResponse:
        status = m.params["status"]
        if status not in STATUSES:
            raise NotFound(f"no access request list {status[:20]!r}: pending, accepted or rejected")
        ctx = self._managed(request, m)
        after = int_param(request, "after", 0)
        limit = int_param(request, "limit", 100, lo=1, hi=1000)
        rows = self.gates.listed(ctx.repo.id, status, after=after, limit=limit + 1)
        headers = {"Link": next_link(self.base(request), request, after=rows[limit - 1].id)} \
            if len(rows) > limit else None
        return json_response([request_json(r) for r in rows[:limit]], headers=headers)

    def _user(self, name: Any) -> int:
        if not isinstance(name, str) or not is_valid_name(name):
            raise BadRequest("user must be a user name")
        account = self.accounts.find(name)
        if account is None or account.kind != "user":
            raise NotFound(f"no user {name!r}", code="UserNotFound")
        return account.id

    async def handle(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self._managed(request, m)
        body = await read_json(request, allow_empty=False, offload=self.offload)
        status = body.get("status")
        if status not in STATUSES:
            raise BadRequest("status must be pending, accepted or rejected")
        reason = body.get("rejectionReason")
        if reason is not None and (status != "rejected" or not isinstance(reason, str) or len(reason) > 1000):
            raise BadRequest("rejectionReason is text (at most 1000 characters) for a rejected request only")
        if ("user" in body) == ("requestId" in body):
            raise BadRequest("name the request by user or by requestId (one of them)")
        if "user" in body:
            found = self.gates.of_user(ctx.repo.id, self._user(body["user"]))
        else:
            raw = body["requestId"]
            try:
                found = self.gates.by_id(ctx.repo.id, int(raw, 16)) if isinstance(raw, str) and len(raw) <= 24 \
                    else None
            except ValueError:
                found = None
        if found is None:
            raise NotFound("no access request from that user on this repository", code="AccessRequestNotFound")
        done = self.gates.put(ctx.repo.id, found.account_id, status, rejection_reason=reason)
        return json_response(request_json(done))

    async def grant(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self._managed(request, m)
        body = await read_json(request, allow_empty=False, offload=self.offload)
        account_id = self._user(body.get("user"))
        if self.gates.granted(ctx.repo.id, account_id):
            raise BadRequest(f"{body['user']} has access to {ctx.repo.full_name} already", code="AlreadyGranted")
        return json_response(request_json(self.gates.put(ctx.repo.id, account_id, "accepted")))


