"""Built-in push policy: blob size limit, default-branch protection, LFS objects present.

Registered through the ``gitd.plugins`` entry point like any third-party plugin, and
configured by the ``[plugins.policy]`` table of gitd.toml:

    [plugins.policy]
    max_blob_size = "10MiB"        # largest blob allowed outside Git LFS
    protect_default_branch = true  # no force-push to, or deletion of, the default branch
    require_lfs_objects = true     # LFS pointers must name objects the repo holds
"""

from __future__ import annotations

from dataclasses import dataclass

import pygit2

from gitd.plugin_api import (
    MAX_LFS_POINTER_SIZE,
    PluginContext,
    PushEvent,
    PushRejected,
    Size,
    hookimpl,
    parse_lfs_pointer,
)


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


TEN_MIB = Size.parse("10MiB")


@dataclass(frozen=True)
class PolicySettings:
    max_blob_size: Size = TEN_MIB
    protect_default_branch: bool = True
    require_lfs_objects: bool = True


class PolicyPlugin:
    def __init__(self, context: PluginContext):
        settings = context.settings(PolicySettings)  # names the key of any bad setting
        self.max_blob_size = settings.max_blob_size
        self.protect_default_branch = settings.protect_default_branch
        self.require_lfs_objects = settings.require_lfs_objects

    @hookimpl
    def gitd_pre_receive(self, event: PushEvent) -> None:
        if self.protect_default_branch:
            self._check_default_branch(event)
        tips = [u.new for u in event.updates if not u.is_delete]
        if not tips:
            return
        # event.lfs_missing is set by the daemon whenever it has an LFS store.
        check_lfs = self.require_lfs_objects and event.lfs_missing is not None
        too_big, pointers = self._scan_new_blobs(event, tips, want_pointers=check_lfs)
        if too_big:
            self._reject_big(too_big)
        if check_lfs and pointers:
            assert event.lfs_missing is not None
            missing = event.lfs_missing({oid for _, oid in pointers})
            if missing:
                paths = sorted({path for path, oid in pointers if oid in missing})
                raise PushRejected(
                    "push refused: these files are Git LFS pointers to objects the server does not have:\n"
                    + "".join(f"  {p}\n" for p in paths[:20])
                    + (f"  ... and {len(paths) - 20} more\n" if len(paths) > 20 else "")
                    + "Upload them first (git lfs push --all origin), then push again."
                )

    def _check_default_branch(self, event: PushEvent) -> None:
        if event.via == "mirror":
            return  # a mirror's branches follow its upstream; the mirror decides on forced updates
        protected = f"refs/heads/{event.repo.default_branch}"
        for update in event.updates:
            if update.ref != protected or update.is_create:
                continue
            if update.is_delete:
                raise PushRejected(
                    f"push refused: {event.repo.default_branch} is the default branch and cannot be deleted."
                )
            ancestor = event.git("merge-base", "--is-ancestor", update.old, update.new, check=False)
            if ancestor.returncode == 1:
                raise PushRejected(
                    f"push refused: force-pushing to the default branch {event.repo.default_branch} is not "
                    "allowed.\nFetch, merge or rebase onto the remote branch, and push again."
                )
            if ancestor.returncode != 0:
                raise RuntimeError(ancestor.stderr.decode("utf-8", "replace"))

    def _scan_new_blobs(
        self, event: PushEvent, tips: list[str], *, want_pointers: bool
    ) -> tuple[list[tuple[str, int]], list[tuple[str, str]]]:
        """Blobs this push introduces: (path, size) of those over the limit, and (path, LFS oid)
        of the LFS pointers. The object listing is streamed, never held whole."""
        odb = event.repository.odb
        too_big: list[tuple[str, int]] = []
        pointers: list[tuple[str, str]] = []
        # The tips go on standard input: a push (or a mirror) may move 100,000 refs.
        for line in event.git_lines("rev-list", "--objects", "--stdin", "--not", "--all",
                                    input="".join(f"{tip}\n" for tip in tips).encode()):
            sha, _, raw_path = line.partition(b" ")
            if not raw_path:
                continue  # commits and root trees have no path
            obj_type, size = odb.read_header(sha.decode())
            if obj_type != pygit2.GIT_OBJECT_BLOB:
                continue
            path = raw_path.decode("utf-8", "replace")
            if size > self.max_blob_size:
                too_big.append((path, size))
            elif want_pointers and size <= MAX_LFS_POINTER_SIZE:
                pointer = parse_lfs_pointer(odb.read(sha.decode())[1])
                if pointer is not None:
                    pointers.append((path, pointer.oid))
        return too_big, pointers

    def _reject_big(self, too_big: list[tuple[str, int]]) -> None:
        lines = [
            f"push refused: {len(too_big)} file(s) exceed the {_human(self.max_blob_size)} limit for files "
            "stored in git. Store them with Git LFS:"
        ]
        for path, size in too_big[:20]:
            lines.append(f"  {path} ({_human(size)})")
        first = too_big[0][0]
        lines += [
            "To fix this:",
            f'  git lfs track "{first}"',
            "  git add .gitattributes",
            f'  git lfs migrate import --include="{first}"   # rewrites the commits that added it',
            "and push again.",
        ]
        raise PushRejected("\n".join(lines))
