"""What the daemon and the ``gitd`` command both know about each space: one row per space
in the plugin's storage (stage, error, commit, what to run), read by the API and the CLI."""

from __future__ import annotations

import time
from dataclasses import dataclass

from gitd.plugin_api import PluginStorage

# The Hub's stages (huggingface_hub.SpaceStage).
BUILDING = "BUILDING"
BUILD_ERROR = "BUILD_ERROR"
CONFIG_ERROR = "CONFIG_ERROR"
NO_APP_FILE = "NO_APP_FILE"
APP_STARTING = "APP_STARTING"
RUNNING = "RUNNING"
RUNTIME_ERROR = "RUNTIME_ERROR"
PAUSED = "PAUSED"
SLEEPING = "SLEEPING"
STOPPED = "STOPPED"
# Stages in which a request wakes the space (a stopped or paused one waits for a restart).
WAKEABLE = (SLEEPING,)

MIGRATIONS = [
    """CREATE TABLE {prefix}spaces (
        repo_id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        commit_id TEXT,
        sdk TEXT,
        app_file TEXT,
        stage TEXT NOT NULL,
        error TEXT,
        build_dir TEXT,
        python TEXT,
        port INTEGER,
        pid INTEGER,
        restarts INTEGER NOT NULL DEFAULT 0,
        sleep_time REAL,
        runtime TEXT NOT NULL DEFAULT 'local',
        updated REAL NOT NULL
    )""",
    # env.SpaceEnv: secrets (value encrypted) and variables, given to the app as its environment
    """CREATE TABLE {prefix}space_env (
        repo_id INTEGER NOT NULL,
        key TEXT NOT NULL,
        kind TEXT NOT NULL,
        value TEXT NOT NULL,
        description TEXT,
        updated REAL NOT NULL,
        PRIMARY KEY (repo_id, key)
    )""",
]


@dataclass
class SpaceRow:
    repo_id: int
    name: str
    stage: str
    commit_id: str | None = None
    sdk: str | None = None
    app_file: str | None = None
    error: str | None = None
    build_dir: str | None = None
    python: str | None = None
    port: int | None = None
    pid: int | None = None
    restarts: int = 0
    sleep_time: float | None = None
    runtime: str = "local"
    updated: float = 0.0

    def public(self) -> dict:
        return {"name": self.name, "stage": self.stage, "sdk": self.sdk, "commit": self.commit_id,
                "error": self.error, "restarts": self.restarts, "sleep_time": self.sleep_time,
                "runtime": self.runtime, "pid": self.pid, "updated": self.updated}


class SpaceStates:
    def __init__(self, storage: PluginStorage):
        self.storage = storage
        storage.migrate(MIGRATIONS)

    def get(self, repo_id: int) -> SpaceRow | None:
        rows = self.storage.query("SELECT * FROM {prefix}spaces WHERE repo_id = ?", [repo_id])
        return SpaceRow(**rows[0]) if rows else None

    def all(self) -> list[SpaceRow]:
        return [SpaceRow(**r) for r in self.storage.query("SELECT * FROM {prefix}spaces ORDER BY name")]

    def set(self, repo_id: int, name: str, **fields: object) -> SpaceRow:
        """Create or update a space's row with ``fields`` (others kept)."""
        with self.storage.transaction() as db:
            found = db.execute("SELECT * FROM {prefix}spaces WHERE repo_id = ?", [repo_id]).fetchone()
            if found is None:
                row = SpaceRow(repo_id, name, str(fields.pop("stage", STOPPED)))
            else:
                row = SpaceRow(**dict(found))
            row.name = name
            for key, value in fields.items():
                setattr(row, key, value)
            row.updated = time.time()
            values = row.__dict__
            cols = list(values)
            db.execute(f"INSERT OR REPLACE INTO {{prefix}}spaces ({', '.join(cols)}) "
                       f"VALUES ({', '.join('?' for _ in cols)})", [values[c] for c in cols])
        return row

    def delete(self, repo_id: int) -> None:
        self.storage.execute("DELETE FROM {prefix}spaces WHERE repo_id = ?", [repo_id])
