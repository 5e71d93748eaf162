"""What plugins receive: the repository, and the push (ref updates) being made."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pygit2

from gitd.git.env import git_env

ZERO_OID = "0" * 40
VIA = ("http", "ssh", "api", "mirror")


@dataclass(frozen=True)
class RepoInfo:
    """A repository as plugins see it."""

    id: int
    namespace: str
    name: str
    type: str  # model | dataset | code | space
    private: bool
    path: Path
    default_branch: str = "main"

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "namespace": self.namespace, "name": self.name, "type": self.type,
            "private": self.private, "path": str(self.path), "default_branch": self.default_branch,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RepoInfo:
        return cls(**{**data, "path": Path(data["path"])})


class RefUpdate(NamedTuple):
    """One ref moving from ``old`` to ``new`` (40-hex ids; ZERO_OID for create/delete)."""

    ref: str
    old: str
    new: str

    @property
    def is_create(self) -> bool:
        return self.old == ZERO_OID

    @property
    def is_delete(self) -> bool:
        return self.new == ZERO_OID


@dataclass
class PushEvent:
    """A batch of ref updates, however it arrived ("http", "ssh", "api" or "mirror").

    During pre-receive the pushed objects are not in the repository yet: they sit in
    git's quarantine directory. ``repository`` and ``git()`` see them anyway, because
    both are set up with the quarantine environment (``git_env``).
    """

    repo: RepoInfo
    pusher: str | None
    updates: list[RefUpdate]
    via: str
    push_options: list[str] = field(default_factory=list)
    git_env: dict[str, str] = field(default_factory=dict)
    lfs_missing: Callable[[Iterable[str]], set[str]] | None = field(default=None, repr=False)
    _repository: pygit2.Repository | None = field(default=None, init=False, repr=False)

    @property
    def repository(self) -> pygit2.Repository:
        """A pygit2 Repository that can read the pushed objects (quarantine included)."""
        if self._repository is None:
            repo = pygit2.Repository(str(self.repo.path))
            quarantine = self.git_env.get("GIT_OBJECT_DIRECTORY")
            if quarantine:
                repo.odb.add_disk_alternate(quarantine)
            self._repository = repo
        return self._repository

    def _env(self) -> dict[str, str]:
        return git_env(git_dir=self.repo.path, extra=self.git_env)

    def git(self, *args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
        """Run ``git <args>`` in the repository with the quarantine environment (output captured)."""
        return subprocess.run(["git", *args], input=input, capture_output=True, env=self._env(), check=check)

    def git_lines(self, *args: str) -> Iterator[bytes]:
        """Run ``git <args>`` like ``git()``, yielding its output line by line as it comes (for
        outputs too big to hold, such as ``rev-list --objects``); raises CalledProcessError
        at the end if git failed."""
        with tempfile.TemporaryFile() as errors, subprocess.Popen(
            ["git", *args], stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL, env=self._env()
        ) as proc:
            assert proc.stdout is not None
            try:
                for line in proc.stdout:
                    yield line.rstrip(b"\n")
            except BaseException:  # the caller stopped early (or failed): stop git too
                proc.kill()
                raise
            if proc.wait() != 0:
                errors.seek(0)
                raise subprocess.CalledProcessError(proc.returncode, ["git", *args], stderr=errors.read(65536))

    def to_dict(self) -> dict[str, Any]:
        """The durable part of the event (for post-receive jobs): no quarantine, no handles."""
        return {
            "repo": self.repo.to_dict(), "pusher": self.pusher, "via": self.via,
            "updates": [list(u) for u in self.updates], "push_options": list(self.push_options),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PushEvent:
        return cls(
            repo=RepoInfo.from_dict(data["repo"]), pusher=data["pusher"], via=data["via"],
            updates=[RefUpdate(*u) for u in data["updates"]], push_options=list(data.get("push_options", [])),
        )
