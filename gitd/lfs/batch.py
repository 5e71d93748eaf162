"""The Git LFS batch request (``POST .../info/lfs/objects/batch``), checked without I/O.

The HTTP handler (gitd.http.lfs) reads the JSON body, asks ``batch_operation`` which
access it needs, checks it, then ``parse_batch`` for the rest of the request and
``check_batch_objects`` for each object: an object with a bad oid or size (or over the
size limit, for uploads) gets its own error entry in the answer instead of failing the
whole batch, as the batch API asks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from gitd.errors import GitdError, Unprocessable
from gitd.lfs.service import LfsService

OPERATIONS = ("upload", "download")


class TooManyObjects(GitdError):
    status = 413
    code = "TooManyObjects"


@dataclass(frozen=True)
class BatchRequest:
    operation: str  # upload | download
    transfers: list[Any] | None  # None: the client named none (basic is implied)
    objects: list[Any]  # the client's entries, each checked by check_batch_objects
    hash_algo: object
    ref: str | None = None  # the ref the client names ({"ref": {"name": ...}}), if any


def object_error(oid: object, size: object, exc: GitdError | int, message: str = "") -> dict[str, Any]:
    code = exc if isinstance(exc, int) else exc.status
    text = message or (exc.message if isinstance(exc, GitdError) else "")
    return {"oid": oid, "size": size, "error": {"code": code, "message": text}}


def batch_operation(body: dict[str, Any]) -> str:
    operation = body.get("operation")
    if operation not in OPERATIONS:
        raise Unprocessable('"operation" must be "upload" or "download"')
    return operation


def parse_batch(body: dict[str, Any], *, max_objects: int) -> BatchRequest:
    """The batch request in ``body`` (a JSON object); Unprocessable or TooManyObjects."""
    operation = batch_operation(body)
    transfers = body.get("transfers")
    if transfers is not None and (not isinstance(transfers, list) or "basic" not in transfers):
        raise Unprocessable('this server supports the "basic" transfer (and "multipart" for Hub clients)')
    ref = body.get("ref")
    if ref is not None and not isinstance(ref, dict):
        raise Unprocessable('"ref" must be an object or null')
    objects = body.get("objects")
    if not isinstance(objects, list):
        raise Unprocessable('"objects" must be a list')
    if len(objects) > max_objects:
        raise TooManyObjects(f"too many objects in one batch request (at most {max_objects})")
    name = ref.get("name") if ref is not None else None
    return BatchRequest(operation, transfers, objects, body.get("hash_algo") or "sha256",
                        name if isinstance(name, str) and name else None)


def check_batch_objects(lfs: LfsService, batch: BatchRequest) -> list[dict[str, Any] | tuple[str, int]]:
    """Per object, in order: (oid, size) when it may be answered, else its error entry."""
    checked: list[dict[str, Any] | tuple[str, int]] = []
    for item in batch.objects:
        oid = item.get("oid") if isinstance(item, dict) else None
        size = item.get("size") if isinstance(item, dict) else None
        if batch.hash_algo != "sha256":
            checked.append(object_error(oid, size, 409,
                                        f"unsupported hash algorithm {batch.hash_algo!r:.40}; use sha256"))
            continue
        try:
            if batch.operation == "upload":
                lfs.check_upload(oid, size)
            else:
                lfs.check_object(oid, size)
        except GitdError as exc:
            checked.append(object_error(oid, size, exc))
            continue
        checked.append((cast(str, oid), cast(int, size)))  # checked above
    return checked
