"""The one builder of the environment every git child gets, whoever starts it.

git reads configuration and behaviour from its environment; the daemon passes an
allow-listed one and never its own (or a client's): only ``INHERITED`` variables come
from the daemon's environment, system and global configuration files are ignored, and
git never prompts. The server programs' hardened ``-c`` settings are
``gitd.git.runner.GitRunner.hardened_config``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

# The only variables a git child inherits from the daemon's own environment.
INHERITED = ("PATH", "LANG", "LC_ALL", "TMPDIR", "TZ")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


def git_env(*, git_dir: Path | str | None = None, home: Path | str | None = None,
            extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """An allow-listed environment for a git child: ``git_dir`` sets ``GIT_DIR``, ``home``
    sets ``HOME``; ``extra`` (validated by the caller) goes in last."""
    env = {k: os.environ[k] for k in INHERITED if k in os.environ}
    env.setdefault("PATH", DEFAULT_PATH)
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    env["GIT_CONFIG_GLOBAL"] = os.devnull
    env["GIT_TERMINAL_PROMPT"] = "0"
    if home is not None:
        env["HOME"] = str(home)
    if git_dir is not None:
        env["GIT_DIR"] = str(git_dir)
    if extra:
        env.update(extra)
    return env
