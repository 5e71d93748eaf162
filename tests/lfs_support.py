"""Helpers for the Git LFS tests: a daemon with its storage backend laid bare (to check
what is and is not stored), a plain HTTP client for the LFS API, and work trees with
LFS-tracked files."""

from __future__ import annotations

import hashlib
import io
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.seaweed import SeaweedS3
from tests.support import Daemon, Git

LFS_JSON = "application/vnd.git-lfs+json"
MIB = 1024 * 1024


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(MIB):
            h.update(block)
    return h.hexdigest()


@dataclass
class Backend:
    """A daemon and a look into its LFS storage."""

    kind: str  # local | s3
    daemon: Daemon
    seaweed: SeaweedS3 | None = None
    bucket: str = ""

    def key(self, oid: str) -> str:
        return f"lfs/{oid[:2]}/{oid[2:4]}/{oid}"

    def path(self, oid: str) -> Path:
        return self.daemon.data / "lfs" / "objects" / oid[:2] / oid[2:4] / oid

    def stored(self, oid: str) -> bool:
        if self.kind == "local":
            return self.path(oid).exists()
        assert self.seaweed is not None
        return any(True for _ in self.seaweed.client().list_objects(self.bucket, prefix=self.key(oid)))

    def read(self, oid: str) -> bytes:
        if self.kind == "local":
            return self.path(oid).read_bytes()
        assert self.seaweed is not None
        response = self.seaweed.client().get_object(self.bucket, self.key(oid))
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def overwrite(self, oid: str, data: bytes) -> None:
        """Corrupt an object behind the daemon's back."""
        if self.kind == "local":
            self.path(oid).write_bytes(data)
        else:
            assert self.seaweed is not None
            self.seaweed.client().put_object(self.bucket, self.key(oid), io.BytesIO(data), len(data))

    def leftovers(self) -> list[str]:
        """Temporaries and unfinished uploads: what a failed upload must not leave."""
        if self.kind == "local":
            return sorted(p.name for p in (self.daemon.data / "lfs" / "tmp").iterdir())
        assert self.seaweed is not None
        client = self.seaweed.client()
        staged = [o.object_name for o in client.list_objects(self.bucket, prefix="lfs/staging/", recursive=True)]
        return staged + [u.object_name for u in client._list_multipart_uploads(self.bucket).uploads]


@dataclass
class Reply:
    status: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(method: str, url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> Reply:
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return Reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, exc.headers, exc.read())


class LfsClient:
    """The LFS HTTP API of one repository, spoken by hand."""

    def __init__(self, daemon: Daemon, repo: str, token: str | None = None, *, suffix: str = ".git",
                 repo_type: str = "model"):
        self.base = daemon.repo_url(repo, repo_type=repo_type, suffix=suffix) + "/info/lfs"
        self.token = token

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def post(self, tail: str, body: Any, headers: dict[str, str] | None = None) -> Reply:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return http("POST", f"{self.base}/{tail}", data,
                    {"Accept": LFS_JSON, "Content-Type": LFS_JSON, **self.auth(), **(headers or {})})

    def batch(self, operation: str, objects: list[tuple[str, int]] | list[dict], **extra: Any) -> Reply:
        items = [{"oid": o[0], "size": o[1]} if isinstance(o, tuple) else o for o in objects]
        return self.post("objects/batch", {"operation": operation, "objects": items, **extra})

    def upload(self, data: bytes, *, send: bytes | None = None) -> Reply:
        """Batch, PUT (``send``, default ``data``) with the action's header, verify."""
        answer = self.batch("upload", [(sha256(data), len(data))], ref=None, hash_algo="sha256")
        assert answer.status == 200, answer.body
        obj = answer.json()["objects"][0]
        if "actions" not in obj:
            return answer
        upload, verify = obj["actions"]["upload"], obj["actions"]["verify"]
        put = http("PUT", upload["href"], data if send is None else send, upload.get("header", {}))
        if put.status != 200:
            return put
        return http("POST", verify["href"], json.dumps({"oid": sha256(data), "size": len(data)}).encode(),
                    {**verify.get("header", {}), "Content-Type": LFS_JSON})

    def download_action(self, oid: str, size: int) -> dict[str, Any]:
        answer = self.batch("download", [(oid, size)])
        assert answer.status == 200, answer.body
        obj = answer.json()["objects"][0]
        assert "actions" in obj, obj
        return obj["actions"]["download"]

    def download(self, oid: str, size: int) -> bytes:
        action = self.download_action(oid, size)
        reply = http("GET", action["href"], headers=action.get("header", {}))
        assert reply.status == 200, reply.body
        return reply.body


def write_settings(data: Path, settings: dict[str, object]) -> None:
    """Write dotted ``settings`` as DATA/gitd.toml, so the daemon and in-process ``gitd``
    commands (``daemon.cli``) see the same configuration."""
    sections: dict[str, list[str]] = {}
    for dotted, value in settings.items():
        section, _, key = dotted.rpartition(".")
        text = ("true" if value else "false") if isinstance(value, bool) else json.dumps(value)
        sections.setdefault(section, []).append(f"{key} = {text}")
    (data / "gitd.toml").write_text("".join(f"[{name}]\n" + "\n".join(lines) + "\n\n"
                                            for name, lines in sections.items()))


def lfs_git(git: Git) -> Git:
    git("lfs", "install", "--skip-repo")
    return git


def lfs_work(git: Git, path: Path, files: dict[str, bytes], *, track: str = "*.bin") -> Path:
    """A work tree on main whose ``track`` files go through LFS, with ``files`` committed."""
    path.mkdir(parents=True, exist_ok=True)
    git("init", "-q", "-b", "main", cwd=path)
    git("lfs", "track", track, cwd=path)
    git.commit(path, files, message="add files")
    return path


def random_bytes(size: int) -> bytes:
    return os.urandom(size)
