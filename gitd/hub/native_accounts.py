"""Native API for the signed-in user: access tokens, SSH keys, and organisation members."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gitd.access.auth import Authenticator
from gitd.access.rules import Access, AccessLevel, Principal
from gitd.errors import BadRequest, Forbidden, NotFound, Unauthorized
from gitd.http.context import principal, read_json
from gitd.http.routing import Match
from gitd.hub.openapi import ApiRoute
from gitd.names import check_name
from gitd.ssh.keys import parse_public_key
from gitd.store import Account, Accounts

V1 = "/api/v1"
_STR = {"type": "string"}


def envelope(data: Any, *, status: int = 200) -> web.Response:
    return web.json_response({"msg": "OK", "data": data}, status=status)


def ssh_fingerprint(public_key: str) -> tuple[str, str]:
    """(fingerprint 'SHA256:...', normalised 'type base64') of an OpenSSH public key line,
    with the same checks as ``gitd sshkey add`` (no private keys, DSA or short RSA keys)."""
    parsed = parse_public_key(public_key)
    return parsed.fingerprint, parsed.public_key


class NativeAccounts:
    def __init__(self, accounts: Accounts, auth: Authenticator, access: Access):
        self.accounts = accounts
        self.auth = auth
        self.access = access

    def routes(self) -> list[ApiRoute]:
        return [
            ApiRoute("GET", V1 + "/user", "The signed-in account", self.me, "user"),
            ApiRoute("GET", V1 + "/user/tokens", "List your access tokens", self.list_tokens, "user"),
            ApiRoute("POST", V1 + "/user/tokens", "Create an access token (shown once)", self.create_token, "user",
                     body={"type": "object", "required": ["name"],
                           "properties": {"name": _STR, "scope": {"type": "string", "enum": ["read", "write"]}}}),
            ApiRoute("DELETE", V1 + "/user/tokens/{token}", "Revoke an access token by name", self.revoke_token,
                     "user"),
            ApiRoute("GET", V1 + "/user/ssh_keys", "List your SSH keys", self.list_keys, "user"),
            ApiRoute("POST", V1 + "/user/ssh_keys", "Add an SSH public key", self.add_key, "user",
                     body={"type": "object", "required": ["key"], "properties": {"key": _STR, "title": _STR}}),
            ApiRoute("DELETE", V1 + "/user/ssh_keys/{key}", "Remove an SSH key (by id or fingerprint)",
                     self.remove_key, "user"),
            ApiRoute("GET", V1 + "/orgs/{org}/members", "List an organisation's members", self.members, "orgs"),
            ApiRoute("PUT", V1 + "/orgs/{org}/members/{user}", "Add a member or change their role",
                     self.set_member, "orgs",
                     body={"type": "object", "properties": {"role": {"type": "string",
                                                                     "enum": ["read", "write", "admin"]}}}),
            ApiRoute("DELETE", V1 + "/orgs/{org}/members/{user}", "Remove a member", self.remove_member, "orgs"),
        ]

    def _me(self, request: web.Request, *, write: bool = False) -> tuple[Principal, Account]:
        who = principal(request)
        if who.account is None:
            raise Unauthorized("authentication required")
        if who.repo_id is not None:
            raise Forbidden("this credential is limited to one repository")
        if write and who.cap < AccessLevel.WRITE:
            raise Forbidden("a read-only token cannot change account settings")
        return who, who.account

    async def me(self, request: web.Request, m: Match) -> web.StreamResponse:
        _, account = self._me(request)
        return envelope({"id": account.id, "name": account.name, "type": account.kind, "email": account.email,
                         "is_admin": account.is_admin, "created_at": account.created_at,
                         "orgs": [{"name": o.name, "role": r} for o, r in self.accounts.orgs_of(account)]})

    # -- tokens ---------------------------------------------------------------------------------------
    async def list_tokens(self, request: web.Request, m: Match) -> web.StreamResponse:
        _, account = self._me(request)
        return envelope([{"id": t.id, "name": t.name, "scope": t.scope, "created_at": t.created_at,
                          "last_used_at": t.last_used_at} for t in self.accounts.tokens(account)])

    async def create_token(self, request: web.Request, m: Match) -> web.StreamResponse:
        _, account = self._me(request, write=True)
        body = await read_json(request, allow_empty=False)
        name = body.get("name")
        scope = body.get("scope", "write")
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            raise BadRequest("a token needs a name (at most 100 characters)")
        if scope not in ("read", "write"):
            raise BadRequest("scope must be read or write")
        secret = self.auth.create_token(account, name.strip(), scope)
        token = self.accounts.tokens(account, name=name.strip())[0]
        return envelope({"id": token.id, "name": token.name, "scope": token.scope, "created_at": token.created_at,
                         "token": secret}, status=201)

    async def revoke_token(self, request: web.Request, m: Match) -> web.StreamResponse:
        _, account = self._me(request, write=True)
        self.accounts.revoke_token(account, m.params["token"])
        return envelope(None)

    # -- ssh keys -----------------------------------------------------------------------------------------
    async def list_keys(self, request: web.Request, m: Match) -> web.StreamResponse:
        _, account = self._me(request)
        return envelope([_key_json(k) for k in self.accounts.ssh_keys(account)])

    async def add_key(self, request: web.Request, m: Match) -> web.StreamResponse:
        _, account = self._me(request, write=True)
        body = await read_json(request, allow_empty=False)
        text = body.get("key")
        if not isinstance(text, str):
            raise BadRequest('expected JSON {"key": "ssh-ed25519 AAAA...", "title": ...}')
        fingerprint, normalised = ssh_fingerprint(text)
        parts = text.strip().split(None, 2)
        title = body.get("title") or (parts[2] if len(parts) > 2 else "")
        key = self.accounts.add_ssh_key(account, fingerprint, normalised, str(title)[:200])
        return envelope(_key_json(key), status=201)

    async def remove_key(self, request: web.Request, m: Match) -> web.StreamResponse:
        _, account = self._me(request, write=True)
        wanted = m.params["key"]
        for k in self.accounts.ssh_keys(account):
            if str(k.id) == wanted or k.fingerprint == wanted:
                self.accounts.remove_ssh_key(account, k.fingerprint)
                return envelope(None)
        raise NotFound("no such key")

    # -- organisations ---------------------------------------------------------------------------------------
    def _org_for(self, request: web.Request, name: str, needed: AccessLevel) -> Account:
        who = principal(request)
        org = self.accounts.find(name)
        if org is not None and org.kind != "org":
            org = None
        level = self.access.namespace_level(who, org) if org is not None else AccessLevel.NONE
        if level == AccessLevel.NONE:
            if who.is_anonymous:
                raise Unauthorized("authentication required")
            raise NotFound(f"no organisation {name!r}")
        if level < needed:
            raise Forbidden("only organisation admins can change its members")
        return org  # type: ignore[return-value]

    async def members(self, request: web.Request, m: Match) -> web.StreamResponse:
        org = self._org_for(request, m.params["org"], AccessLevel.READ)
        return envelope([{"name": a.name, "role": role} for a, role in self.accounts.members(org)])

    async def set_member(self, request: web.Request, m: Match) -> web.StreamResponse:
        org = self._org_for(request, m.params["org"], AccessLevel.ADMIN)
        body = await read_json(request)
        role = body.get("role", "read")
        user = self.accounts.find(check_name(m.params["user"], "user name"))
        if user is None or user.kind != "user":
            raise NotFound(f"no user {m.params['user']!r}")
        self.accounts.set_member(org, user, role)
        return envelope({"name": user.name, "role": role})

    async def remove_member(self, request: web.Request, m: Match) -> web.StreamResponse:
        org = self._org_for(request, m.params["org"], AccessLevel.ADMIN)
        user = self.accounts.find(m.params["user"])
        if user is None:
            raise NotFound(f"no user {m.params['user']!r}")
        admins = [a for a, r in self.accounts.members(org) if r == "admin"]
        if [a.id for a in admins] == [user.id]:
            raise BadRequest("an organisation keeps at least one admin")
        self.accounts.remove_member(org, user)
        return envelope(None)


def _key_json(k) -> dict[str, Any]:
    return {"id": k.id, "title": k.title, "fingerprint": k.fingerprint, "key": k.public_key,
            "created_at": k.created_at}
