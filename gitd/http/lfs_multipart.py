"""Hugging Face's ``multipart`` LFS transfer, for clients that offer it in a batch request.

huggingface_hub sends ``"transfers": ["basic", "multipart"]``. For an upload above
``lfs.multipart_threshold`` the batch answers an upload action whose ``header`` holds
``chunk_size`` and one signed part URL per part (keys "1", "2", ...) and whose
``href`` is a signed completion URL::

    PUT  {repo}.git/info/lfs/multipart/{oid}/{part}?token=...   one part, exactly chunk_size
                                                              bytes (the last shorter); answers
                                                              an ETag
    POST {repo}.git/info/lfs/multipart/{oid}?token=...          {"oid", "parts": [{"partNumber",
                                                              "etag"}]}: assemble, hash, link

The client sends no Authorization on either (§8.4 of the Hub API spec), so the token
in the URL is the credential: signed, short-lived, scoped to one repository, object
and upload (the storage handle rides in its claims, so the daemon keeps no state per
upload). Parts may come in any order, in parallel, or again; the completion re-hashes
the assembled object and stores nothing unless it is the object named. Storage does
the work (``ChunkedUploads``); abandoned uploads are removed by ``gitd lfs gc``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from gitd.access.rules import Access, AccessLevel, Principal
from gitd.errors import NotFound, Unauthorized, Unprocessable
from gitd.http.context import read_json
from gitd.http.routing import Match, Router
from gitd.http.upload_body import UploadBody
from gitd.lfs.errors import ObjectMismatch
from gitd.lfs.service import LfsService
from gitd.lfs.storage.base import ChunkedUpload
from gitd.metrics import Metrics
from gitd.store import Repo

if TYPE_CHECKING:
    from gitd.http.lfs import LfsHTTP

OP = "multipart"


class LfsMultipart:
    def __init__(self, links: LfsHTTP, access: Access, lfs: LfsService, metrics: Metrics, *, threshold: int,
                 chunk_size: int):
        self.links = links
        self.access = access
        self.lfs = lfs
        self.metrics = metrics
        self.threshold = threshold
        self.chunk_size = chunk_size

    def add_routes(self, router: Router) -> None:
        router.add("PUT", "/{repo}/info/lfs/multipart/{oid}/{part}", self.put_part, style="hub",
                   name="lfs-multipart-part")
        router.add("POST", "/{repo}/info/lfs/multipart/{oid}", self.complete, style="hub",
                   name="lfs-multipart-complete")

    # -- batch ----------------------------------------------------------------------------------
    def offered(self, transfers: object) -> bool:
        return isinstance(transfers, list) and OP in transfers

    async def rewrite(self, request: web.Request, p: Principal, repo: Repo, answered: list[dict[str, Any]], *,
                      for_pr: bool = False) -> bool:
        """Give every upload above the threshold that goes through the daemon a multipart
        action instead of the basic one; True if any was given."""
        used = False
        for obj in answered:
            actions = obj.get("actions")
            if not actions or "upload" not in actions or obj["size"] <= self.threshold:
                continue
            if not actions["upload"]["href"].startswith(self.links.base(request)):
                continue  # a presigned direct upload: the bytes bypass the daemon already
            upload = await self.lfs.chunked_begin(obj["oid"], obj["size"], self.chunk_size)
            if upload is None:
                continue
            token = self.links.object_token(p, repo, OP, upload.oid, AccessLevel.WRITE, extra={
                "stg": upload.staging, "uid": upload.upload_id, "sz": upload.size, "cs": upload.chunk_size,
                **({"pr": 1} if for_pr else {})})
            header: dict[str, str] = {"chunk_size": str(upload.chunk_size)}
            for number in range(1, upload.part_count + 1):
                header[str(number)] = self.links.href(request, repo, f"multipart/{upload.oid}/{number}", token)
            actions["upload"] = {"href": self.links.href(request, repo, f"multipart/{upload.oid}", token),
                                 "header": header, "expires_in": self.links.ttl(p)}
            used = True
        return used

    # -- transfer -------------------------------------------------------------------------------
    def _upload(self, request: web.Request, m: Match) -> tuple[Repo, ChunkedUpload]:
        repo = self.links.find_repo(m)
        oid = m.params["oid"]
        p, claims = self.links.object_principal(request, repo, OP, oid)
        self.links.require_upload(p, repo, claims)
        assert repo is not None
        if claims is None:
            raise Unauthorized("this upload link is invalid or has expired; upload the file again")
        try:
            upload = ChunkedUpload(oid, int(claims["sz"]), int(claims["cs"]), str(claims["stg"]),
                                   str(claims["uid"]))
        except (KeyError, TypeError, ValueError):
            raise Unauthorized("this upload link is invalid; upload the file again") from None
        return repo, upload

    async def put_part(self, request: web.Request, m: Match) -> web.StreamResponse:
        _, upload = self._upload(request, m)
        text = m.params["part"]
        if not (text.isascii() and text.isdigit() and len(text) <= 6) or not 1 <= int(text) <= upload.part_count:
            raise NotFound(f"this upload has no part {text}")
        number = int(text)
        body = UploadBody(request, self.metrics, expected=upload.part_length(number), what=f"part {number}")
        with body.interrupted(f"the upload of part {number} was interrupted; send it again"):
            etag = await self.lfs.chunked_write(upload, number, body.chunks())
        return web.Response(status=200, headers={"ETag": etag})

    async def complete(self, request: web.Request, m: Match) -> web.StreamResponse:
        repo, upload = self._upload(request, m)
        body = await read_json(request)
        if body.get("oid") != upload.oid:
            raise Unprocessable("the completion names another object than this upload")
        parts = body.get("parts")
        if not isinstance(parts, list):
            raise Unprocessable('"parts" must be a list of {"partNumber", "etag"}')
        etags: dict[int, str] = {}
        for item in parts:
            number = item.get("partNumber") if isinstance(item, dict) else None
            etag = item.get("etag") if isinstance(item, dict) else None
            if isinstance(number, bool) or not isinstance(number, int) or not isinstance(etag, str) \
                    or number in etags:
                raise Unprocessable('each part must be {"partNumber": <int>, "etag": <string>}, each number once')
            etags[number] = etag
        missing = sorted(set(range(1, upload.part_count + 1)) - set(etags))
        if missing or len(etags) != upload.part_count:
            await self.lfs.chunked_abort(upload)
            raise ObjectMismatch(f"the completion must list parts 1 to {upload.part_count}"
                                 + (f"; part {missing[0]} is missing" if missing else "")
                                 + "; nothing was stored")
        await self.lfs.chunked_finish(repo.id, upload, etags)
        return web.json_response({"oid": upload.oid, "size": upload.size})
