"""Refs, branches, tags and the commit history, through the hook chain for every ref change."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pygit2
from aiohttp import web

from gitd.access.rules import Access, AccessLevel
from gitd.errors import BadRequest, Conflict, Forbidden, PushRejected
from gitd.git.refname import check_branch_name, check_ref_component_rules
from gitd.git.refs import RefConflict
from gitd.hooks.chain import HookChain
from gitd.http.context import read_json
from gitd.http.offload import Offload
from gitd.http.routing import Match, Router
from gitd.hub.common import HubBase, RepoCtx, api_patterns, int_param, json_response, next_link
from gitd.hub.gitread import RepoReader, RevisionNotFound, iso
from gitd.plugins.events import ZERO_OID, RefUpdate
from gitd.repos import RepoService
from gitd.store.redirects import Redirects

COMMITS_PAGE = 50


def _check_ref_name(name: str, what: str, *, existing: bool = False) -> str:
    """A branch or tag name from the URL or body: git's rules for new ones (``check_branch_name``);
    deleting only needs a well-formed name (so a branch made before the rules, ``HEAD``, can go)."""
    if existing:
        if not check_ref_component_rules(name) or name.startswith("refs/"):
            raise BadRequest(f"invalid {what} name {name[:100]!r}")
        return name
    return check_branch_name(name, what)


class HubHistory(HubBase):
    shows_gated = True  # what the Hub shows of a gated repository to all

    def __init__(self, repos: RepoService, access: Access, reader: RepoReader, chain: HookChain, *,
                 email_domain: str = "users.noreply.gitd", public_url: str = "",
                 redirects: Redirects | None = None, offload: Offload | None = None):
        super().__init__(repos, access, public_url=public_url, redirects=redirects,
                         offload=offload)
        self.reader = reader
        self.chain = chain
        self.email_domain = email_domain

    def add_routes(self, router: Router) -> None:
        router.add("GET", api_patterns("/refs"), self.refs, style="hub", name="hub-refs")
        router.add(("POST", "DELETE"), api_patterns("/branch/{branch}"), self.branch, style="hub",
                   name="hub-branch")
        router.add(("POST", "DELETE"), api_patterns("/tag/{rev}"), self.tag, style="hub", name="hub-tag")
        router.add("GET", api_patterns("/commits/{rev}"), self.commits, style="hub", name="hub-commits")

    async def refs(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self.api_repo(request, m)

        def items(prefix: str) -> list[dict[str, str]]:
            return [{"name": name[len(prefix):], "ref": name, "targetCommit": sha}
                    for name, sha in self.reader.refs(ctx.path, prefix)]

        out: dict[str, Any] = {"branches": items("refs/heads/"), "converts": items("refs/convert/"),
                               "tags": items("refs/tags/")}
        if request.query.get("include_prs") in ("1", "true"):
            out["pullRequests"] = items("refs/pr/")
        return json_response(out)

    async def _move(self, ctx: RepoCtx, update: RefUpdate) -> None:
        try:
            await self.chain.apply_updates(self.repos.info(ctx.repo), [update], via="api", pusher=ctx.principal.name)
        except RefConflict:
            raise Conflict(f"{update.ref} changed meanwhile; try again")
        except PushRejected as exc:
            raise Forbidden(exc.message, code="PushRejected")

    async def branch(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self.api_repo(request, m, AccessLevel.WRITE)
        name = _check_ref_name(m.params["branch"], "branch", existing=request.method == "DELETE")
        ref = f"refs/heads/{name}"
        current = self.reader.head(ctx.path, ref)
        if request.method == "DELETE":
            if current is None:
                raise RevisionNotFound(f"branch {name!r} does not exist")
            await self._move(ctx, RefUpdate(ref, current, ZERO_OID))
            return json_response({})
        if current is not None:
            raise Conflict(f"branch {name!r} already exists")
        body = await read_json(request, offload=self.offload)
        start = body.get("startingPoint") or None
        if start is not None and not isinstance(start, str):
            raise BadRequest("startingPoint must be a revision")
        if start is None:
            target = self.reader.default_head(ctx.path, ctx.repo.default_branch)
            if target is None:
                raise BadRequest("the repository is empty: push or commit to it before creating branches")
        else:
            target = self.reader.resolve(ctx.path, start)
        await self._move(ctx, RefUpdate(ref, ZERO_OID, target))
        return json_response({})

    async def tag(self, request: web.Request, m: Match) -> web.StreamResponse:
        if request.method == "DELETE":
            ctx = self.api_repo(request, m, AccessLevel.WRITE)
            name = _check_ref_name(m.params["rev"], "tag", existing=True)
            ref = f"refs/tags/{name}"
            current = self.reader.open(ctx.path).references.get(ref)
            if current is None:
                raise RevisionNotFound(f"tag {name!r} does not exist")
            await self._move(ctx, RefUpdate(ref, str(current.target), ZERO_OID))
            return json_response({})
        ctx = self.api_repo(request, m, AccessLevel.WRITE)
        body = await read_json(request, offload=self.offload)
        name = body.get("tag")
        if not isinstance(name, str):
            raise BadRequest('expected JSON {"tag": NAME, "message"?: TEXT}')
        _check_ref_name(name, "tag")
        ref = f"refs/tags/{name}"
        if self.reader.open(ctx.path).references.get(ref) is not None:
            raise Conflict(f"tag {name!r} already exists")
        target = self.reader.resolve(ctx.path, m.params["rev"])
        message = body.get("message")
        if message:
            target = await asyncio.to_thread(self._annotated, ctx, name, target, str(message))
        await self._move(ctx, RefUpdate(ref, ZERO_OID, target))
        return json_response({})

    def _annotated(self, ctx: RepoCtx, name: str, target: str, message: str) -> str:
        who = ctx.principal.name or "anonymous"
        sig = pygit2.Signature(who, f"{who}@{self.email_domain}", int(time.time()), 0)
        repo = self.reader.open(ctx.path)
        return str(repo.odb.write(pygit2.GIT_OBJECT_TAG, _tag_object(name, target, sig, message)))

    async def commits(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self.api_repo(request, m)
        commit = self.reader.resolve(ctx.path, m.params["rev"])
        page = int_param(request, "p", 0)
        limit = int_param(request, "limit", COMMITS_PAGE, lo=1, hi=1000)
        formatted = "formatted" in request.query.getall("expand[]", []) + request.query.getall("expand", [])
        out, more = await asyncio.to_thread(self._page, ctx, commit, page * limit, limit, formatted)
        headers = {}
        if more:
            headers["Link"] = next_link(self.base(request), request, p=page + 1)
        return json_response(out, headers=headers)

    def _page(self, ctx: RepoCtx, commit: str, start: int, limit: int, formatted: bool
              ) -> tuple[list[dict[str, Any]], bool]:
        out: list[dict[str, Any]] = []
        for n, c in enumerate(self.reader.log(ctx.path, commit)):
            if n < start:
                continue
            if len(out) == limit:
                return out, True
            title, _, rest = c.message.partition("\n")
            item: dict[str, Any] = {"id": str(c.id), "authors": [{"user": c.author.name}],
                                    "date": iso(c.commit_time), "title": title.strip(),
                                    "message": rest.strip()}
            if formatted:
                item["formatted"] = {"title": _html(title.strip()), "message": _html(rest.strip())}
            out.append(item)
        return out, False


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _tag_object(name: str, target: str, sig: pygit2.Signature, message: str) -> bytes:
    offset = sig.offset
    sign = "-" if offset < 0 else "+"
    tz = f"{sign}{abs(offset) // 60:02d}{abs(offset) % 60:02d}"
    head = f"object {target}\ntype commit\ntag {name}\ntagger {sig.name} <{sig.email}> {sig.time} {tz}\n\n"
    return (head + message.rstrip() + "\n").encode()
