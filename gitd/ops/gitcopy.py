"""Copying repositories object-consistently, for backups and restores.

``copy(src, dst)`` gives the bare repository ``dst`` every ref of ``src``, each at the value
it had at one moment, with every object it reaches, while pushes land in ``src`` and ``git
gc`` repacks it:

1. the refs of ``src`` are read first;
2. then its packs and loose objects are copied as files (packs are named by their content,
   so those ``dst`` has already are skipped: the copy is incremental), a pack's index last,
   so that a pack is only ever seen whole;
3. ``dst``'s refs are set to what step 1 read (objects that arrived after it are just extra);
4. ``git fsck --connectivity-only`` checks that every ref reaches whole objects. A gc that
   deleted a pack between steps 1 and 2 fails this check; then ``dst``'s refs are dropped
   (a fetch would offer their commits as "have"s and be sent nothing below them) and
   ``git fetch`` (``mirror``) brings whole history, consistent by construction (refs read
   first, the objects they reach sent and checked before any ref moves) but at the cost of
   a pack of the whole history built and indexed.

Copying files skips what makes a clone slow (building and indexing a pack: for redis,
seconds of CPU), so a first backup runs at the speed of the disk.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
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


_LOOSE_DIR = re.compile(r"^[0-9a-f]{2}$")


def copy(src: Path, dst: Path) -> tuple[int, str]:
    """Make the existing bare repository ``dst`` hold ``src``'s refs and the objects they
    reach (see the module's docstring); returns (refs in ``dst``, "files" or "fetch")."""
    snapshot = refs(src)
    target = head_target(src)
    kept = _copy_objects(src, dst)
    try:
        _set_refs(dst, snapshot)
    except CopyFailed:  # a ref names an object the copy lacks (a pack deleted meanwhile)
        return mirror(src, dst), "fetch"
    for pack in (dst / "objects" / "pack").glob("pack-*.idx"):
        if pack.stem not in kept:  # a pack src no longer has (gc folded it into one it has)
            for suffix in (".idx", ".pack", ".rev", ".bitmap"):
                pack.with_suffix(suffix).unlink(missing_ok=True)
    if target is not None and head_target(dst) != target:
        set_head(dst, target)
    if snapshot and connectivity_problems(dst):
        # The refs just set name commits whose history is not all here. A fetch would offer
        # them as "have"s and be sent nothing below them, so the holes would stay: drop
        # every ref first, and the fetch brings whole history.
        _set_refs(dst, {})
        return mirror(src, dst), "fetch"
    _git(dst, "prune-packed")
    return len(snapshot), "files"


def _copy_file(source: Path, target: Path) -> bool:
    """``source`` to ``target`` through a temporary name; False if ``source`` went away."""
    tmp = target.with_name(f".{target.name}.copy-tmp")
    try:
        shutil.copyfile(source, tmp)
    except FileNotFoundError:
        tmp.unlink(missing_ok=True)
        return False
    os.replace(tmp, target)
    return True


def _copy_objects(src: Path, dst: Path) -> set[str]:
    """Copy the packs and loose objects ``dst`` lacks; returns the names (stems) of ``src``'s packs."""
    packs, target = src / "objects" / "pack", dst / "objects" / "pack"
    target.mkdir(parents=True, exist_ok=True)
    names = set()
    with contextlib.suppress(FileNotFoundError):
        names = {p.stem for p in packs.glob("pack-*.idx")}
    for stem in sorted(names):
        if (target / f"{stem}.idx").exists():
            continue
        if not _copy_file(packs / f"{stem}.pack", target / f"{stem}.pack"):
            continue
        for suffix in (".rev", ".bitmap"):
            if (packs / f"{stem}{suffix}").exists():
                _copy_file(packs / f"{stem}{suffix}", target / f"{stem}{suffix}")
        if not _copy_file(packs / f"{stem}.idx", target / f"{stem}.idx"):  # the index last: a pack is whole
            (target / f"{stem}.pack").unlink(missing_ok=True)
    objects = src / "objects"
    for folder in sorted(objects.iterdir()):
        if not _LOOSE_DIR.match(folder.name):
            continue
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(folder):
                into = dst / "objects" / folder.name / entry.name
                if not into.exists():
                    into.parent.mkdir(exist_ok=True)
                    _copy_file(Path(entry.path), into)
    return names


def _set_refs(dst: Path, wanted: dict[str, str]) -> None:
    """Set ``dst``'s refs to ``wanted`` (and drop the others) in one transaction; CopyFailed
    if an object is missing (git refuses refs to objects it does not have)."""
    current = refs(dst)
    lines = [f"update {name} {oid}" for name, oid in sorted(wanted.items()) if current.get(name) != oid]
    lines += [f"delete {name}" for name in sorted(current) if name not in wanted]
    if not lines:
        return
    proc = subprocess.run(["git", "update-ref", "--stdin"], input=("\n".join(lines) + "\n").encode(),
                          env=git_env(git_dir=dst), capture_output=True)
    if proc.returncode != 0:
        raise CopyFailed(proc.stderr.decode("utf-8", "replace").strip()[-500:])


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
