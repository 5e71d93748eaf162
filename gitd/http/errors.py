"""Render a GitdError the way each kind of client expects it."""

from __future__ import annotations

import errno
import json

from aiohttp import web

from gitd.errors import GitdError, InsufficientStorage
from gitd.store.db import DatabaseBusy, is_busy

REALM = 'Basic realm="gitd", charset="UTF-8"'
LFS_MEDIA_TYPE = "application/vnd.git-lfs+json"


def header_safe(text: str) -> str:
    """One line of printable ASCII: messages may span lines (plugin refusals) or carry any character."""
    flat = " ".join(text.split())
    return flat.encode("ascii", "replace").decode("ascii")


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def resource_error(exc: BaseException) -> GitdError | None:
    """What a client should see for a server resource that ran out: the disk (507, never
    retried in vain as a 500 would be) or the database's write lock (503 with Retry-After)."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL:
        return InsufficientStorage(detail=str(exc))
    if is_busy(exc):
        return DatabaseBusy(str(exc))
    if "database or disk is full" in str(exc) and type(exc).__module__ == "sqlite3":
        return InsufficientStorage(detail=str(exc))
    return None


def error_response(exc: GitdError, style: str, **extra: object) -> web.Response:
    """The error as ``style`` renders it; ``extra`` keys join the JSON body (hub and api styles)."""
    headers: dict[str, str] = {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = REALM
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    if style == "lfs":
        if exc.status == 401:
            headers["LFS-Authenticate"] = REALM
        # git-lfs shows the body's message; huggingface_hub, which uses the batch API too, this header.
        headers["X-Error-Message"] = header_safe(exc.message)
        body = json.dumps({"message": exc.message})
        return web.Response(status=exc.status, text=body, content_type=LFS_MEDIA_TYPE, headers=headers)
    if style == "hub":
        # huggingface_hub maps X-Error-Code to its exception classes; always send it.
        headers["X-Error-Code"] = exc.code
        headers["X-Error-Message"] = header_safe(exc.message)
        return web.json_response({"error": exc.message, **extra}, status=exc.status, headers=headers)
    if style == "api":
        return web.json_response({"msg": exc.message, "code": exc.code, "data": None, **extra}, status=exc.status,
                                 headers=headers)
    return web.Response(status=exc.status, text=exc.message + "\n", headers=headers)
