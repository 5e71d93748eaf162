"""Write a commit's files into a build directory, through the plugin API's ``RepoView``
(no work tree in the bare repository, Git LFS files as their content).

The files land in a fresh temporary directory renamed into place at the end, so a
half-written checkout is never run. Symbolic links and submodules are not files to the
view and are not written; every path is checked to stay inside the directory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from gitd.plugin_api import RepoView


def checkout(view: RepoView, commit: str, target: Path, *, max_files: int = 100_000) -> Path:
    if target.exists():
        return target
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True, mode=0o755)
    root = tmp.resolve()
    for entry in view.files(commit, limit=max_files):
        dest = (tmp / entry.path).resolve()
        if root not in dest.parents:
            continue
        dest.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        with open(dest, "wb") as out:
            if entry.lfs is None:  # a git blob: one read (the view caps its size)
                out.write(view.read(commit, entry.path))
            else:  # an LFS object: ranged reads, streamed
                with view.open(commit, entry.path) as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        dest.chmod(0o755 if entry.executable else 0o644)  # readable by an app running as another user
    for path in (target.parent, tmp, *(d for d in tmp.rglob("*") if d.is_dir())):
        path.chmod(0o755)  # the daemon's umask is private; an app running as another user reads its build
    os.replace(tmp, target)
    return target
