"""The native REST API under /api/v1: repositories, files, refs and history (plus csghub-sdk's routes).

Every answer is ``{"msg": "OK", "data": ...}``; errors use the "api" style. The route
table (``ApiRoute``) feeds both the router and ``/api/v1/openapi.json``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Any

from aiohttp import BodyPartReader, web

from gitd.access.rules import Access, AccessLevel
from gitd.errors import BadRequest, Conflict, NotFound
from gitd.git.quarantine import ObjectQuarantine
from gitd.git.refname import check_revision
from gitd.http.context import principal, read_json
from gitd.http.offload import Offload
from gitd.http.routing import Match, Router
from gitd.hub.commits import AddFile, CommitWriter, DeleteFile, Op, check_path
from gitd.hub.common import API_TYPES, HubBase, RepoCtx, dumps_in_pieces, int_param
from gitd.hub.files import FileView
from gitd.hub.gitread import RepoReader, iso
from gitd.hub.native_accounts import NativeAccounts, envelope
from gitd.hub.native_runs import run_routes
from gitd.hub.openapi import ApiRoute, openapi_document, register
from gitd.hub.seed import RepoSeeder
from gitd.hub.upload import UploadPlanner
from gitd.names import check_name
from gitd.plugins.fields import InfoFields
from gitd.plugins.host import PluginHost
from gitd.repos import RepoService
from gitd.store import Accounts, Repo, Repos
from gitd.store.redirects import Redirects

V1 = "/api/v1"
# The native commit carries its files inline, base64: a few JSON values, however big.
COMMIT_JSON_MAX = 16 * 1024 * 1024
R = V1 + "/{types}/{ns}/{name}"
_STR = {"type": "string"}
_BOOL = {"type": "boolean"}
REPO_BODY = {"type": "object", "required": ["name"], "properties": {
    "namespace": _STR, "name": _STR, "private": _BOOL, "description": _STR, "default_branch": _STR,
    "nickname": _STR, "license": _STR}}
UPDATE_BODY = {"type": "object", "properties": {"private": _BOOL, "description": _STR, "default_branch": _STR}}
COMMIT_BODY = {"type": "object", "required": ["message", "files"], "properties": {
    "message": _STR, "files": {"type": "array", "items": {"type": "object", "properties": {
        "path": _STR, "action": {"type": "string", "enum": ["create", "update", "delete"]},
        "content": {"type": "string", "description": "base64"}}}}}}
PREUPLOAD_BODY = {"type": "object", "properties": {"files": {"type": "array", "items": {
    "type": "object", "properties": {"path": _STR, "size": {"type": "integer"}}}}}}
UPLOAD_BODY = {"type": "object", "properties": {"file": {"type": "string", "format": "binary"},
                                                "file_path": _STR, "branch": _STR, "message": _STR}}


_LINE_BREAKS = {10: None, 13: None}

class NativeAPI(HubBase):
    def __init__(self, repos: RepoService, access: Access, accounts: Accounts, repo_rows: Repos,
                 reader: RepoReader, writer: CommitWriter, view: FileView, accounts_api: NativeAccounts,
                 planner: UploadPlanner, seeder: RepoSeeder, *, max_inline_file: int, max_listed_files: int,
                 fields: InfoFields | None = None,
                 public_url: str = "", redirects: Redirects | None = None, offload: Offload | None = None,
                 plugins: PluginHost | None = None):
        super().__init__(repos, access, public_url=public_url, redirects=redirects, offload=offload)
        self.plugins = plugins
        self.fields = fields
        self.accounts = accounts
        self.repo_rows = repo_rows
        self.reader = reader
        self.writer = writer
        self.view = view
        self.max_inline_file = max_inline_file
        self.max_listed_files = max_listed_files
        self.planner = planner
        self.accounts_api = accounts_api
        self.seeder = seeder

    def routes(self) -> list[ApiRoute]:
        # Account routes first: /api/v1/user and /api/v1/orgs/... would match the {types} patterns.
        return [
            *self.accounts_api.routes(),
            *run_routes(self.plugins, self.repos, self.access),
            ApiRoute("GET", V1 + "/{types}", "List the repositories you can see", self.list_repos, "repos",
                     query={"search": "substring of NAMESPACE/NAME", "namespace": "only this namespace",
                            "page": "page number (1-based)", "per_page": "page size (max 100)"}, public=True),
            ApiRoute("POST", V1 + "/{types}", "Create a repository", self.create_repo, "repos", body=REPO_BODY),
            ApiRoute("GET", R, "Get a repository", self.get_repo, "repos", public=True),
            ApiRoute("PUT", R, "Update a repository", self.update_repo, "repos", body=UPDATE_BODY),
            ApiRoute("PATCH", R, "Update a repository", self.update_repo, "repos", body=UPDATE_BODY),
            ApiRoute("DELETE", R, "Delete a repository", self.delete_repo, "repos"),
            ApiRoute("GET", R + "/tree/{rev}/{path*}", "List a folder", self.tree, "files",
                     query={"recursive": "true to list every file below"}, public=True),
            ApiRoute("GET", R + "/raw/{rev}/{path*}", "A file's raw content", self.raw, "files", public=True,
                     raw=True),
            ApiRoute("GET", R + "/blob/{rev}/{path*}", "A file's metadata and base64 content", self.blob,
                     "files", public=True),
            ApiRoute("GET", R + "/branches", "List branches", self.branches, "refs", public=True),
            ApiRoute("GET", R + "/tags", "List tags", self.tags, "refs", public=True),
            ApiRoute("GET", R + "/commits/{rev}", "Commits reachable from a revision, newest first",
                     self.commits, "history", query={"page": "page (1-based)", "per_page": "page size"},
                     public=True),
            ApiRoute("POST", R + "/commit/{rev}", "Commit file changes to a branch", self.commit, "files",
                     body=COMMIT_BODY),
            ApiRoute("POST", R + "/preupload/{rev}", "How each file should be uploaded", self.preupload,
                     "files", body=PREUPLOAD_BODY),
            ApiRoute("POST", R + "/upload_file", "Upload one file (multipart form)", self.upload_file, "files",
                     body=UPLOAD_BODY, body_type="multipart/form-data"),
        ]

    def add_routes(self, router: Router) -> None:
        router.add("GET", V1 + "/openapi.json", self.openapi, style="api", name="api-openapi")
        register(router, self.routes())

    async def openapi(self, request: web.Request, m: Match) -> web.StreamResponse:
        return web.json_response(openapi_document(self.routes(), self.base(request)))

    # -- helpers --------------------------------------------------------------------------------------
    def _type(self, m: Match) -> str:
        repo_type = API_TYPES.get(m.params["types"])
        if repo_type is None:
            raise NotFound(f"unknown repository type {m.params['types']!r}")
        return repo_type

    def _repo_json(self, request: web.Request, repo: Repo) -> dict[str, Any]:
        return {"id": repo.id, "namespace": repo.namespace, "name": repo.name, "path": repo.full_name,
                "type": repo.type, "private": repo.private, "description": repo.description,
                "default_branch": repo.default_branch, "created_at": repo.created_at,
                "updated_at": repo.updated_at, "url": self.repo_url(request, repo),
                "clone_url": f"{self.repo_url(request, repo)}.git"}

    # -- repositories ------------------------------------------------------------------------------------
    async def list_repos(self, request: web.Request, m: Match) -> web.StreamResponse:
        repo_type = self._type(m)
        who = principal(request)
        owner = None
        if request.query.get("namespace"):
            owner = self.accounts.find(request.query["namespace"])
            if owner is None:
                return envelope({"items": [], "total": 0})
        repos = [r for r in self.repo_rows.list(repo_type=repo_type, owner=owner,
                                                         search=request.query.get("search") or None)
                 if self.access.level(who, r) >= AccessLevel.READ]
        page = int_param(request, "page", 1, lo=1)
        per_page = int_param(request, "per_page", 50, lo=1, hi=100)
        chunk = repos[(page - 1) * per_page:page * per_page]
        return envelope({"items": [self._repo_json(request, r) for r in chunk], "total": len(repos)})

    async def create_repo(self, request: web.Request, m: Match) -> web.StreamResponse:
        repo_type = self._type(m)
        body = await read_json(request, allow_empty=False, offload=self.offload)
        who = principal(request)
        name = check_name(str(body.get("name", "")), "repository name")
        namespace = body.get("namespace") or (who.account.name if who.account else "")
        owner = self.accounts.find(str(namespace)) if namespace else None
        self.access.require_namespace(who, owner, AccessLevel.WRITE)
        assert owner is not None
        if self.repos.find(repo_type, owner.name, name) is not None:
            raise Conflict(f"{owner.name}/{name} already exists")
        # The first commit (.gitattributes), as the Hub and CSGHub make it: csghub-sdk clones the
        # default branch right after creating the repository.
        repo = await self.seeder.create(owner, name, repo_type, private=bool(body.get("private", False)),
                                        author=who.name or owner.name)
        if isinstance(body.get("description"), str):
            repo = self.repo_rows.update(repo, description=body["description"])
        # 200, as CSGHub answers (csghub-sdk takes any other status for a failure).
        return envelope(self._repo_json(request, repo))

    def _ctx(self, request: web.Request, m: Match, needed: AccessLevel = AccessLevel.READ) -> RepoCtx:
        return self.lookup(request, self._type(m), m.params["ns"], m.params["name"], needed)

    async def get_repo(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self._ctx(request, m)
        data = self._repo_json(request, ctx.repo)
        data["head"] = self.reader.default_head(ctx.path, ctx.repo.default_branch)
        if self.fields is not None and self.fields.active():
            data = await asyncio.to_thread(self.fields.add, self.repos.info(ctx.repo), data["head"], data)
        return envelope(data)

    async def update_repo(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self._ctx(request, m, AccessLevel.ADMIN)
        body = await read_json(request, allow_empty=False, offload=self.offload)
        fields: dict[str, Any] = {}
        if "private" in body:
            if not isinstance(body["private"], bool):
                raise BadRequest("private must be true or false")
            fields["private"] = body["private"]
        if "description" in body:
            if not isinstance(body["description"], str):
                raise BadRequest("description must be a string")
            fields["description"] = body["description"]
        if "default_branch" in body:
            branch = body["default_branch"]
            if not isinstance(branch, str) or self.reader.head(ctx.path, f"refs/heads/{branch}") is None:
                raise BadRequest("default_branch must name an existing branch")
            self.reader.open(ctx.path).references.create("HEAD", f"refs/heads/{branch}", force=True)
            fields["default_branch"] = branch
        repo = ctx.repo
        if "private" in fields:  # through RepoService, so plugins hear of the change
            repo = self.repos.set_private(repo, fields.pop("private"))
        repo = self.repo_rows.update(repo, **fields) if fields else repo
        return envelope(self._repo_json(request, repo))

    async def delete_repo(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self._ctx(request, m, AccessLevel.ADMIN)
        self.repos.delete(ctx.repo)
        return envelope(None)

    # -- files ----------------------------------------------------------------------------------------------
    async def tree(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self._ctx(request, m)
        commit = self.reader.resolve(ctx.path, m.params["rev"])
        under = m.params["path"].strip("/")
        if under:
            entry = self.reader.entry(ctx.path, commit, under)
            if entry is None or entry.kind != "directory":
                raise NotFound(f"no folder {under!r} at {m.params['rev']!r}", code="EntryNotFound")
        recursive = request.query.get("recursive") in ("1", "true")

        def listing() -> str:
            # Trees are client data: the walk is bounded (hub.max_listed_files) and off the loop.
            walk = self.reader.walk(ctx.path, commit, under, recursive=recursive, limit=self.max_listed_files)
            items = []
            for e in walk.entries:
                j = self.view.tree_json(ctx.repo.id, e)
                items.append({"name": e.path.rsplit("/", 1)[-1], "path": e.path,
                              "type": "dir" if e.kind == "directory" else "file", "size": j["size"], "sha": e.oid,
                              "lfs": "lfs" in j, **({"lfs_oid": j["lfs"]["oid"]} if "lfs" in j else {})})
            data: dict[str, Any] = {"commit": commit, "items": items}
            if walk.truncated:
                data["truncated"] = True
            return '{"msg":"OK","data":' + dumps_in_pieces(data) + "}"

        text = await self.offload.run(listing, what="the tree listing")
        return web.Response(text=text, content_type="application/json")

    def _file(self, ctx: RepoCtx, rev: str, file_path: str) -> tuple[str, Any]:
        commit = self.reader.resolve(ctx.path, rev)
        entry = self.reader.entry(ctx.path, commit, file_path.strip("/"))
        if entry is None or entry.kind != "file":
            raise NotFound(f"no file {file_path!r} at {rev!r}", code="EntryNotFound")
        return commit, entry

    async def raw(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self._ctx(request, m)
        commit, entry = self._file(ctx, m.params["rev"], m.params["path"])
        if entry.size > self.max_inline_file:
            raise BadRequest("file too large for raw; use /resolve")
        data = await asyncio.to_thread(self.reader.read_blob, ctx.path, entry.oid)
        return web.Response(body=data, content_type="application/octet-stream",
                            headers={"X-Repo-Commit": commit, "ETag": f'"{entry.oid}"'})

    async def blob(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self._ctx(request, m)
        commit, entry = self._file(ctx, m.params["rev"], m.params["path"])
        if entry.size > self.max_inline_file:
            raise BadRequest("file too large to inline; use /resolve")
        data = await asyncio.to_thread(self.reader.read_blob, ctx.path, entry.oid)
        return envelope({"path": entry.path, "sha": entry.oid, "size": entry.size, "commit": commit,
                         "encoding": "base64", "content": base64.b64encode(data).decode(),
                         "lfs": entry.pointer is not None})

    # -- refs and history -----------------------------------------------------------------------------------
    async def branches(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self._ctx(request, m)
        return envelope([{"name": n[len("refs/heads/"):], "commit": {"id": sha}, "ref": n}
                         for n, sha in self.reader.refs(ctx.path, "refs/heads/")])

    async def tags(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self._ctx(request, m)
        return envelope([{"name": n[len("refs/tags/"):], "commit": {"id": sha}, "ref": n}
                         for n, sha in self.reader.refs(ctx.path, "refs/tags/")])

    async def commits(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self._ctx(request, m)
        commit = self.reader.resolve(ctx.path, m.params["rev"])
        page = int_param(request, "page", 1, lo=1)
        per_page = int_param(request, "per_page", 50, lo=1, hi=500)

        def collect() -> list[dict[str, Any]]:
            out = []
            for n, c in enumerate(self.reader.log(ctx.path, commit)):
                if n < (page - 1) * per_page:
                    continue
                if len(out) == per_page:
                    break
                out.append({"id": str(c.id), "message": c.message, "author_name": c.author.name,
                            "author_email": c.author.email, "date": iso(c.commit_time),
                            "parents": [str(p) for p in c.parent_ids]})
            return out

        return envelope(await asyncio.to_thread(collect))

    # -- writes (csghub-sdk's native upload path) --------------------------------------------------------
    async def _commit(self, q: ObjectQuarantine, ctx: RepoCtx, rev: str, ops: list[Op], message: str) -> str:
        return await self.writer.commit_to_branch(q, self.repos.info(ctx.repo), rev, ops,
                                                  author=ctx.principal.name or "anonymous",
                                                  message=message.rstrip() + "\n")

    async def commit(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self._ctx(request, m, AccessLevel.WRITE)
        body = await read_json(request, allow_empty=False, offload=self.offload, max_size=COMMIT_JSON_MAX)
        message = body.get("message") or "Upload files"
        files = body.get("files")
        if not isinstance(files, list) or not isinstance(message, str):
            raise BadRequest('expected JSON {"message", "files": [{"path", "action", "content"}]}')
        async with self.writer.quarantine(ctx.path) as q:
            ops: list[Op] = []
            for f in files:
                if not isinstance(f, dict):
                    raise BadRequest("every file must be an object")
                path = check_path(f.get("path"))
                action = f.get("action", "create")
                if action == "delete":
                    ops.append(DeleteFile(path))
                    continue
                if action not in ("create", "update"):
                    raise BadRequest(f"unknown action {str(action)[:40]!r}")
                try:
                    # Line breaks are skipped, as CSGHub's server does: csghub-cli's upload-large-folder
                    # sends MIME base64 (base64.encode: a newline every 76 characters).
                    data = base64.b64decode(str(f.get("content", "")).translate(_LINE_BREAKS), validate=True)
                except (binascii.Error, ValueError):
                    raise BadRequest(f"{path}: content is not base64")
                if len(data) > self.max_inline_file:
                    raise BadRequest(f"{path} is too large to send inline; push it with Git LFS")
                ops.append(AddFile(path, await self.writer.write_blob(q, data)))
            oid = await self._commit(q, ctx, m.params["rev"], ops, message)
        return envelope({"commit": oid})

    async def preupload(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self._ctx(request, m, AccessLevel.WRITE)
        body = await read_json(request, allow_empty=False, offload=self.offload)
        files = body.get("files")
        if not isinstance(files, list):
            raise BadRequest('expected JSON {"files": [{"path", "size"}]}')
        commit = self.reader.try_resolve(ctx.path, check_revision(m.params["rev"]))
        plans = await self.offload.run(self.planner.plan, ctx, commit, files, what="preupload")
        # The native upload path sends every file inline (commit or upload_file), whatever its size.
        return envelope({"files": [{**plan, "uploadMode": "regular"} for plan in plans]})

    async def upload_file(self, request: web.Request, m: Match) -> web.StreamResponse:
        ctx = self._ctx(request, m, AccessLevel.WRITE)
        reader = await request.multipart()
        fields: dict[str, str] = {}
        data: bytes | None = None
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            name = part.name
            if name == "file":
                buf = bytearray()
                while chunk := await part.read_chunk(1 << 16):
                    buf += chunk
                    if len(buf) > self.max_inline_file:
                        raise BadRequest("file too large for upload_file; push it with Git LFS")
                data = bytes(buf)
            elif name:
                text = bytearray()
                while chunk := await part.read_chunk(4096):
                    text += chunk
                    if len(text) > 64 * 1024:
                        raise BadRequest(f"form field {name!r} is too long")
                fields[name] = text.decode("utf-8", "replace")
        if data is None or not fields.get("file_path"):
            raise BadRequest("expected multipart fields file and file_path")
        path = check_path(fields["file_path"])
        branch = fields.get("branch") or ctx.repo.default_branch
        async with self.writer.quarantine(ctx.path) as q:
            blob = await self.writer.write_blob(q, data)
            oid = await self._commit(q, ctx, branch, [AddFile(path, blob)], fields.get("message") or f"Upload {path}")
        return envelope({"commit": oid, "path": path})
