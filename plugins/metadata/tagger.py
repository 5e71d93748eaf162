"""Tagging one repository: read what changed on its default branch since the commit the
stored facts describe, store the new facts, derive and publish tags and fields.

Idempotent and safe to run concurrently: the stored state (commit, settings
fingerprint) is compared and set in the same transaction as the facts; a job that finds
it moved starts again from the new state. A bad file costs a warning on the repository;
a storage failure (S3 unreachable) raises, and the job is retried.
"""

from __future__ import annotations

import json
import logging
import struct
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from gitd.plugin_api import LimitExceeded, PluginContext, RepoInfo, RepoView, TreeEntry, ViewError

from .derive import derive
from .files import budget, extract, kinds, reader
from .ranged import BadFile, Ranged
from .settings import Settings, Tagging
from .store import ChangedMeanwhile, FileRow, MetadataStore, State

log = logging.getLogger("gitd.plugins.metadata")


@dataclass
class TagResult:
    commit: str | None
    files_read: list[str] = field(default_factory=list)
    bytes_read: int = 0
    skipped: bool = False  # nothing changed since the last run


class Tagger:
    def __init__(self, context: PluginContext, store: MetadataStore, settings: Settings, tagging: Tagging):
        self.context = context
        self.store = store
        self.settings = settings
        self.tagging = tagging

    def tag(self, repo: RepoInfo, *, full: bool = False, rederive: bool = False) -> TagResult:
        """Bring the repository's facts to its default branch's head. ``full``: read every
        file again; ``rederive``: publish again from stored facts even if nothing changed
        (a base model's license or visibility changed)."""
        for _ in range(5):
            try:
                return self._tag(repo, full, rederive)
            except ChangedMeanwhile:
                continue
        raise RuntimeError(f"{repo.full_name}: its metadata changed under this job five times; retrying later")

    def _tag(self, repo: RepoInfo, full: bool, rederive: bool) -> TagResult:
        if not repo.path.exists():
            self.store.forget(repo.id)
            return TagResult(None, skipped=True)
        view = self.context.view(repo)
        head = view.head()
        state = self.store.state(repo.id)
        fingerprint = self.tagging.fingerprint
        if head is None:
            if state is not None:
                self.store.forget(repo.id)
            return TagResult(None, skipped=True)
        if not full and state is not None and state.commit == head and state.fingerprint == fingerprint:
            if rederive:
                self.publish(repo)
            return TagResult(head, skipped=True)
        replace = full or state is None or state.fingerprint != fingerprint or not _has_commit(view, state.commit)
        notes: list[str] = []
        try:
            changes = view.diff(None if replace else state.commit if state else None, head,
                                limit=self.settings.max_files)
        except LimitExceeded:
            notes.append(f"the commit changes more than {self.settings.max_files} files (max_files): not tagged")
            changes, replace = [], True
        result = TagResult(head)
        deltas: Counter[str] = Counter()
        files: list[FileRow] = []
        gone: list[str] = []
        for change in changes:
            if change.old is not None and not replace:
                deltas.update({k: -1 for k in self._kinds(change.old.path)})
                if reader(change.old.path, repo.type):
                    gone.append(change.old.path)
            if change.new is not None:
                deltas.update({k: 1 for k in self._kinds(change.new.path)})
                kind = reader(change.new.path, repo.type)
                if kind is not None:
                    files.append(self._read(view, head, change.new, kind, result))
        self.store.save(repo, base=state, commit=head, fingerprint=fingerprint, replace=replace, files=files,
                        gone=[p for p in gone if p not in {f.path for f in files}], deltas=dict(deltas),
                        notes=notes if notes or replace else None)
        self.store.storage.kv.set(f"last-job:{repo.id}", {"commit": head, "full": replace,
                                                          "files_read": result.files_read,
                                                          "bytes_read": result.bytes_read})
        self.publish(repo)
        return result

    def _kinds(self, path: str) -> set[str]:
        return kinds(path) | set(self.tagging.file_tags(path))

    def _read(self, view: RepoView, commit: str, entry: TreeEntry, kind: str, result: TagResult) -> FileRow:
        if len(result.files_read) >= self.settings.max_read_files:
            return FileRow(entry.path, entry.oid, kind, None,
                           f"{entry.path}: not read: the commit has more than {self.settings.max_read_files} files "
                           "to read (max_read_files)")
        r = Ranged(lambda start, end: view.read_range(commit, entry.path, start, end), entry.size, name=entry.path,
                   budget=budget(kind, self.settings))
        facts: dict[str, Any] | None = None
        warning = None
        try:
            facts = extract(kind, r, self.settings)
        except BadFile as exc:
            warning = str(exc)
        except ViewError as exc:  # an LFS object the server does not hold, ...
            warning = f"{entry.path}: not read: {exc}"
        except (ValueError, struct.error, OverflowError, RecursionError) as exc:
            log.warning("%s: %s could not be read", view.repo.full_name, entry.path, exc_info=True)
            warning = f"{entry.path}: could not be read ({type(exc).__name__})"
        result.files_read.append(entry.path)
        result.bytes_read += r.bytes_read
        return FileRow(entry.path, entry.oid, kind, facts, warning)

    def publish(self, repo: RepoInfo) -> None:
        """Derive tags and fields from the stored facts and publish them; when the license
        changed, queue the repositories that name this one as their base to derive again."""
        state = self.store.state(repo.id)  # what the facts read below describe
        row = self.store.row(repo.id)
        stored = self.store.stored(repo.id, repo.type)
        stored.notes = json.loads(row["notes"]) if row else []
        own = repo.full_name.lower()
        derived = derive(stored, self.tagging, check_licenses=self.settings.check_licenses,
                         base_license=lambda name: None if name.lower() == own else self.store.public_license(name))
        try:
            before = self.store.publish(repo, derived, time.time(), expect=state)
        except ChangedMeanwhile:
            # another job stored newer facts meanwhile; it publishes what they say (ours,
            # derived from older ones, would overwrite its tags)
            log.debug("%s: newer facts were stored meanwhile; not publishing older ones", repo.full_name)
            return
        if before != derived.licenses:
            self.retag_children(repo)

    def retag_children(self, repo: RepoInfo) -> None:
        for child in self.store.children(repo.full_name):
            if child["child_id"] == repo.id:
                continue
            found = self.context.find_repo(child["full_name"], child["type"])
            if found is not None:
                self.context.submit(found, "retag", {"rederive": True})


def _has_commit(view: RepoView, commit: str | None) -> bool:
    if commit is None:
        return False
    try:
        view.commit(commit)
        return True
    except (KeyError, ValueError):
        return False


__all__ = ["State", "TagResult", "Tagger"]
