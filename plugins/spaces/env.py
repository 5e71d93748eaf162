"""A space's secrets and variables, as the Hub keeps them: named values its app gets as
environment variables when it next (re)starts.

Secrets are stored encrypted (the plugin API's ``context.secrets``) and never answered by
any route or command: only their names, descriptions and update times. Variables are plain
and visible to whoever may read the space. A name is one or the other, never both, and
never one the runtime sets itself (``PORT``, ``GRADIO_SERVER_NAME`` ...: an app told to
listen beyond the loopback would escape the proxy's access rules).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from gitd.plugin_api import PluginSecrets, PluginStorage, SecretError

log = logging.getLogger("gitd.plugins.spaces")

SECRET, VARIABLE = "secret", "variable"
KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_VALUE = 64 * 1024
MAX_DESCRIPTION = 1000
MAX_ENTRIES = 100  # secrets and variables together, per space
# What the runtimes set for the app (local.Supervised._env, operator.render): not the owner's to change.
RESERVED = frozenset({
    "PATH", "HOME", "LANG", "PORT", "PYTHONUNBUFFERED", "SPACE_ID", "SYSTEM", "HF_HUB_OFFLINE",
    "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "GRADIO_ROOT_PATH", "GRADIO_ANALYTICS_ENABLED",
    "STREAMLIT_BROWSER_GATHER_USAGE_STATS",
})
RESERVED_PREFIXES = ("GITD_", "STREAMLIT_SERVER_")


class EnvError(ValueError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class EnvEntry:
    key: str
    kind: str
    value: str  # a variable's value; a secret's encrypted token
    description: str | None
    updated: float

    def updated_at(self) -> str:
        """The Hub's timestamp format (huggingface_hub's parse_datetime)."""
        return datetime.fromtimestamp(self.updated, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def check(key: object, value: object = "", description: object = None) -> tuple[str, str, str | None]:
    """The entry's key, value and description, or EnvError(400) naming what is wrong."""
    if not isinstance(key, str) or not KEY.match(key):
        raise EnvError(400, "key must be an environment variable name: a letter or _, then letters, digits "
                            "or _ (at most 128)")
    if key.upper() in RESERVED or key.upper().startswith(RESERVED_PREFIXES):
        raise EnvError(400, f"{key} is set by the space's runtime and cannot be changed")
    if not isinstance(value, str):
        raise EnvError(400, "value must be a string")
    if "\0" in value or len(value.encode()) > MAX_VALUE:
        raise EnvError(400, f"value must be at most {MAX_VALUE} bytes, without NUL characters")
    if description is not None and (not isinstance(description, str) or len(description) > MAX_DESCRIPTION):
        raise EnvError(400, f"description must be a string of at most {MAX_DESCRIPTION} characters")
    return key, value, description


class SpaceEnv:
    """The ``space_env`` table (created by ``state.MIGRATIONS``)."""

    def __init__(self, storage: PluginStorage, secrets: PluginSecrets):
        self.storage = storage
        self.secrets = secrets

    def entries(self, repo_id: int, kind: str | None = None) -> list[EnvEntry]:
        rows = self.storage.query("SELECT key, kind, value, description, updated FROM {prefix}space_env "
                                  "WHERE repo_id = ? ORDER BY key", [repo_id])
        return [EnvEntry(**r) for r in rows if kind is None or r["kind"] == kind]

    def put(self, repo_id: int, kind: str, key: object, value: object, description: object = None) -> None:
        key, value, description = check(key, value, description)
        stored = self.secrets.encrypt(value) if kind == SECRET else value
        with self.storage.transaction() as db:
            rows = db.execute("SELECT key, kind FROM {prefix}space_env WHERE repo_id = ?", [repo_id]).fetchall()
            kinds = {r["key"]: r["kind"] for r in rows}
            if kinds.get(key, kind) != kind:
                raise EnvError(409, f"{key} is already a {kinds[key]} of this space; delete it first")
            if key not in kinds and len(kinds) >= MAX_ENTRIES:
                raise EnvError(400, f"a space has at most {MAX_ENTRIES} secrets and variables")
            if description is None and key in kinds:  # an update without a description keeps it
                found = db.execute("SELECT description FROM {prefix}space_env WHERE repo_id = ? AND key = ?",
                                   [repo_id, key]).fetchone()
                description = found["description"]
            db.execute("INSERT OR REPLACE INTO {prefix}space_env (repo_id, key, kind, value, description, updated) "
                       "VALUES (?, ?, ?, ?, ?, ?)", [repo_id, key, kind, stored, description, time.time()])

    def delete(self, repo_id: int, kind: str, key: object) -> None:
        if not isinstance(key, str):
            raise EnvError(400, "key must be a string")
        with self.storage.transaction() as db:
            gone = db.execute("DELETE FROM {prefix}space_env WHERE repo_id = ? AND key = ? AND kind = ?",
                              [repo_id, key, kind]).rowcount
        if not gone:
            raise EnvError(404, f"this space has no {kind} named {key}")

    def forget(self, repo_id: int) -> None:
        self.storage.execute("DELETE FROM {prefix}space_env WHERE repo_id = ?", [repo_id])

    # -- what the runtimes give the app --------------------------------------------------------
    def environment(self, repo_id: int, kind: str | None = None) -> dict[str, str]:
        """Name -> value (secrets decrypted) for the app's environment."""
        out = {}
        for e in self.entries(repo_id, kind):
            try:
                out[e.key] = self.secrets.decrypt(e.value).decode() if e.kind == SECRET else e.value
            except SecretError:  # the data directory's key changed: the app runs without it, the log says so
                log.warning("space %s: secret %s does not decrypt with this data directory's key; set it again",
                            repo_id, e.key)
        return out

    def secrets_digest(self, repo_id: int) -> str:
        """Changes whenever a secret is set or deleted; says nothing of the values."""
        parts = [f"{e.key}\0{e.updated!r}" for e in self.entries(repo_id, SECRET)]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
