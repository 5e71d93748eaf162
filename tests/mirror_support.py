"""Upstream repositories for the mirror tests: bare repositories made with the real git
client, with Git LFS objects kept where git-lfs keeps them (``lfs/objects/aa/bb/OID``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.support import Git


def pointer(data: bytes) -> bytes:
    oid = hashlib.sha256(data).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(data)}\n".encode()


class Upstream:
    """A bare repository (``bare``) and a work tree (``work``) that pushes to it."""

    def __init__(self, git: Git, root: Path, files: dict[str, bytes | str] | None = None):
        self.git = git
        self.bare = root / "upstream.git"
        self.work = root / "upstream-work"
        git("init", "-q", "--bare", "-b", "main", str(self.bare))
        git.init_work(self.work, files or {"README.md": "# upstream\n"})
        git("push", "-q", str(self.bare), "main", cwd=self.work)

    @property
    def url(self) -> str:
        return f"file://{self.bare}"

    def commit(self, files: dict[str, bytes | str], *, message: str = "change", branch: str = "main",
               lfs: dict[str, bytes] | None = None, store_lfs: bool = True) -> str:
        """Commit ``files`` (and ``lfs`` files as pointers, their objects in the bare
        repository's LFS store unless ``store_lfs`` is False) and push ``branch``."""
        self.git("checkout", "-q", "-B", branch, cwd=self.work)
        contents: dict[str, bytes | str] = dict(files)
        for path, data in (lfs or {}).items():
            contents[path] = pointer(data)
            if store_lfs:
                self.store_lfs(data)
        sha = self.git.commit(self.work, contents, message=message)
        self.git("push", "-q", "--force", str(self.bare), f"{branch}:{branch}", cwd=self.work)
        return sha

    def store_lfs(self, data: bytes) -> str:
        oid = hashlib.sha256(data).hexdigest()
        target = self.bare / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return oid

    def refs(self) -> dict[str, str]:
        out = self.git.out("--git-dir", str(self.bare), "for-each-ref", "--format=%(refname) %(objectname)")
        return dict(line.split() for line in out.splitlines())

    def rewrite(self, branch: str = "main", *, message: str = "rewritten") -> str:
        """Replace the tip of ``branch`` by another commit (a forced update)."""
        self.git("checkout", "-q", branch, cwd=self.work)
        self.git("reset", "-q", "--hard", "HEAD~1", cwd=self.work)
        sha = self.git.commit(self.work, {"rewritten.txt": message}, message=message)
        self.git("push", "-q", "--force", str(self.bare), f"{branch}:{branch}", cwd=self.work)
        return sha
