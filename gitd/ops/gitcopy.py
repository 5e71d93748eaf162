"""Copying repositories object-consistently, for backups and restores.

``mirror(src, dst)`` brings every ref of ``src`` into the bare repository ``dst`` with
``git fetch``: the refs are read first, then exactly the objects they reach are sent and
checked for connectivity before any ref of ``dst`` moves. So a copy taken while pushes
land (and while ``git gc`` repacks) is always whole: each ref is at the value it had at
some moment, with every object it needs. A second mirror into the same ``dst`` fetches
only what is new (incremental), and drops refs ``src`` no longer has.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from gitd.git.env import git_env


class CopyFailed(Exception):
    pass


def _git(git_dir: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(["git", *args], env=git_env(git_dir=git_dir), capture_output=True)
    if proc.returncode != 0:
        raise CopyFailed(f"git {' '.join(args[:2])} in {git_dir} failed: "
                         f"{proc.stderr.decode('utf-8', 'replace').strip()[-500:]}")
    return proc


def head_target(repo: Path) -> str | None:
    """The ref HEAD names (``refs/heads/main``), or None for a detached or unreadable HEAD."""
    try:
        head = (repo / "HEAD").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return head[5:] if head.startswith("ref: refs/") else None


def set_head(repo: Path, ref: str) -> None:
    _git(repo, "symbolic-ref", "HEAD", ref)


def mirror(src: Path, dst: Path) -> int:
    """Fetch every ref of ``src`` into the existing bare repository ``dst`` (pruning refs
    ``src`` dropped) and point ``dst``'s HEAD where ``src``'s points. Returns how many refs
    ``dst`` has."""
    _git(dst, "-c", "fetch.fsckObjects=false", "-c", "gc.auto=0", "-c", "core.hooksPath=/dev/null",
         "fetch", "--quiet", "--prune", "--no-write-fetch-head", "--update-head-ok", str(src), "+refs/*:refs/*")
    target = head_target(src)
    if target is not None and head_target(dst) != target:
        set_head(dst, target)
    return refs_count(dst)


def refs_count(repo: Path) -> int:
    out = _git(repo, "for-each-ref", "--format=%(refname)").stdout
    return len(out.splitlines())


def refs(repo: Path) -> dict[str, str]:
    """Every ref and the object it names."""
    out = _git(repo, "for-each-ref", "--format=%(refname) %(objectname)").stdout.decode()
    pairs = (line.split(" ", 1) for line in out.splitlines() if line)
    return {name: oid for name, oid in pairs}


def init_bare(path: Path, initial_head: str = "main") -> None:
    subprocess.run(["git", "init", "--quiet", "--bare", f"--initial-branch={initial_head}", str(path)],
                   env=git_env(), capture_output=True, check=True)


def connectivity_problems(repo: Path) -> list[str]:
    """What ``git fsck --connectivity-only`` finds missing or broken (empty: every ref is whole)."""
    proc = subprocess.run(["git", "fsck", "--connectivity-only", "--no-dangling", "--no-progress"],
                          env=git_env(git_dir=repo), capture_output=True)
    lines = (proc.stdout + proc.stderr).decode("utf-8", "replace").splitlines()
    problems = [line for line in lines if line.strip() and not line.startswith(("Checking", "notice:"))]
    if proc.returncode != 0 and not problems:
        problems = [f"git fsck exited {proc.returncode}"]
    return problems
