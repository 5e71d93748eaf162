"""Accounts and repository management: whoami, create/delete/move, settings, and small client probes."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gitd.access.auth import hash_token
from gitd.access.rules import Access, AccessLevel
from gitd.errors import BadRequest, Conflict, GitdError, Unauthorized
from gitd.http.context import INLINE_JSON, parse_json, principal, read_json, read_limited
from gitd.http.errors import error_response, header_safe
from gitd.http.offload import Offload
from gitd.http.routing import Match, Router
from gitd.hub.card import CARD_YAML_MAX, README_MAX, CardError, parse_card
from gitd.hub.card_schema import check_card
from gitd.hub.common import API_TYPES, HubBase, api_patterns, json_response
from gitd.hub.seed import RepoSeeder
from gitd.names import SPACE_SDKS, check_name, split_full_name
from gitd.repos import RepoService
from gitd.store import Accounts, Repo
from gitd.store.redirects import Redirects

XET_MESSAGE = (
    "This server does not support Xet storage. Set HF_HUB_DISABLE_XET=1 in the environment of your "
    "huggingface_hub client to upload large files through Git LFS instead."
)


# A README as JSON (escapes make it bigger). Anyone may call validate-yaml, and json.loads holds the
# GIL for the whole parse: the cap keeps that to a few tens of milliseconds whatever the JSON holds.
VALIDATE_BODY_MAX = 2 * README_MAX


# What POST /api/repos/create (create_repo) may carry.
CREATE_KEYS = frozenset({"name", "organization", "type", "private", "visibility", "sdk"})

# What PUT .../settings (update_repo_settings) may carry.
SETTINGS_KEYS = frozenset({"private", "visibility", "gated"})


class NotImplementedOnServer(GitdError):
    status = 501
    code = "XetNotSupported"


def repo_type_of(body: dict[str, Any]) -> str:
    repo_type = body.get("type") or "model"
    if repo_type not in API_TYPES.values():
        raise BadRequest(f"unknown repository type {repo_type!r}")
    return repo_type


def visibility_of(body: dict[str, Any]) -> bool | None:
    """True for private, False for public, None when the body does not say."""
    if "visibility" in body and body["visibility"] is not None:
        vis = body["visibility"]
        if vis not in ("private", "public", "protected"):
            raise BadRequest("visibility must be private, public or protected")
        return vis != "public"  # "protected" (visible to members only here) is private
    if "private" in body and body["private"] is not None:
        if not isinstance(body["private"], bool):
            raise BadRequest("private must be true or false")
        return body["private"]
    return None


class HubManage(HubBase):
    shows_gated = True  # what the Hub shows of a gated repository to all

    def __init__(self, repos: RepoService, access: Access, accounts: Accounts, seeder: RepoSeeder, *,
                 public_url: str = "", redirects: Redirects | None = None, offload: Offload | None = None,
                 max_card_size: int = CARD_YAML_MAX):
        super().__init__(repos, access, public_url=public_url, redirects=redirects,
                         offload=offload)
        self.accounts = accounts
        self.seeder = seeder
        self.max_card_size = max_card_size

    def add_routes(self, router: Router) -> None:
        router.add("GET", "/api/whoami-v2", self.whoami, style="hub", name="hub-whoami")
        router.add("GET", "/api/agent-harnesses", self.agent_harnesses, style="hub", name="hub-agent-harnesses")
        router.add("POST", "/api/validate-yaml", self.validate_yaml, style="hub", name="hub-validate-yaml")
        router.add("POST", "/api/repos/create", self.create, style="hub", name="hub-repo-create")
        router.add("DELETE", "/api/repos/delete", self.delete, style="hub", name="hub-repo-delete")
        router.add("POST", "/api/repos/move", self.move, style="hub", name="hub-repo-move")
        router.add("PUT", api_patterns("/settings"), self.settings, style="hub", name="hub-settings")
        router.add(("GET", "POST"), api_patterns("/xet-write-token/{rev}"), self.xet, style="hub",
                   name="hub-xet-write")
        router.add(("GET", "POST"), api_patterns("/xet-read-token/{rev}"), self.xet, style="hub",
                   name="hub-xet-read")

    async def whoami(self, request: web.Request, m: Match) -> web.StreamResponse:
        who = principal(request)
        if who.account is None:
            raise Unauthorized("Invalid user token: send an access token as 'Authorization: Bearer TOKEN'")
        account = who.account
        token_name, role = None, "write" if who.cap >= AccessLevel.WRITE else "read"
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            found = self.accounts.token_by_hash(hash_token(value.strip()))
            if found is not None:
                token_name, role = found[0].name, found[0].scope
        orgs = [{"name": org.name, "type": "org", "roleInOrg": r} for org, r in self.accounts.orgs_of(account)] \
            if account.kind == "user" else []
        return json_response({
            "type": account.kind, "id": str(account.id), "name": account.name, "fullname": account.name,
            "email": account.email, "isPro": False, "canPay": False, "emailVerified": account.email is not None,
            "orgs": orgs,
            "auth": {"type": "access_token",
                     "accessToken": {"displayName": token_name or f"{who.method}-{account.name}", "role": role}},
        })

    async def agent_harnesses(self, request: web.Request, m: Match) -> web.StreamResponse:
        return json_response({"standardEnvVars": [], "harnesses": {}})

    async def validate_yaml(self, request: web.Request, m: Match) -> web.StreamResponse:
        # Always JSON: huggingface_hub reads the body before it looks at the status. Anyone may call
        # this, so the body is capped and the YAML parsed off the loop, with a time limit.
        def refuse(status: int, code: str, message: str) -> web.Response:
            return json_response({"errors": [{"message": message}]}, status=status,
                                 headers={"X-Error-Code": code, "X-Error-Message": header_safe(message)})

        try:
            raw = await read_limited(request, VALIDATE_BODY_MAX, "the README")
            body = parse_json(raw) if len(raw) <= INLINE_JSON else \
                await self.offload.run(parse_json, raw, what="parsing the JSON body")
        except GitdError as exc:
            if exc.status in (400, 413):
                return refuse(exc.status, exc.code, exc.message)
            raise
        content = body.get("content", "") if isinstance(body, dict) else None
        if not isinstance(content, str):
            return refuse(400, "BadRequest", 'expected JSON {"content": README text}')
        try:
            card = await self.offload.run(lambda: parse_card(content, max_yaml=self.max_card_size),
                                          what="checking the card")
        except CardError as exc:
            return refuse(400, "InvalidYaml", str(exc))
        errors, warnings = check_card(card)
        if errors:
            return json_response({"errors": [{"message": e} for e in errors],
                                  "warnings": [{"message": w} for w in warnings]}, status=400,
                                 headers={"X-Error-Code": "InvalidMetadata",
                                          "X-Error-Message": header_safe("; ".join(errors))})
        return json_response({"warnings": [{"message": w} for w in warnings]} if warnings else {})

    # -- repositories ------------------------------------------------------------------------------
    def _target(self, request: web.Request, body: dict[str, Any]) -> tuple[str, str]:
        name = body.get("name")
        if not isinstance(name, str):
            raise BadRequest("name is required")
        if "/" in name:
            return split_full_name(name)
        org = body.get("organization")
        if org is not None and not isinstance(org, str):
            raise BadRequest("organization must be a string")
        if not org:
            who = principal(request)
            if who.account is None:
                raise Unauthorized("authentication required")
            org = who.account.name
        return check_name(org, "namespace"), check_name(name, "repository name")

    async def create(self, request: web.Request, m: Match) -> web.StreamResponse:
        body = await read_json(request, allow_empty=False)
        unknown = sorted(str(k)[:40] for k, v in body.items() if k not in CREATE_KEYS and v is not None)
        if unknown:  # never accepted and ignored: a Space's hardware, secrets, a resource group, a region...
            raise BadRequest(f"unsupported create_repo parameter(s): {', '.join(unknown)}; gitd takes "
                             f"{', '.join(sorted(CREATE_KEYS))} (set a Space's secrets and variables once it exists)",
                             code="UnsupportedParameter")
        namespace, name = self._target(request, body)
        repo_type = repo_type_of(body)
        private = visibility_of(body)
        sdk = body.get("sdk")
        if repo_type == "space" and sdk not in (None, *SPACE_SDKS):
            raise BadRequest(f"sdk must be one of {', '.join(SPACE_SDKS)}")
        who = principal(request)
        owner = self.accounts.find(namespace)
        self.access.require_namespace(who, owner, AccessLevel.WRITE)
        assert owner is not None
        existing = self.repos.find(repo_type, namespace, name)
        if existing is not None:
            exists = Conflict("You already created this repo")
            return error_response(exists, "hub", url=self.repo_url(request, existing))
        try:
            repo = await self.seeder.create(owner, name, repo_type, private=bool(private),
                                            author=who.name or owner.name, sdk=sdk if repo_type == "space" else None)
        except Conflict as exc:
            found = self.repos.find(repo_type, namespace, name)
            if found is None:
                raise
            return error_response(exc, "hub", url=self.repo_url(request, found))
        return json_response({"url": self.repo_url(request, repo), "name": repo.full_name, "id": str(repo.id)})

    def _existing(self, request: web.Request, repo_type: str, namespace: str, name: str,
                  needed: AccessLevel) -> Repo:
        return self.lookup(request, repo_type, namespace, name, needed).repo

    async def delete(self, request: web.Request, m: Match) -> web.StreamResponse:
        body = await read_json(request, allow_empty=False)
        namespace, name = self._target(request, body)
        repo = self._existing(request, repo_type_of(body), namespace, name, AccessLevel.ADMIN)
        self.repos.delete(repo)
        return json_response({})

    async def move(self, request: web.Request, m: Match) -> web.StreamResponse:
        body = await read_json(request, allow_empty=False)
        src, dst = body.get("fromRepo"), body.get("toRepo")
        if not isinstance(src, str) or not isinstance(dst, str):
            raise BadRequest('expected JSON {"fromRepo": "ns/name", "toRepo": "ns/name", "type": ...}')
        repo_type = repo_type_of(body)
        src_ns, src_name = split_full_name(src)
        dst_ns, dst_name = split_full_name(dst)
        repo = self._existing(request, repo_type, src_ns, src_name, AccessLevel.ADMIN)
        owner = self.accounts.find(dst_ns)
        self.access.require_namespace(principal(request), owner, AccessLevel.WRITE)
        assert owner is not None
        other = self.repos.find(repo_type, dst_ns, dst_name)
        if other is not None and other.id != repo.id:
            raise Conflict(f"{dst} already exists")
        moved = self.repos.move(repo, owner, dst_name)
        if self.redirects is not None:
            self.redirects.add(repo.type, repo.namespace, repo.name, repo.id)
        return json_response({"url": self.repo_url(request, moved)})

    async def settings(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self.api_repo(request, m, AccessLevel.ADMIN)
        body = await read_json(request, allow_empty=False)
        unknown = sorted(str(k)[:40] for k in body if k not in SETTINGS_KEYS)
        if unknown:  # never accepted and ignored (the Hub has more settings than gitd keeps)
            raise BadRequest(f"unsupported repository setting(s): {', '.join(unknown)}; gitd keeps "
                             f"{', '.join(sorted(SETTINGS_KEYS))}")
        private = visibility_of(body)
        gated = body.get("gated")
        if gated not in (False, None, "auto", "manual"):
            raise BadRequest('gated must be false, "auto" or "manual"')
        if private is not None and private != ctx.repo.private:
            self.repos.set_private(ctx.repo, private)
        if "gated" in body and gated is not None and self.access.gates is not None:
            self.access.gates.set_mode(ctx.repo.id, gated or None)
        return json_response({})

    async def xet(self, request: web.Request, m: Match) -> web.StreamResponse:
        self.api_repo(request, m)  # a hidden repository stays hidden
        raise NotImplementedOnServer(XET_MESSAGE)
