"""What plugins receive: typed, frozen events about repositories and the refs in them.

* ``PushEvent``: a batch of ref updates (``RefUpdate``: create, update or delete of a
  branch, tag or other ref), however it arrived (``via``);
* ``RepoCreated``, ``RepoDeleted``, ``RepoRenamed``, ``VisibilityChanged``: a
  repository's lifecycle;
* ``TaskEvent``: work a plugin queued for itself (``PluginContext.submit``).

Every event is a frozen dataclass that round-trips through ``to_dict``/``from_dict``
(post-receive work is stored as a durable job before it runs).
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import pygit2

from gitd.git.env import git_env

if TYPE_CHECKING:
    from gitd.plugins.view import RepoView, RepoViews

ZERO_OID = "0" * 40
# How a ref update arrived: a git push over HTTP or SSH, a commit through the API, a
# mirror fetch, or a plugin's own commit (such as a dataset's Parquet conversion).
VIA = ("http", "ssh", "api", "mirror", "plugin")

RefKind = Literal["create", "update", "delete"]
RefType = Literal["branch", "tag", "pull-request", "other"]


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

    @property
    def kind(self) -> RefKind:
        """``create``, ``update`` or ``delete``."""
        return "create" if self.is_create else "delete" if self.is_delete else "update"

    @property
    def ref_type(self) -> RefType:
        """``branch`` (refs/heads/), ``tag`` (refs/tags/), ``pull-request`` (refs/pr/) or ``other``."""
        if self.ref.startswith("refs/heads/"):
            return "branch"
        if self.ref.startswith("refs/tags/"):
            return "tag"
        if self.ref.startswith("refs/pr/"):
            return "pull-request"
        return "other"

    @property
    def is_branch(self) -> bool:
        return self.ref_type == "branch"

    @property
    def is_tag(self) -> bool:
        return self.ref_type == "tag"

    @property
    def short_name(self) -> str:
        """The branch or tag name (``main``, ``v1.0``), or the full ref for other refs."""
        for prefix in ("refs/heads/", "refs/tags/"):
            if self.ref.startswith(prefix):
                return self.ref[len(prefix):]
        return self.ref


@dataclass(frozen=True)
class PushEvent:
    """A batch of ref updates, however it arrived (``via``: "http", "ssh", "api", "mirror" or
    "plugin").

    During pre-receive the pushed objects are not in the repository yet: they sit in
    git's quarantine directory. ``repository``, ``view`` and ``git()`` see them anyway,
    because all three are set up with the quarantine environment (``git_env``).
    """

    repo: RepoInfo
    pusher: str | None
    updates: list[RefUpdate]
    via: str
    push_options: list[str] = field(default_factory=list)
    git_env: dict[str, str] = field(default_factory=dict, repr=False)
    lfs_missing: Callable[[Iterable[str]], set[str]] | None = field(default=None, repr=False, compare=False)
    views: RepoViews | None = field(default=None, repr=False, compare=False)

    # -- ref-level views of the batch --------------------------------------------------------
    @property
    def branch_updates(self) -> list[RefUpdate]:
        return [u for u in self.updates if u.is_branch]

    @property
    def tag_updates(self) -> list[RefUpdate]:
        return [u for u in self.updates if u.is_tag]

    def default_branch_update(self) -> RefUpdate | None:
        """The update of the repository's default branch in this batch, if any."""
        wanted = f"refs/heads/{self.repo.default_branch}"
        return next((u for u in self.updates if u.ref == wanted), None)

    # -- reading the repository ------------------------------------------------------------
    @property
    def repository(self) -> pygit2.Repository:
        """A pygit2 Repository that can read the pushed objects (quarantine included)."""
        found = self.__dict__.get("_repository")
        if found is None:
            found = pygit2.Repository(str(self.repo.path))
            quarantine = self.git_env.get("GIT_OBJECT_DIRECTORY")
            if quarantine:
                found.odb.add_disk_alternate(quarantine)
            object.__setattr__(self, "_repository", found)
        return found

    def release(self) -> None:
        """Let the repository this event opened go of its pack files (the daemon calls it when
        the hook that got the event has returned)."""
        found = self.__dict__.get("_repository")
        if found is not None:
            found.free()

    @property
    def view(self) -> RepoView:
        """The read-only ``RepoView`` of the repository (trees, files with LFS content, diffs),
        quarantined objects included."""
        found = self.__dict__.get("_view")
        if found is None:
            if self.views is None:
                raise RuntimeError("this event is not bound to the daemon (no repository views)")
            found = self.views.open(self.repo, repository=self.repository)
            object.__setattr__(self, "_view", found)
        return found

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


# -- repository lifecycle ----------------------------------------------------------------------
@dataclass(frozen=True)
class RepoCreated:
    repo: RepoInfo

    def to_dict(self) -> dict[str, Any]:
        return {"repo": self.repo.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RepoCreated:
        return cls(RepoInfo.from_dict(data["repo"]))


@dataclass(frozen=True)
class RepoDeleted:
    """``repo.path`` no longer exists."""

    repo: RepoInfo

    def to_dict(self) -> dict[str, Any]:
        return {"repo": self.repo.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RepoDeleted:
        return cls(RepoInfo.from_dict(data["repo"]))


@dataclass(frozen=True)
class RepoRenamed:
    """Renamed or moved to another namespace; ``repo`` has the new name (the id, the path and
    the data stay)."""

    repo: RepoInfo
    old_namespace: str
    old_name: str

    @property
    def old_full_name(self) -> str:
        return f"{self.old_namespace}/{self.old_name}"

    def to_dict(self) -> dict[str, Any]:
        return {"repo": self.repo.to_dict(), "old_namespace": self.old_namespace, "old_name": self.old_name}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RepoRenamed:
        return cls(RepoInfo.from_dict(data["repo"]), data["old_namespace"], data["old_name"])


@dataclass(frozen=True)
class VisibilityChanged:
    """``repo.private`` is the new visibility."""

    repo: RepoInfo

    def to_dict(self) -> dict[str, Any]:
        return {"repo": self.repo.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VisibilityChanged:
        return cls(RepoInfo.from_dict(data["repo"]))


@dataclass(frozen=True)
class TaskEvent:
    """Work a plugin queued for itself with ``PluginContext.submit`` (a durable job)."""

    repo: RepoInfo | None
    task: str
    payload: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"repo": self.repo.to_dict() if self.repo else None, "task": self.task, "payload": self.payload}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskEvent:
        repo = RepoInfo.from_dict(data["repo"]) if data.get("repo") else None
        return cls(repo, data["task"], dict(data.get("payload") or {}))
