"""The data directory's layout, in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def default_data_dir() -> Path:
    env = os.environ.get("GITD_DATA")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "gitd"


@dataclass(frozen=True)
class DataDir:
    root: Path

    def __post_init__(self) -> None:
        # git runs hooks from inside each repository: every path we hand it must be absolute.
        object.__setattr__(self, "root", Path(os.path.abspath(self.root)))

    @property
    def config_file(self) -> Path:
        return self.root / "gitd.toml"

    @property
    def db_file(self) -> Path:
        return self.root / "gitd.db"

    @property
    def repos(self) -> Path:
        return self.root / "repos"

    @property
    def lfs(self) -> Path:
        return self.root / "lfs"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    @property
    def secret_key_file(self) -> Path:
        return self.secrets / "internal.key"

    @property
    def ssh_host_key(self) -> Path:
        return self.root / "ssh" / "ssh_host_ed25519_key"

    @property
    def hooks(self) -> Path:
        return self.root / "hooks"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def hook_socket(self) -> Path:
        return self.run / "hooks.sock"

    @property
    def serve_info(self) -> Path:
        return self.run / "serve.json"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    def plugin_dir(self, name: str) -> Path:
        """A plugin's own directory (``PluginContext.cache_dir``)."""
        if not name or name.startswith(".") or "/" in name or "\\" in name:
            raise ValueError(f"not a plugin name: {name!r}")
        return self.root / "plugins" / name

    def repo_path(self, repo_id: int) -> Path:
        """Where repository `repo_id` lives: derived from the id, never from a name."""
        return self.repos / f"{repo_id % 256:02x}" / f"{repo_id}.git"

    def is_initialised(self) -> bool:
        return self.db_file.exists() and self.secret_key_file.exists()
