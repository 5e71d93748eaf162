"""The data directory is private to the daemon's user.

It holds the repositories, the LFS objects, ``gitd.db`` (token hashes) and ``gitd.toml``
(the S3 secret), so every ``gitd`` command runs with the umask 077: whatever it creates,
and whatever its git children and libgit2 create, comes out 0700 (directories) or 0600
(files) whatever the user's umask. ``gitd init`` also takes group and other permissions
off what is already there (when the top directory is open to others), and ``gitd
serve`` refuses to start on a data directory that other users can enter, with the
command that fixes it, unless ``[server] shared_data_dir`` allows it (then the umask is left alone too).

Only the top directory is checked when the daemon starts: nobody else can reach anything
below a directory of mode 0700, so the daemon's start does not walk the repositories.
"""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path

from gitd.config import ConfigError

PRIVATE_UMASK = 0o077
SHARED_SETTING = "server.shared_data_dir"
OTHERS = 0o077  # group and other permission bits


def is_empty_or_missing(root: Path) -> bool:
    try:
        with os.scandir(root) as entries:
            return next(entries, None) is None
    except FileNotFoundError:
        return True


def check_private(root: Path) -> None:
    """ConfigError (one line, with the fix) if other users can enter ``root``."""
    try:
        mode = stat.S_IMODE(os.stat(root).st_mode)
    except FileNotFoundError:
        return
    if mode & OTHERS:
        quoted = shlex.quote(str(root))
        raise ConfigError(
            f"the data directory {root} is open to other users (mode {mode:04o}) and holds repositories, "
            f"token hashes and secrets; make it private with 'chmod -R go-rwx {quoted}' (or 'gitd init {quoted}'), "
            f"or set [server] shared_data_dir = true to allow it")


def make_private(root: Path) -> int:
    """Take group and other permissions off ``root`` and everything under it (symbolic
    links are not followed); returns how many entries changed. A ``root`` already closed
    to others is left as it is, unwalked: nothing below it can be reached (the systemd unit
    runs ``gitd init`` before every start, on data directories of millions of files)."""
    try:
        if not os.stat(root).st_mode & OTHERS:
            return 0
    except FileNotFoundError:
        return 0
    changed = 0

    def fix(path: str) -> None:
        nonlocal changed
        st = os.lstat(path)
        if not stat.S_ISLNK(st.st_mode) and st.st_mode & OTHERS:
            os.chmod(path, stat.S_IMODE(st.st_mode) & ~OTHERS)
            changed += 1

    fix(str(root))
    for top, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            fix(os.path.join(top, name))
    return changed
