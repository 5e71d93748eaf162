"""A Git LFS client for mirrors: the batch API (download and upload, basic transfer), the
objects of a local repository (file remotes), and git-lfs-authenticate over ssh.

Downloads stream into ``RepoWriter.lfs_receive``, which hashes them as they arrive: an
object whose bytes do not match its SHA-256 is rejected and nothing of it is stored.
Uploads stream from ``RepoView.lfs_open``. Socket reads time out after ``stall``
seconds (a server that stops sending), and a redirect to another host never carries
the remote's credentials (a presigned storage link needs none).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from .remote import redact

MEDIA_TYPE = "application/vnd.git-lfs+json"
BATCH_SIZE = 100
CHUNK = 1 << 20


class LfsError(Exception):
    """The remote's LFS server failed or refused (the message names the object)."""


@dataclass(frozen=True)
class LfsObject:
    oid: str
    size: int


Guard = Callable[[str], None]


class _SameHostRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects, dropping credentials when the host changes; ``guard`` may refuse
    where a redirect leads (raising)."""

    def __init__(self, guard: Guard | None = None):
        super().__init__()
        self.guard = guard

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        if self.guard is not None:
            try:
                self.guard(newurl)
            except Exception as exc:
                raise LfsError(f"a redirect was refused: {exc}") from None
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urlsplit(newurl).netloc != urlsplit(req.full_url).netloc:
            for name in list(new.headers):
                if name.lower() in ("authorization", "cookie"):
                    del new.headers[name]
            new.unredirected_hdrs.pop("Authorization", None)
        return new


def opener(proxy: str | None = None, guard: Guard | None = None) -> urllib.request.OpenerDirector:
    proxies = {"http": proxy, "https": proxy} if proxy else {}
    return urllib.request.build_opener(urllib.request.ProxyHandler(proxies), _SameHostRedirects(guard))


class LfsClient:
    """The batch API at ``endpoint`` (``.../info/lfs``)."""

    def __init__(self, endpoint: str, *, headers: dict[str, str] | None = None, stall: float = 120.0,
                 proxy: str | None = None, guard: Guard | None = None):
        self.endpoint = endpoint.rstrip("/")
        self.headers = dict(headers or {})
        self.stall = stall
        self.guard = guard
        self._open = opener(proxy, guard).open

    def _href(self, action: dict[str, Any]) -> str:
        href = _href(action)
        if self.guard is not None:
            try:
                self.guard(href)
            except Exception as exc:
                raise LfsError(f"the LFS server's link was refused: {exc}") from None
        return href

    def batch(self, operation: str, objects: list[LfsObject]) -> Iterator[tuple[LfsObject, dict[str, Any]]]:
        """(object, the server's answer for it) for every object, asked in batches."""
        for start in range(0, len(objects), BATCH_SIZE):
            group = objects[start:start + BATCH_SIZE]
            body = json.dumps({"operation": operation, "transfers": ["basic"], "hash_algo": "sha256",
                               "objects": [{"oid": o.oid, "size": o.size} for o in group]}).encode()
            request = urllib.request.Request(f"{self.endpoint}/objects/batch", data=body, method="POST",
                                             headers={**self.headers, "Accept": MEDIA_TYPE,
                                                      "Content-Type": MEDIA_TYPE})
            answer = self._json(request, "the LFS batch request")
            by_oid = {o.get("oid"): o for o in answer.get("objects", []) if isinstance(o, dict)}
            for obj in group:
                yield obj, by_oid.get(obj.oid, {"error": {"message": "the server did not answer for it"}})

    def _json(self, request: urllib.request.Request, what: str) -> dict[str, Any]:
        try:
            with self._open(request, timeout=self.stall) as resp:
                data = json.loads(resp.read(16 << 20))
        except urllib.error.HTTPError as exc:
            raise LfsError(f"{what} to {redact(self.endpoint)} failed: HTTP {exc.code} {_reason(exc)}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise LfsError(f"{what} to {redact(self.endpoint)} failed: {redact(str(exc))}") from None
        except ValueError:
            raise LfsError(f"{what} to {redact(self.endpoint)}: the answer is not JSON") from None
        if not isinstance(data, dict):
            raise LfsError(f"{what} to {redact(self.endpoint)}: unexpected answer")
        return data

    @contextlib.contextmanager
    def download(self, obj: LfsObject, action: dict[str, Any]) -> Iterator[Iterator[bytes]]:
        """The object's bytes, streamed (the caller hashes them)."""
        request = urllib.request.Request(self._href(action), headers=_headers(action))
        try:
            resp = self._open(request, timeout=self.stall)
        except urllib.error.HTTPError as exc:
            raise LfsError(f"downloading LFS object {obj.oid} failed: HTTP {exc.code} {_reason(exc)}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise LfsError(f"downloading LFS object {obj.oid} failed: {redact(str(exc))}") from None
        with resp:
            yield _chunks(resp, obj)

    def upload(self, obj: LfsObject, actions: dict[str, Any], source: BinaryIO) -> None:
        upload = actions.get("upload")
        if upload is None:
            return  # the server has it
        headers = {**_headers(upload), "Content-Type": "application/octet-stream", "Content-Length": str(obj.size)}
        request = urllib.request.Request(self._href(upload), data=source, headers=headers, method="PUT")
        self._call(request, f"uploading LFS object {obj.oid}")
        verify = actions.get("verify")
        if verify is not None:
            body = json.dumps({"oid": obj.oid, "size": obj.size}).encode()
            request = urllib.request.Request(self._href(verify), data=body, method="POST",
                                             headers={**_headers(verify), "Content-Type": MEDIA_TYPE,
                                                      "Accept": MEDIA_TYPE})
            self._call(request, f"verifying LFS object {obj.oid}")

    def _call(self, request: urllib.request.Request, what: str) -> None:
        try:
            with self._open(request, timeout=self.stall) as resp:
                resp.read(1 << 20)
        except urllib.error.HTTPError as exc:
            raise LfsError(f"{what} failed: HTTP {exc.code} {_reason(exc)}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise LfsError(f"{what} failed: {redact(str(exc))}") from None


def _href(action: dict[str, Any]) -> str:
    href = action.get("href")
    if not isinstance(href, str) or urlsplit(href).scheme not in ("http", "https"):
        raise LfsError("the LFS server gave no usable link")
    return href


def _headers(action: dict[str, Any]) -> dict[str, str]:
    header = action.get("header") or {}
    return {str(k): str(v) for k, v in header.items()} if isinstance(header, dict) else {}


def _reason(exc: urllib.error.HTTPError) -> str:
    with contextlib.suppress(Exception):
        body = json.loads(exc.read(65536))
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            return redact(body["message"])[:300]
    return str(exc.reason)[:100]


def _chunks(resp: Any, obj: LfsObject) -> Iterator[bytes]:
    received = 0
    try:
        while chunk := resp.read(CHUNK):
            received += len(chunk)
            if received > obj.size:
                break  # more than announced: the store rejects it by its size
            yield chunk
    except OSError as exc:  # a timeout or reset mid-object
        raise LfsError(f"downloading LFS object {obj.oid} failed after {received} bytes: {exc}") from None


def file_lfs_path(repo_path: str, oid: str) -> Path:
    """Where git-lfs keeps ``oid`` in the local repository at ``repo_path`` (bare or not)."""
    root = Path(repo_path)
    base = root / ".git" if (root / ".git").is_dir() else root
    return base / "lfs" / "objects" / oid[:2] / oid[2:4] / oid


def file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def ssh_authenticate(ssh: list[str], target: list[str], path: str, operation: str, *,
                     timeout: float) -> tuple[str, dict[str, str]]:
    """(LFS endpoint, headers) from the ssh server's git-lfs-authenticate."""
    if any(c in path for c in "'\\\n\0"):
        raise LfsError("the repository path cannot be passed to git-lfs-authenticate")
    command = [*ssh, *target, f"git-lfs-authenticate '{path}' {operation}"]
    try:
        proc = subprocess.run(command, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise LfsError("git-lfs-authenticate over ssh timed out") from None
    if proc.returncode != 0:
        reason = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["failed"]
        raise LfsError(f"git-lfs-authenticate over ssh failed: {redact(reason[0])[:300]}")
    try:
        answer = json.loads(proc.stdout)
        return str(answer["href"]), _headers(answer)
    except (ValueError, KeyError, TypeError):
        raise LfsError("git-lfs-authenticate over ssh gave no endpoint") from None


def objects_of(pairs: Iterable[tuple[str, int]]) -> list[LfsObject]:
    return [LfsObject(oid, size) for oid, size in sorted(set(pairs))]
