"""Git LFS over HTTP: the batch API and the ``basic`` transfer (object PUT and GET, verify).

Routes, under every repository URL form (with or without ``.git``)::

    POST {repo}/info/lfs/objects/batch        batch (read; write for uploads)
    PUT  {repo}/info/lfs/objects/{oid}/{size} upload (write), streamed and verified
    GET  {repo}/info/lfs/objects/{oid}        download (read), Range supported
    POST {repo}/info/lfs/verify               verify an upload (write)

"Write" for uploads is ``Access.require_lfs_upload``: the repository's writers, and a public
repository's signed-in readers for a pull request they may open or add to (the batch tells
which: gitd.hub.pr_uploads); the links handed out for those carry the mark ``pr``, and only
their own caller may use them so.

The hrefs handed out carry their own short-lived credential twice: a signed access
token (``Authenticator.sign_access``) in the action's ``Authorization`` header, and an
object-scoped signed token in the ``token`` query parameter, valid only for that
repository, oid and operation, for clients that drop action headers
(huggingface_hub sends none on basic PUTs). Presigned S3 URLs carry no header at all.
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any, BinaryIO

from aiohttp import web

from gitd.access.auth import Authenticator
from gitd.access.rules import ANONYMOUS, Access, AccessLevel, Principal
from gitd.errors import NotFound, Unauthorized, Unprocessable
from gitd.http.context import base_url, principal, read_json
from gitd.http.errors import LFS_MEDIA_TYPE
from gitd.http.lfs_multipart import LfsMultipart
from gitd.http.routing import Match, Router
from gitd.http.sendfile import open_local, send_open_file
from gitd.http.upload_body import UploadBody
from gitd.lfs.batch import BatchRequest, batch_operation, check_batch_objects, object_error, parse_batch
from gitd.lfs.service import LfsService, ObjectStatus
from gitd.lfs.streams import is_oid
from gitd.metrics import Metrics
from gitd.repos import RepoService
from gitd.store import Repo

if TYPE_CHECKING:
    from gitd.hub.pr_uploads import PullRequestUploads

OBJECT_TOKEN = "lfs-obj"


def lfs_json(data: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(data), content_type=LFS_MEDIA_TYPE)


def byte_range(request: web.Request, size: int) -> tuple[int, int] | None:
    """(start, end exclusive) for a satisfiable single ``Range``; None without one.

    Raises web.HTTPRequestRangeNotSatisfiable (416, with ``Content-Range: */size``) for
    an unsatisfiable or malformed range, as aiohttp's FileResponse does.
    """
    if "Range" not in request.headers:
        return None
    unsatisfiable = web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
    try:
        rng = request.http_range
    except ValueError:
        raise unsatisfiable
    start, stop = rng.start, rng.stop
    if start is None:
        return None
    if start < 0:  # suffix: the last -start bytes
        start = max(0, size + start)
        stop = size
    stop = size if stop is None else min(stop, size)
    if start >= size:
        raise unsatisfiable
    return start, stop


def object_response(request: web.Request, oid: str, size: int
                    ) -> web.Response | tuple[web.StreamResponse, tuple[int, int]]:
    """The response for bytes of one object (200, or 206 for a ``Range``) with the span to
    send, or a finished 416 response for a range the object cannot satisfy."""
    try:
        span = byte_range(request, size)
    except web.HTTPRequestRangeNotSatisfiable as exc:
        return web.Response(status=416, headers=exc.headers)
    start, end = span if span is not None else (0, size)
    response = web.StreamResponse(status=206 if span is not None else 200, headers={
        "Content-Type": "application/octet-stream", "Cache-Control": "private, no-transform",
        "Accept-Ranges": "bytes", "ETag": f'"{oid}"'})
    response.content_length = end - start
    if span is not None:
        response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    return response, (start, end)


class LfsHTTP:
    def __init__(self, repos: RepoService, access: Access, auth: Authenticator, lfs: LfsService,
                 metrics: Metrics, *, public_url: str = "", href_ttl: int = 3600, max_batch_objects: int = 1000,
                 multipart_threshold: int = 0, multipart_chunk_size: int = 64 * 1024 * 1024,
                 pr_uploads: PullRequestUploads | None = None):
        self.repos = repos
        self.access = access
        self.auth = auth
        self.lfs = lfs
        self.metrics = metrics
        self.public_url = public_url
        self.href_ttl = href_ttl
        self.max_batch_objects = max_batch_objects
        self.pr_uploads = pr_uploads  # None: uploads are the writers' alone
        # Hugging Face's multipart transfer, above the threshold (0: never).
        self.multipart = LfsMultipart(self, access, lfs, metrics, threshold=multipart_threshold,
                                      chunk_size=multipart_chunk_size) if multipart_threshold > 0 else None

    def add_routes(self, router: Router) -> None:
        router.add("POST", "/{repo}/info/lfs/objects/batch", self.batch, style="lfs", name="lfs-batch")
        router.add("PUT", "/{repo}/info/lfs/objects/{oid}/{size}", self.upload, style="lfs", name="lfs-upload")
        router.add("GET", "/{repo}/info/lfs/objects/{oid}", self.download, style="lfs", name="lfs-download")
        router.add("POST", "/{repo}/info/lfs/verify", self.verify, style="lfs", name="lfs-verify")
        if self.multipart is not None:
            self.multipart.add_routes(router)

    def find_repo(self, m: Match) -> Repo | None:
        assert m.repo is not None
        return self.repos.find(m.repo.type, m.repo.namespace, m.repo.name)

    # -- credentials in hrefs -------------------------------------------------------------------
    def object_token(self, p: Principal, repo: Repo, op: str, oid: str, level: AccessLevel,
                     staging: str | None = None, *, extra: dict[str, Any] | None = None) -> str:
        """A link's own credential, bound like every signed token to the caller's parent
        credential and never outliving the caller's own signed token."""
        claims: dict[str, Any] = {"k": OBJECT_TOKEN, "rid": repo.id, "lvl": int(min(level, p.cap)), "oid": oid,
                                  "op": op, **(extra or {})}
        if staging is not None:
            claims["stg"] = staging
        return self.auth.sign_for(p, claims, self.href_ttl)

    def ttl(self, p: Principal) -> int:
        """How long links handed to ``p`` live: href_ttl, or less when ``p`` came with a
        signed token (links never outlive the credential they were asked with)."""
        return self.auth.lifetime(p, self.href_ttl)

    def object_principal(self, request: web.Request, repo: Repo | None, op: str,
                          oid: str | None) -> tuple[Principal, dict[str, Any] | None]:
        """The caller of an object request: the Authorization header if any, else the
        href's own token. Also returns the token's claims when it is valid for ``op``."""
        claims = None
        token = request.query.get("token")
        if token and repo is not None:
            found = self.auth.verify_signed(token)
            if (found and found.get("k") == OBJECT_TOKEN and found.get("rid") == repo.id and found.get("op") == op
                    and (oid is None or found.get("oid") == oid)):
                claims = found
        if request.headers.get("Authorization"):
            return principal(request), claims
        if claims is None:
            if token:
                raise Unauthorized("this link is invalid or has expired; run the git lfs command again")
            return ANONYMOUS, None
        caller = self.auth.principal_for_claims(claims)
        if caller is None:  # its parent credential was revoked, or the account deleted
            raise Unauthorized("this link is invalid or has expired", code="InvalidCredentials")
        return caller, claims

    def require_upload(self, p: Principal, repo: Repo | None, claims: dict[str, Any] | None) -> None:
        """The access check of an upload link (basic PUT, verify, multipart): a link handed out for
        a pull request (mark ``pr``) lets its own caller, a reader, upload through it."""
        for_pr = (claims is not None and claims.get("pr") == 1 and p.account is not None
                  and claims.get("sub") == p.account.id)
        self.access.require_lfs_upload(p, repo, for_pull_request=for_pr)

    def base(self, request: web.Request) -> str:
        return base_url(request, self.public_url)

    def href(self, request: web.Request, repo: Repo, tail: str, token: str) -> str:
        return f"{self.base(request)}/{repo.url_path}.git/info/lfs/{tail}?token={token}"

    def _daemon_action(self, request: web.Request, p: Principal, repo: Repo, tail: str, op: str, oid: str,
                       level: AccessLevel, *, staging: str | None = None, headers: dict[str, str] | None = None,
                       for_pr: bool = False) -> dict[str, Any]:
        bearer = self.auth.sign_access(p, repo.id, level, self.href_ttl)
        token = self.object_token(p, repo, op, oid, level, staging, extra={"pr": 1} if for_pr else None)
        return {
            "href": self.href(request, repo, tail, token),
            "header": {"Authorization": f"Bearer {bearer}", **(headers or {})},
            "expires_in": self.ttl(p),
        }

    # -- batch ----------------------------------------------------------------------------------
    async def batch(self, request: web.Request, m: Match) -> web.StreamResponse:
        repo = self.find_repo(m)
        p = principal(request)
        level = self.access.require(p, repo, AccessLevel.READ)
        assert repo is not None
        body = await read_json(request)
        operation = batch_operation(body)
        batch = parse_batch(body, max_objects=self.max_batch_objects)
        for_pr = False
        if operation == "upload":
            for_pr = level < AccessLevel.WRITE and self._for_pull_request(p, repo, batch)
            self.access.require_lfs_upload(p, repo, for_pull_request=for_pr)
        self.lfs.check_storage()  # no links to a store known to be down: 503 with Retry-After
        answered = self._answer(request, p, repo, operation, check_batch_objects(self.lfs, batch), for_pr)
        if operation == "upload" and any("actions" in item for item in answered):
            self.lfs.check_room()  # no upload links while the disk is below its watermark (507)
        transfer = "basic"
        if operation == "upload" and self.multipart is not None and self.multipart.offered(batch.transfers) \
                and await self.multipart.rewrite(request, p, repo, answered, for_pr=for_pr):
            transfer = "multipart"
        return lfs_json({"transfer": transfer, "objects": answered, "hash_algo": "sha256"})

    def _for_pull_request(self, p: Principal, repo: Repo, batch: BatchRequest) -> bool:
        """Whether a batch upload is for a pull request ``p`` may open or add to (gitd.hub.pr_uploads)."""
        if self.pr_uploads is None or p.account is None:
            return False
        sizes = [item.get("size") for item in batch.objects if isinstance(item, dict)]
        if not all(isinstance(size, int) for size in sizes):
            return False
        return self.pr_uploads.for_pull_request(p, repo, batch.ref, sizes)

    def _answer(self, request: web.Request, p: Principal, repo: Repo, operation: str,
                checked: list[dict[str, Any] | tuple[str, int]], for_pr: bool) -> list[dict[str, Any]]:
        status = self.lfs.status(repo.id, [c[0] for c in checked if isinstance(c, tuple)])
        answered = []
        for entry in checked:
            if isinstance(entry, dict):
                answered.append(entry)
                continue
            oid, size = entry
            held = status.get(oid)
            if operation == "download":
                answered.append(self._download_object(request, p, repo, oid, size, held))
            else:
                answered.append(self._upload_object(request, p, repo, oid, size, held, for_pr))
        return answered

    def _download_object(self, request: web.Request, p: Principal, repo: Repo, oid: str, size: int,
                         held: ObjectStatus | None) -> dict[str, Any]:
        if held is None:
            return object_error(oid, size, 404, "object not found")
        if held.lost:
            return object_error(oid, size, 410, "object is no longer available on this server; push it again")
        if held.size != size:
            return object_error(oid, size, 422, f"object {oid} is {held.size} bytes, not {size}")
        ttl = self.ttl(p)
        url = self.lfs.download_url(repo.id, oid, ttl) if ttl > 0 else None
        if url is not None:
            action: dict[str, Any] = {"href": url, "expires_in": ttl}
        else:
            action = self._daemon_action(request, p, repo, f"objects/{oid}", "download", oid, AccessLevel.READ)
        return {"oid": oid, "size": size, "authenticated": True, "actions": {"download": action}}

    def _upload_object(self, request: web.Request, p: Principal, repo: Repo, oid: str, size: int,
                       held: ObjectStatus | None, for_pr: bool) -> dict[str, Any]:
        if held is not None and not held.lost:
            if held.size == size:
                return {"oid": oid, "size": size}
            return object_error(oid, size, 422, f"object {oid} is {held.size} bytes, not {size}")
        ttl = self.ttl(p)
        direct = self.lfs.upload_url(repo.id, oid, size, ttl) if ttl > 0 else None
        staging = None
        if direct is not None:
            upload: dict[str, Any] = {"href": direct.url, "header": direct.headers, "expires_in": ttl}
            staging = direct.staging
        else:
            upload = self._daemon_action(request, p, repo, f"objects/{oid}/{size}", "upload", oid,
                                         AccessLevel.WRITE, headers={"Content-Type": "application/octet-stream"},
                                         for_pr=for_pr)
        verify = self._daemon_action(request, p, repo, "verify", "verify", oid, AccessLevel.WRITE, staging=staging,
                                     headers={"Accept": LFS_MEDIA_TYPE}, for_pr=for_pr)
        return {"oid": oid, "size": size, "authenticated": True, "actions": {"upload": upload, "verify": verify}}

    # -- basic transfer -------------------------------------------------------------------------
    async def upload(self, request: web.Request, m: Match) -> web.StreamResponse:
        repo = self.find_repo(m)
        oid = m.params["oid"]
        p, claims = self.object_principal(request, repo, "upload", oid)
        self.require_upload(p, repo, claims)
        assert repo is not None
        size_text = m.params["size"]
        if not (size_text.isascii() and size_text.isdigit() and len(size_text) <= 18):
            raise Unprocessable("invalid object size in the URL")
        size = int(size_text)
        self.lfs.check_upload(oid, size)
        body = UploadBody(request, self.metrics, expected=size, what=f"object {oid}")
        with body.interrupted(f"the upload of {oid} was interrupted; nothing was stored"):
            await self.lfs.receive(repo.id, oid, size, body.chunks())
        return web.Response(status=200)

    async def download(self, request: web.Request, m: Match) -> web.StreamResponse:
        repo = self.find_repo(m)
        oid = m.params["oid"]
        p, _ = self.object_principal(request, repo, "download", oid)
        self.access.require(p, repo, AccessLevel.READ)
        assert repo is not None
        if not is_oid(oid):
            raise NotFound("object not found")
        path = self.lfs.local_path(repo.id, oid)
        local = open_local(path) if path is not None else None
        if local is not None:  # local storage: sendfile(2)
            f, size = local
            with contextlib.closing(f):
                return await self._send(request, repo, oid, size, f)
        size = self.lfs.size(repo.id, oid)
        if size is None:  # gone since the access check
            raise NotFound("object not found")
        return await self._send(request, repo, oid, size, None)

    async def _send(self, request: web.Request, repo: Repo, oid: str, size: int,
                    f: BinaryIO | None) -> web.StreamResponse:
        """The object's bytes (all, or a ``Range``): from the open local file ``f``, else
        streamed from storage."""
        answer = object_response(request, oid, size)
        if isinstance(answer, web.Response):
            return answer
        response, (start, end) = answer
        if f is not None:
            sent = await send_open_file(request, response, f, start, end)
            self.metrics.lfs_bytes_sent.inc(sent, transport="http")
            return response
        if request.method == "HEAD" or end == start:
            await response.prepare(request)
            await response.write_eof()
            return response
        reader = await self.lfs.open(repo.id, oid, start, end)
        sent = 0
        try:
            await response.prepare(request)
            async for chunk in reader:
                await response.write(chunk)
                sent += len(chunk)
            await response.write_eof()
        finally:
            await reader.aclose()
            self.metrics.lfs_bytes_sent.inc(sent, transport="http")
        return response

    async def verify(self, request: web.Request, m: Match) -> web.StreamResponse:
        repo = self.find_repo(m)
        p, claims = self.object_principal(request, repo, "verify", None)
        self.require_upload(p, repo, claims)
        assert repo is not None
        body = await read_json(request)
        oid, size = body.get("oid"), body.get("size")
        self.lfs.check_object(oid, size)
        staged = None
        if claims is not None and claims.get("oid") == oid:
            staged = claims.get("stg")
        await self.lfs.verify(repo.id, oid, size, staged=staged)
        return lfs_json({"oid": oid, "size": size})
