"""A quarantine for objects written outside git receive-pack (API commits), as git keeps a push's.

New blobs, trees and commits go into a temporary object directory inside the repository
(``objects/tmp_objdir-gitd-*``; ``git prune`` removes stale ones). They are checked with
git's fsck rules (``gitd.git.fsck``) and shown to pre-receive plugins through the same
environment git gives its hooks; only an accepted commit's objects are moved into the
repository (``migrate``), just before its ref moves. Anything refused is removed with the
directory, so a refused commit leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
import zlib
from collections.abc import Iterable
from pathlib import Path

import pygit2

from gitd.errors import Unprocessable
from gitd.git.env import git_env
from gitd.git.runner import GitRunner, printable

PREFIX = "tmp_objdir-gitd-"


class ObjectCheckFailed(Unprocessable):
    code = "ObjectCheckFailed"


class ObjectQuarantine:
    def __init__(self, repo_path: Path):
        self.repo_path = repo_path
        self.objects = repo_path / "objects"
        self.dir = Path(tempfile.mkdtemp(prefix=PREFIX, dir=self.objects))
        self._repo: pygit2.Repository | None = None

    @property
    def env(self) -> dict[str, str]:
        """What git (and ``PushEvent``) needs to see the quarantined objects with the repository's."""
        return {"GIT_OBJECT_DIRECTORY": str(self.dir), "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(self.objects),
                "GIT_QUARANTINE_PATH": str(self.dir)}

    def repository(self) -> pygit2.Repository:
        """A handle that reads the repository's objects and writes new ones into the quarantine."""
        if self._repo is None:
            repo = pygit2.Repository(str(self.repo_path))
            odb = pygit2.Odb()
            odb.add_backend(pygit2.OdbBackendLoose(str(self.dir), 1, False), 2)
            odb.add_disk_alternate(str(self.objects))
            repo.set_odb(odb)
            self._repo = repo
        return self._repo

    def write_blob(self, data: bytes) -> str:
        return str(self.repository().create_blob(data))

    def write_blob_chunks(self, size: int, chunks: Iterable[bytes]) -> str:
        """A blob of ``size`` bytes from ``chunks``, written as git writes a loose object (hashed and
        compressed as it comes, never held whole). hashlib and zlib let go of the GIL on big
        buffers, so the event loop keeps running meanwhile. ValueError if the sizes disagree."""
        digest = hashlib.sha1(b"blob %d\0" % size)
        deflate = zlib.compressobj(1)  # git's core.looseCompression default
        written = 0
        fd, temp = tempfile.mkstemp(prefix="tmp_obj_", dir=self.dir)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(deflate.compress(b"blob %d\0" % size))
                for chunk in chunks:
                    written += len(chunk)
                    if written > size:
                        break
                    digest.update(chunk)
                    out.write(deflate.compress(chunk))
                out.write(deflate.flush())
            if written != size:
                raise ValueError(f"the blob has {written} bytes, not {size}")
            oid = digest.hexdigest()
            target = self.dir / oid[:2] / oid[2:]
            target.parent.mkdir(exist_ok=True)
            os.chmod(temp, 0o444)
            os.replace(temp, target)
            return oid
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)

    def object_ids(self) -> list[str]:
        """The loose objects in the quarantine: what this commit adds to the repository."""
        ids = []
        for sub in sorted(os.listdir(self.dir)):
            if len(sub) == 2 and (self.dir / sub).is_dir():
                ids += [sub + name for name in os.listdir(self.dir / sub) if len(name) == 38]
        return ids

    def check(self, runner: GitRunner) -> None:
        """git's fsck checks over the new objects, as a push gets them (``git index-pack --strict``
        on a pack of them, the references they make checked against the repository); raises
        ObjectCheckFailed with git's first complaint."""
        if not runner.fsck.enabled:
            return
        ids = self.object_ids()
        if not ids:
            return
        env = git_env(git_dir=self.repo_path, extra=self.env)
        config = runner.hardened_config(hooks=False)
        with tempfile.TemporaryFile() as errors:
            pack = subprocess.Popen([runner.git, *config, "pack-objects", "--stdout", "-q"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=errors, env=env)
            index = subprocess.Popen([runner.git, *config, "index-pack", "--stdin", runner.fsck.strict_option()],
                                     stdin=pack.stdout, stdout=subprocess.DEVNULL, stderr=errors, env=env)
            assert pack.stdin is not None and pack.stdout is not None
            pack.stdout.close()  # index-pack holds it now
            with contextlib.suppress(BrokenPipeError):
                pack.stdin.write(("\n".join(ids) + "\n").encode())
            pack.stdin.close()
            index.wait()
            pack.wait()
            if index.returncode == 0 and pack.returncode == 0:
                return
            errors.seek(0)
            text = errors.read(65536)
        lines = [printable(line) for line in text.splitlines() if line.strip()]
        complaints = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
        reason = complaints[0] if complaints else (lines[-1] if lines else "git refused the objects")
        raise ObjectCheckFailed(f"the commit was refused by git's object checks: {reason[:300]}",
                                detail="; ".join(lines)[:2000])

    def migrate(self) -> None:
        """Move the quarantined objects into the repository (git's own way: link, else rename;
        an object already there stays as it is)."""
        for oid in self.object_ids():
            source = self.dir / oid[:2] / oid[2:]
            target_dir = self.objects / oid[:2]
            target_dir.mkdir(exist_ok=True)
            target = target_dir / oid[2:]
            try:
                os.link(source, target)
            except FileExistsError:
                continue
            except OSError:
                with contextlib.suppress(FileExistsError):
                    os.rename(source, target)
                continue
            os.unlink(source)

    def discard(self) -> None:
        self._repo = None
        shutil.rmtree(self.dir, ignore_errors=True)
