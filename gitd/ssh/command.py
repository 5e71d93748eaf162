"""Parsing the command line an SSH client asks to run.

git sends ``git-upload-pack '/ns/name.git'`` (the path single-quoted, with a leading
'/' for ``ssh://`` URLs and without one for scp-style ``host:ns/name.git``); git-lfs
sends ``git-lfs-authenticate /ns/name.git download`` unquoted. All of them, with or
without ``.git`` and with the Hub's type prefixes (``datasets/``, ``spaces/``,
``codes/``), name the same repository. Only the verbs below are ever run.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from gitd.names import PREFIX_TYPE, RepoName, is_valid_name

GIT_VERBS = {
    "git-upload-pack": "upload-pack",
    "git-receive-pack": "receive-pack",
    "git-upload-archive": "upload-archive",
}
LFS_VERBS = ("git-lfs-authenticate", "git-lfs-transfer")
LFS_OPERATIONS = ("upload", "download")
MAX_COMMAND = 4096


class CommandError(Exception):
    """A command gitd does not run; ``message`` is for the user."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Command:
    verb: str  # one of GIT_VERBS or LFS_VERBS
    repo: RepoName
    operation: str | None = None  # upload | download, for the LFS verbs

    @property
    def git_service(self) -> str | None:
        return GIT_VERBS.get(self.verb)


def parse_repo_path(path: str) -> RepoName:
    """'/datasets/ns/name.git', 'ns/name', ... -> RepoName; CommandError otherwise."""
    if path.startswith("~"):
        raise CommandError("'~' paths are not supported; use ssh://git@HOST:PORT/NAMESPACE/NAME.git")
    trimmed = path.strip("/") if path != "/" else ""
    parts = trimmed.split("/") if trimmed else []
    repo_type = "model"
    if parts and parts[0] in PREFIX_TYPE:
        repo_type = PREFIX_TYPE[parts[0]]
        parts = parts[1:]
    if len(parts) != 2:
        raise CommandError(f"not a repository path: {path!r:.100}; expected [datasets/|spaces/|codes/]NAMESPACE/NAME")
    namespace, name = parts
    if name.endswith(".git"):
        name = name[:-4]
    if not (is_valid_name(namespace) and is_valid_name(name)):
        raise CommandError(f"not a repository path: {path!r:.100}")
    return RepoName(repo_type, namespace, name)


def parse_command(text: str) -> Command:
    if len(text) > MAX_COMMAND or "\0" in text or "\n" in text:
        raise CommandError("malformed command")
    try:
        words = shlex.split(text)
    except ValueError:
        raise CommandError("malformed command: unbalanced quotes")
    if len(words) >= 2 and words[0] == "git" and f"git-{words[1]}" in GIT_VERBS:
        words = [f"git-{words[1]}", *words[2:]]  # 'git upload-pack PATH', as git-shell accepts
    if not words:
        raise CommandError("empty command")
    verb, args = words[0], words[1:]
    if verb in GIT_VERBS:
        if len(args) != 1:
            raise CommandError(f"usage: {verb} PATH")
        return Command(verb, parse_repo_path(args[0]))
    if verb in LFS_VERBS:
        if len(args) != 2 or args[1] not in LFS_OPERATIONS:
            raise CommandError(f"usage: {verb} PATH upload|download")
        return Command(verb, parse_repo_path(args[0]), args[1])
    raise CommandError(
        f"unknown command {verb[:60]!r}: gitd only runs git-upload-pack, git-receive-pack, "
        "git-upload-archive, git-lfs-authenticate and git-lfs-transfer"
    )
