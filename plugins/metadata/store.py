"""The metadata plugin's tables.

* ``repos``: one row per repository: the commit its facts describe, the settings'
  fingerprint, its license, and the info fields and flags the Hub answers (one indexed
  read per info request).
* ``files``: the facts of each file the plugin read (README.md, config.json, weights
  headers, Parquet footers), keyed by path, with the blob they came from.
* ``counts``: how many files of each kind (``fmt:gguf``, ``media:image``, ...) a
  repository has: presence tags without listing the repository.
* ``idx``: (key, value, type, repo) for the listings' filters, a covering primary key:
  a filter is one index range, its count another.
* ``lineage``: (child, base name, relation): base_model links, by name.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gitd.plugin_api import PluginStorage, RepoIds, RepoInfo

from .derive import Derived, Stored

MIGRATIONS = [
    """CREATE TABLE {prefix}repos (
        repo_id INTEGER PRIMARY KEY,
        full_name TEXT NOT NULL,
        type TEXT NOT NULL,
        private INTEGER NOT NULL DEFAULT 0,
        commit_id TEXT,
        fingerprint TEXT NOT NULL DEFAULT '',
        license TEXT NOT NULL DEFAULT '[]',
        info TEXT NOT NULL DEFAULT '{}',
        notes TEXT NOT NULL DEFAULT '[]',
        tagged_at REAL
    )""",
    "CREATE INDEX {prefix}repos_by_name ON {prefix}repos (full_name COLLATE NOCASE, type)",
    """CREATE TABLE {prefix}files (
        repo_id INTEGER NOT NULL,
        path TEXT NOT NULL,
        blob TEXT NOT NULL,
        reader TEXT NOT NULL,
        facts TEXT,
        warning TEXT,
        PRIMARY KEY (repo_id, path)
    ) WITHOUT ROWID""",
    """CREATE TABLE {prefix}counts (
        repo_id INTEGER NOT NULL,
        kind TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (repo_id, kind)
    ) WITHOUT ROWID""",
    """CREATE TABLE {prefix}idx (
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        type TEXT NOT NULL,
        repo_id INTEGER NOT NULL,
        PRIMARY KEY (key, value, type, repo_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX {prefix}idx_by_repo ON {prefix}idx (repo_id)",
    """CREATE TABLE {prefix}lineage (
        child_id INTEGER NOT NULL,
        base TEXT NOT NULL COLLATE NOCASE,
        relation TEXT NOT NULL,
        PRIMARY KEY (child_id, base)
    ) WITHOUT ROWID""",
    "CREATE INDEX {prefix}lineage_by_base ON {prefix}lineage (base)",
    # the commit the published tags and fields describe (commit_id: the one the facts do,
    # saved a moment before they are published)
    "ALTER TABLE {prefix}repos ADD COLUMN published_commit TEXT",
    "UPDATE {prefix}repos SET published_commit = commit_id",
]

FILTER_KEYS = {"tags": "tag", "pipeline_tag": "pipeline_tag", "library": "library", "language": "language",
               "license": "license"}
MANY = RepoIds.MANY  # counts stop past this: a listing only needs to know the matches are many


@dataclass(frozen=True)
class State:
    commit: str | None
    fingerprint: str


@dataclass
class FileRow:
    path: str
    blob: str
    reader: str
    facts: dict[str, Any] | None
    warning: str | None


class ChangedMeanwhile(Exception):
    """Another job moved the repository's state between our read and our write."""


class MetadataStore:
    def __init__(self, storage: PluginStorage):
        self.storage = storage
        storage.migrate(MIGRATIONS)

    # -- reading -----------------------------------------------------------------------------
    def state(self, repo_id: int) -> State | None:
        rows = self.storage.query("SELECT commit_id, fingerprint FROM {prefix}repos WHERE repo_id = ?", [repo_id])
        return State(rows[0]["commit_id"], rows[0]["fingerprint"]) if rows else None

    def stored(self, repo_id: int, repo_type: str) -> Stored:
        files = {r["path"]: (r["reader"], json.loads(r["facts"]) if r["facts"] else None, r["warning"])
                 for r in self.storage.query("SELECT path, reader, facts, warning FROM {prefix}files "
                                             "WHERE repo_id = ?", [repo_id])}
        counts = {r["kind"]: r["n"] for r in self.storage.query(
            "SELECT kind, n FROM {prefix}counts WHERE repo_id = ?", [repo_id])}
        return Stored(repo_type, files, counts)

    def info(self, repo_id: int) -> dict[str, Any] | None:
        rows = self.storage.query("SELECT info, commit_id FROM {prefix}repos WHERE repo_id = ?", [repo_id])
        if not rows or rows[0]["commit_id"] is None:
            return None
        return json.loads(rows[0]["info"])

    def row(self, repo_id: int) -> dict[str, Any] | None:
        rows = self.storage.query("SELECT * FROM {prefix}repos WHERE repo_id = ?", [repo_id])
        return rows[0] if rows else None

    def find(self, full_name: str, repo_type: str) -> dict[str, Any] | None:
        rows = self.storage.query("SELECT * FROM {prefix}repos WHERE full_name = ? COLLATE NOCASE AND type = ?",
                                  [full_name, repo_type])
        return rows[0] if rows else None

    def public_license(self, full_name: str) -> list[str] | None:
        """A public model's licenses, as tagged (None: not here, private, or not tagged yet)."""
        row = self.find(full_name, "model")
        if row is None or row["private"] or row["commit_id"] is None:
            return None
        return json.loads(row["license"]) or None

    def children(self, base: str) -> list[dict[str, Any]]:
        return self.storage.query(
            "SELECT l.child_id, l.relation, r.full_name, r.type FROM {prefix}lineage l "
            "JOIN {prefix}repos r ON r.repo_id = l.child_id WHERE l.base = ? COLLATE NOCASE ORDER BY r.full_name",
            [base])

    def bases(self, child_id: int) -> list[dict[str, Any]]:
        return self.storage.query("SELECT base, relation FROM {prefix}lineage WHERE child_id = ? ORDER BY base",
                                  [child_id])

    # -- filters -----------------------------------------------------------------------------
    def matches(self, repo_type: str, filters: dict[str, list[str]]) -> RepoIds | None:
        conditions = []
        for key, values in filters.items():
            if key not in FILTER_KEYS:
                return None
            conditions += [(FILTER_KEYS[key], v) for v in values]
        if not conditions:
            return None
        where = " INTERSECT ".join(["SELECT repo_id FROM {prefix}idx WHERE key = ? AND value = ? AND type = ?"]
                                   * len(conditions))
        args = [a for key, value in conditions for a in (key, value, repo_type)]
        count = min(self.storage.query(
            "SELECT count(*) AS n FROM (SELECT 1 FROM {prefix}idx WHERE key = ? AND value = ? AND type = ? LIMIT ?)",
            [key, value, repo_type, MANY + 1])[0]["n"] for key, value in conditions)

        def every() -> list[int]:
            return [r["repo_id"] for r in self.storage.query(where, args)]

        def among(ids: Sequence[int]) -> list[int]:
            # one index probe per (condition, id): never the whole of a common tag
            keep = [int(i) for i in ids]
            for key, value in conditions:
                found: set[int] = set()
                for start in range(0, len(keep), 1000):  # json_each is not ours to use: placeholders
                    chunk = keep[start:start + 1000]
                    found.update(r["repo_id"] for r in self.storage.query(
                        "SELECT repo_id FROM {prefix}idx WHERE key = ? AND value = ? AND type = ? "
                        f"AND repo_id IN ({','.join('?' * len(chunk))})", [key, value, repo_type, *chunk]))
                keep = [i for i in keep if i in found]
            return keep

        return RepoIds(count, every, among)

    # -- writing -----------------------------------------------------------------------------
    def save(self, repo: RepoInfo, *, base: State | None, commit: str, fingerprint: str, replace: bool,
             files: Sequence[FileRow], gone: Sequence[str], deltas: dict[str, int],
             notes: list[str] | None = None) -> None:
        """Apply one job's changes: the files it read, the paths gone, the kind counts' deltas
        (or, with ``replace``, everything anew). ChangedMeanwhile if the state is no longer
        ``base``: the caller starts over from the new state."""
        with self.storage.transaction() as db:
            now = db.execute("SELECT commit_id, fingerprint FROM {prefix}repos WHERE repo_id = ?",
                             [repo.id]).fetchone()
            if (State(now[0], now[1]) if now else None) != base:
                raise ChangedMeanwhile()
            if replace:
                db.execute("DELETE FROM {prefix}files WHERE repo_id = ?", [repo.id])
                db.execute("DELETE FROM {prefix}counts WHERE repo_id = ?", [repo.id])
            for path in gone:
                db.execute("DELETE FROM {prefix}files WHERE repo_id = ? AND path = ?", [repo.id, path])
            for f in files:
                db.execute("INSERT OR REPLACE INTO {prefix}files VALUES (?, ?, ?, ?, ?, ?)",
                           [repo.id, f.path, f.blob, f.reader, json.dumps(f.facts) if f.facts is not None else None,
                            f.warning])
            for kind, delta in deltas.items():
                if delta:
                    db.execute("INSERT INTO {prefix}counts VALUES (?, ?, ?) ON CONFLICT (repo_id, kind) "
                               "DO UPDATE SET n = n + excluded.n", [repo.id, kind, delta])
            db.execute("DELETE FROM {prefix}counts WHERE repo_id = ? AND n <= 0", [repo.id])
            db.execute("INSERT INTO {prefix}repos (repo_id, full_name, type, private, commit_id, fingerprint) "
                       "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (repo_id) DO UPDATE SET full_name = excluded.full_name, "
                       "type = excluded.type, private = excluded.private, commit_id = excluded.commit_id, "
                       "fingerprint = excluded.fingerprint",
                       [repo.id, repo.full_name, repo.type, int(repo.private), commit, fingerprint])
            if notes is not None:
                db.execute("UPDATE {prefix}repos SET notes = ? WHERE repo_id = ?", [json.dumps(notes), repo.id])

    def publish(self, repo: RepoInfo, derived: Derived, at: float, *, expect: State | None) -> list[str] | None:
        """Store what the Hub answers and filters by, derived from the facts of state
        ``expect``; returns the licenses it had before (None if the repository was new
        here). ChangedMeanwhile if the stored state is no longer ``expect``: newer facts
        were saved, whose own job publishes them."""
        with self.storage.transaction() as db:
            before = db.execute("SELECT license, private, commit_id, fingerprint FROM {prefix}repos "
                                "WHERE repo_id = ?", [repo.id]).fetchone()
            if (State(before[2], before[3]) if before else None) != expect:
                raise ChangedMeanwhile()
            db.execute("UPDATE {prefix}repos SET license = ?, info = ?, tagged_at = ?, private = ?, full_name = ?, "
                       "published_commit = ? WHERE repo_id = ?",
                       [json.dumps(derived.licenses), json.dumps(derived.info), at, int(repo.private),
                        repo.full_name, expect.commit if expect else None, repo.id])
            db.execute("DELETE FROM {prefix}idx WHERE repo_id = ?", [repo.id])
            for key, value in derived.index:
                db.execute("INSERT OR IGNORE INTO {prefix}idx VALUES (?, ?, ?, ?)", [key, value, repo.type, repo.id])
            db.execute("DELETE FROM {prefix}lineage WHERE child_id = ?", [repo.id])
            for base, relation in derived.lineage:
                db.execute("INSERT OR IGNORE INTO {prefix}lineage VALUES (?, ?, ?)", [repo.id, base, relation])
        return json.loads(before[0]) if before else None

    def set_identity(self, repo: RepoInfo) -> None:
        self.storage.execute("UPDATE {prefix}repos SET full_name = ?, private = ?, type = ? WHERE repo_id = ?",
                             [repo.full_name, int(repo.private), repo.type, repo.id])

    def forget(self, repo_id: int) -> None:
        with self.storage.transaction() as db:
            for table, column in (("repos", "repo_id"), ("files", "repo_id"), ("counts", "repo_id"),
                                  ("idx", "repo_id"), ("lineage", "child_id")):
                db.execute(f"DELETE FROM {{prefix}}{table} WHERE {column} = ?", [repo_id])
