"""git commands a plugin runs itself (a mirror's ``git fetch``/``git push``), set up as the
daemon sets up its own git children.

``PluginContext.git_command(args, git_dir=...)`` returns the argument vector and the
environment; the plugin starts the process (it may stream its output). What it gets:

* the daemon's allow-listed environment (``gitd.git.env.git_env``): no system or global
  configuration, no prompts, nothing from the daemon's own environment but ``PATH``,
  the locale and ``TMPDIR``;
* git's object checks as pushes get them (``[git] fsck_objects``, ``fsck_ignore``): for
  ``fetch`` and ``clone`` as ``fetch.fsckObjects`` (what a fetch brings into a server
  repository is checked like a push), for ``fsck`` as ``fsck.*``, and for ``index-pack``
  and ``unpack-objects`` a bare ``--strict`` becomes the ``--strict=...`` pushes get;
* no hooks, no credential helpers, no ask-pass program, no automatic gc or maintenance,
  no submodules, no LFS filters;
* only the transports in ``protocols`` (by default http, https and ssh; ``file`` only
  when the plugin asks for it: a file URL reads anything the daemon can read);
* ``transfer.credentialsInUrl=die``: a URL with a password in it is refused by git
  itself, so credentials go through the environment (``http.<url>.extraHeader`` as
  ``GIT_CONFIG_*`` variables), never into argv or the log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gitd.git.env import git_env
from gitd.git.fsck import FsckSettings

PROTOCOLS = ("http", "https", "ssh", "file")
DEFAULT_PROTOCOLS = ("http", "https", "ssh")
# Variables a plugin may set for its git child (on top of the allow-listed environment).
_ENV_PREFIXES = ("GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_")
_ENV_NAMES = ("GIT_SSH_COMMAND", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES",
              "GIT_HTTP_LOW_SPEED_LIMIT", "GIT_HTTP_LOW_SPEED_TIME")


@dataclass(frozen=True)
class GitCommand:
    """What to start: ``subprocess.Popen(cmd.argv, env=cmd.env, ...)``."""

    argv: list[str]
    env: dict[str, str] = field(repr=False)


class GitCommands:
    """Builds ``GitCommand``s (the daemon's side of ``PluginContext.git_command``)."""

    def __init__(self, fsck: FsckSettings, no_hooks: Path, *, git: str = "git"):
        self.fsck = fsck
        self.no_hooks = no_hooks
        self.git = git

    def config(self, command: str, protocols: Iterable[str]) -> list[str]:
        allowed = list(dict.fromkeys(protocols))
        unknown = [p for p in allowed if p not in PROTOCOLS]
        if unknown:
            raise ValueError(f"unknown git protocol(s) {unknown}; gitd allows {', '.join(PROTOCOLS)}")
        settings = [
            f"core.hooksPath={self.no_hooks}",
            "credential.helper=",
            "core.askPass=",
            "core.fsmonitor=false",
            "gc.auto=0",
            "maintenance.auto=false",
            "fetch.writeCommitGraph=false",
            "fetch.recurseSubmodules=false",
            "submodule.recurse=false",
            "push.recurseSubmodules=no",
            "filter.lfs.process=",
            "filter.lfs.smudge=",
            "filter.lfs.clean=",
            "filter.lfs.required=false",
            "transfer.credentialsInUrl=die",
            "protocol.allow=never",
            *[f"protocol.{p}.allow=always" for p in allowed],
        ]
        if command in ("fetch", "clone"):
            settings += self.fsck.git_config(("fetch",))
        elif command == "fsck":
            settings += self.fsck.git_config(("fsck",))
        out: list[str] = []
        for setting in settings:
            out += ["-c", setting]
        return out

    def command(self, args: list[str], *, git_dir: Path | str | None, env: Mapping[str, str] | None = None,
                protocols: Iterable[str] = DEFAULT_PROTOCOLS) -> GitCommand:
        if not args:
            raise ValueError("no git command given")
        extra = dict(env or {})
        for name in extra:
            if name not in _ENV_NAMES and not name.startswith(_ENV_PREFIXES):
                raise ValueError(f"{name} is not a variable a plugin may set for git")
        if args[0] in ("index-pack", "unpack-objects"):
            args = [self.fsck.strict_option() if a == "--strict" else a for a in args]
        self.no_hooks.mkdir(parents=True, exist_ok=True)
        return GitCommand([self.git, *self.config(args[0], protocols), *args],
                          git_env(git_dir=git_dir, home=self.no_hooks, extra=extra))
