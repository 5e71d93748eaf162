"""Webhooks through the Hub API (``/api/settings/webhooks``: huggingface_hub's create_webhook,
list_webhooks, get_webhook, update_webhook, enable_webhook, disable_webhook, delete_webhook).

Each account manages its own webhooks (another's is 404). A webhook watches repositories
(``{"type": "model", "name": "ns/name"}``), users or organisations (every repository in
their namespace), for the domains ``repo`` and ``discussion``; its deliveries
(gitd.hub.webhook_events) only ever carry events of repositories its owner may read, so
watching a repository or namespace never reveals a private repository."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from gitd.access.rules import Access, AccessLevel, Principal
from gitd.errors import BadRequest, Forbidden, NotFound, Unauthorized
from gitd.http.context import principal, read_json
from gitd.http.routing import Match, Router
from gitd.hub.common import json_response
from gitd.names import is_valid_name
from gitd.store import Account, Accounts, Repos
from gitd.store.webhooks import DOMAINS, WATCH_KINDS, Webhook, Webhooks

MAX_WEBHOOKS = 100
MAX_WATCHED = 100
MAX_URL = 2000
MAX_SECRET = 256


def webhook_json(w: Webhook) -> dict[str, Any]:
    return {"id": f"{w.id:024x}", "url": w.url, "watched": [{"type": k, "name": n} for k, n in w.watched],
            "domains": w.domains, "secret": w.secret, "disabled": w.disabled, "job": None}


class HubWebhooks:
    def __init__(self, webhooks: Webhooks, accounts: Accounts, repo_rows: Repos, access: Access, *,
                 on_create: Callable[[], None] | None = None):
        self.webhooks = webhooks
        self.on_create = on_create  # starts deliveries (the daemon registers its webhooks plugin)
        self.accounts = accounts
        self.repo_rows = repo_rows
        self.access = access

    def add_routes(self, router: Router) -> None:
        base = "/api/settings/webhooks"
        router.add("GET", base, self.list, style="hub", name="hub-webhooks")
        router.add("POST", base, self.create, style="hub", name="hub-webhook-create")
        router.add("GET", base + "/{id}", self.get, style="hub", name="hub-webhook")
        router.add("POST", base + "/{id}", self.update, style="hub", name="hub-webhook-update")
        router.add("DELETE", base + "/{id}", self.delete, style="hub", name="hub-webhook-delete")
        router.add("POST", base + "/{id}/enable", self.enable, style="hub", name="hub-webhook-enable")
        router.add("POST", base + "/{id}/disable", self.disable, style="hub", name="hub-webhook-disable")

    @staticmethod
    def _caller(request: web.Request, *, write: bool) -> tuple[Principal, Account]:
        who = principal(request)
        if who.account is None:
            raise Unauthorized("sign in to manage webhooks")
        if who.repo_id is not None:
            raise Forbidden("this credential is limited to one repository")
        if write and who.cap < AccessLevel.WRITE:
            raise Forbidden("this token is read-only: managing webhooks needs a write token")
        return who, who.account

    def _mine(self, request: web.Request, m: Match, *, write: bool) -> tuple[Principal, Webhook]:
        who, account = self._caller(request, write=write)
        raw = m.params["id"]
        try:
            found = self.webhooks.get(int(raw, 16)) if len(raw) <= 24 else None
        except ValueError:
            found = None
        if found is None or found.owner_id != account.id:
            raise NotFound(f"webhook {raw[:30]!r} does not exist")
        return who, found

    # -- validation --------------------------------------------------------------------------------
    @staticmethod
    def _url(value: Any) -> str:
        if not isinstance(value, str) or len(value) > MAX_URL:
            raise BadRequest(f"url must be an http(s) URL of at most {MAX_URL} characters")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadRequest("url must be an http(s) URL")
        return value

    @staticmethod
    def _domains(value: Any) -> list[str]:
        if not isinstance(value, list) or not value or any(d not in DOMAINS for d in value):
            raise BadRequest(f"domains must be a non-empty list of {', '.join(DOMAINS)}")
        return list(dict.fromkeys(value))

    @staticmethod
    def _secret(value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or len(value) > MAX_SECRET:
            raise BadRequest(f"secret must be text of at most {MAX_SECRET} characters")
        return value or None

    def _watched(self, who: Principal, value: Any) -> list[tuple[str, str]]:
        """What a webhook watches: each item must exist and be readable by the caller (a private
        repository they cannot read is refused exactly as a missing one)."""
        if not isinstance(value, list) or not value or len(value) > MAX_WATCHED:
            raise BadRequest(f"watched must be a list of 1 to {MAX_WATCHED} items {{type, name}}")
        out = []
        for item in value:
            kind, name = (item.get("type"), item.get("name")) if isinstance(item, dict) else (None, None)
            if kind not in WATCH_KINDS or not isinstance(name, str):
                raise BadRequest(f"a watched item is {{type: {', '.join(WATCH_KINDS)}, name}}")
            if kind in ("user", "org"):
                account = self.accounts.find(name) if is_valid_name(name) else None
                if account is None or account.kind != kind:
                    raise BadRequest(f"no {kind} named {name[:100]!r}")
                out.append((kind, account.name))
                continue
            ns, _, repo_name = name.partition("/")
            repo = self.repo_rows.find(kind, ns, repo_name) if is_valid_name(ns) and is_valid_name(repo_name) \
                else None
            if repo is None or self.access.level(who, repo, gate=False) < AccessLevel.READ:
                raise BadRequest(f"no {kind} repository named {name[:200]!r}", code="RepoNotFound")
            out.append((kind, repo.full_name))
        return out

    # -- routes ------------------------------------------------------------------------------------
    async def list(self, request: web.Request, m: Match) -> web.StreamResponse:
        _, account = self._caller(request, write=False)
        return json_response([webhook_json(w) for w in self.webhooks.of_owner(account.id)])

    async def get(self, request: web.Request, m: Match) -> web.StreamResponse:
        return json_response({"webhook": webhook_json(self._mine(request, m, write=False)[1])})

    async def create(self, request: web.Request, m: Match) -> web.StreamResponse:
        who, account = self._caller(request, write=True)
        body = await read_json(request, allow_empty=False)
        unknown = sorted(str(k)[:40] for k in body if k not in ("watched", "domains", "url", "secret"))
        if unknown:  # jobSourceId, secrets: the Hub's job webhooks; gitd runs no jobs for webhooks
            raise BadRequest(f"unsupported webhook field(s): {', '.join(unknown)}; gitd's webhooks POST to a url")
        if self.webhooks.count_of(account.id) >= MAX_WEBHOOKS:
            raise BadRequest(f"an account has at most {MAX_WEBHOOKS} webhooks")
        created = self.webhooks.create(account.id, self._url(body.get("url")), self._secret(body.get("secret")),
                                       self._domains(body.get("domains", list(DOMAINS))),
                                       self._watched(who, body.get("watched")))
        if self.on_create is not None:
            self.on_create()
        return json_response({"webhook": webhook_json(created)})

    async def update(self, request: web.Request, m: Match) -> web.StreamResponse:
        who, found = self._mine(request, m, write=True)
        body = await read_json(request, allow_empty=True)
        unknown = sorted(str(k)[:40] for k in body if k not in ("watched", "domains", "url", "secret"))
        if unknown:
            raise BadRequest(f"unsupported webhook field(s): {', '.join(unknown)}")
        self.webhooks.update(
            found.id,
            url=self._url(body["url"]) if body.get("url") is not None else None,
            secret=self._secret(body.get("secret")),
            domains=self._domains(body["domains"]) if body.get("domains") is not None else None,
            watched=self._watched(who, body["watched"]) if body.get("watched") is not None else None)
        updated = self.webhooks.get(found.id)
        assert updated is not None
        return json_response({"webhook": webhook_json(updated)})

    async def _switch(self, request: web.Request, m: Match, disabled: bool) -> web.StreamResponse:
        _, found = self._mine(request, m, write=True)
        self.webhooks.update(found.id, disabled=disabled)
        updated = self.webhooks.get(found.id)
        assert updated is not None
        return json_response({"webhook": webhook_json(updated)})

    async def enable(self, request: web.Request, m: Match) -> web.StreamResponse:
        return await self._switch(request, m, False)

    async def disable(self, request: web.Request, m: Match) -> web.StreamResponse:
        return await self._switch(request, m, True)

    async def delete(self, request: web.Request, m: Match) -> web.StreamResponse:
        _, found = self._mine(request, m, write=True)
        self.webhooks.delete(found.id)
        return json_response({})


