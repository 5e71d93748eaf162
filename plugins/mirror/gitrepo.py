"""Reading a repository (or a mirror's staging area) with git: refs, objects present, and
the Git LFS pointers new commits bring. Every command streams; none holds a listing of
a big history in memory at once, and tips go on standard input (any number of refs)."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

from gitd import MAX_LFS_POINTER_SIZE, PluginContext, parse_lfs_pointer

ZERO = "0" * 40


class RepoReadError(Exception):
    pass


def _run(context: PluginContext, args: list[str], git_dir: Path, *, input: bytes | None = None,
         env: dict[str, str] | None = None) -> bytes:
    cmd = context.git_command(args, git_dir=git_dir, env=env)
    proc = subprocess.run(cmd.argv, env=cmd.env, input=input, capture_output=True)
    if proc.returncode != 0:
        raise RepoReadError(f"git {args[0]} failed: {proc.stderr.decode('utf-8', 'replace').strip()[-300:]}")
    return proc.stdout


def patterns(prefixes: Iterable[str]) -> list[str]:
    return [p.rstrip("/") or "refs" for p in prefixes]


def in_prefixes(ref: str, prefixes: Iterable[str]) -> bool:
    return any(ref.startswith(p if p.endswith("/") else p + "/") for p in prefixes)


def list_refs(context: PluginContext, git_dir: Path, prefixes: Iterable[str], *,
              env: dict[str, str] | None = None) -> dict[str, str]:
    """``{ref: object id}`` of the refs under ``prefixes`` (annotated tags as the tag object)."""
    prefixes = list(prefixes)
    out = _run(context, ["for-each-ref", "--format=%(objectname) %(refname)", *patterns(prefixes)], git_dir, env=env)
    refs = {}
    for line in out.decode("utf-8", "surrogateescape").splitlines():
        oid, _, ref = line.partition(" ")
        if in_prefixes(ref, prefixes):
            refs[ref] = oid
    return refs


def missing_objects(context: PluginContext, git_dir: Path, oids: Iterable[str], *,
                    env: dict[str, str] | None = None) -> set[str]:
    wanted = sorted(set(oids))
    if not wanted:
        return set()
    out = _run(context, ["cat-file", "--batch-check=%(objectname) %(objecttype)"], git_dir,
               input=("\n".join(wanted) + "\n").encode(), env=env)
    return {line.split()[0] for line in out.decode().splitlines() if line.endswith(" missing")}


def is_ancestor(context: PluginContext, git_dir: Path, old: str, new: str) -> bool:
    cmd = context.git_command(["merge-base", "--is-ancestor", old, new], git_dir=git_dir)
    proc = subprocess.run(cmd.argv, env=cmd.env, capture_output=True)
    if proc.returncode not in (0, 1):
        # a tag that is not a commit, say: not a fast-forward either
        return False
    return proc.returncode == 0


def new_lfs_pointers(context: PluginContext, git_dir: Path, tips: Iterable[str]) -> set[tuple[str, int]]:
    """(oid, size) of every Git LFS pointer in the objects reachable from ``tips`` and from
    none of the repository's refs: what a publish of ``tips`` would add."""
    return lfs_pointers(context, git_dir, tips, exclude=None)


def lfs_pointers(context: PluginContext, git_dir: Path, tips: Iterable[str], *,
                 exclude: Iterable[str] | None) -> set[tuple[str, int]]:
    """(oid, size) of the Git LFS pointers reachable from ``tips`` and not from ``exclude``
    (commits known to exist here; None: not from any ref of the repository)."""
    tips = sorted(set(tips) - {ZERO})
    if not tips:
        return set()
    limit = MAX_LFS_POINTER_SIZE + 1
    hidden = ["--not", "--all"] if exclude is None else []
    revs = tips + ([f"^{oid}" for oid in sorted(set(exclude) - {ZERO})] if exclude is not None else [])
    listing = context.git_command(["rev-list", "--objects", "--no-object-names", f"--filter=blob:limit={limit}",
                                   "--stdin", *hidden], git_dir=git_dir)
    check = context.git_command(["cat-file", "--batch-check=%(objecttype) %(objectsize) %(objectname)"],
                                git_dir=git_dir)
    candidates: list[str] = []
    with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as errors:
        stdin.write(("\n".join(revs) + "\n").encode())
        stdin.seek(0)
        lister = subprocess.Popen(listing.argv, env=listing.env, stdin=stdin, stdout=subprocess.PIPE, stderr=errors)
        checker = subprocess.Popen(check.argv, env=check.env, stdin=lister.stdout, stdout=subprocess.PIPE,
                                   stderr=errors)
        assert lister.stdout is not None and checker.stdout is not None
        lister.stdout.close()
        for line in checker.stdout:
            kind, size, oid = line.split()
            if kind == b"blob" and 0 < int(size) < limit:
                candidates.append(oid.decode())
        if checker.wait() != 0 or lister.wait() != 0:
            errors.seek(0)
            raise RepoReadError(f"listing new objects failed: {errors.read(2000).decode('utf-8', 'replace')}")
    return _read_pointers(context, git_dir, candidates)


def pack_lfs_pointers(context: PluginContext, git_dir: Path, indexes: Iterable[Path]) -> set[tuple[str, int]]:
    """(oid, size) of the Git LFS pointers among the objects of these packs (their ``.idx``
    files): for a first sync, whose clone brought every object the publish adds in one
    pack, this is what ``new_lfs_pointers`` finds, without walking the history."""
    limit = MAX_LFS_POINTER_SIZE + 1
    oids: list[str] = []
    for index in indexes:
        show = context.git_command(["show-index"], git_dir=git_dir)
        with open(index, "rb") as stdin:
            out = subprocess.run(show.argv, env=show.env, stdin=stdin, capture_output=True, check=True).stdout
        oids += [line.split()[1].decode() for line in out.splitlines() if line.strip()]
    if not oids:
        return set()
    check = context.git_command(["cat-file", "--batch-check=%(objecttype) %(objectsize) %(objectname)"],
                                git_dir=git_dir)
    out = subprocess.run(check.argv, env=check.env, input=("\n".join(oids) + "\n").encode(), capture_output=True,
                         check=True).stdout
    candidates = []
    for line in out.splitlines():
        kind, size, oid = line.split()
        if kind == b"blob" and 0 < int(size) < limit:
            candidates.append(oid.decode())
    return _read_pointers(context, git_dir, candidates)


def _read_pointers(context: PluginContext, git_dir: Path, candidates: list[str]) -> set[tuple[str, int]]:
    if not candidates:
        return set()
    found: set[tuple[str, int]] = set()
    reader = context.git_command(["cat-file", "--batch"], git_dir=git_dir)
    with tempfile.TemporaryFile() as stdin:
        stdin.write(("\n".join(candidates) + "\n").encode())
        stdin.seek(0)
        proc = subprocess.Popen(reader.argv, env=reader.env, stdin=stdin, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        assert proc.stdout is not None
        while header := proc.stdout.readline():
            parts = header.split()
            size = int(parts[2])
            data = proc.stdout.read(size + 1)[:size]
            pointer = parse_lfs_pointer(data)
            if pointer is not None:
                found.add((pointer.oid, pointer.size))
        if proc.wait() != 0:
            raise RepoReadError("reading new objects failed")
    return found


def check_new_objects(context: PluginContext, git_dir: Path, tips: Iterable[str]) -> str | None:
    """git's object checks (as a push gets them) over what ``tips`` add to the repository:
    None when they pass, else git's first complaint. For objects written here rather than
    fetched (which ``fetch.fsckObjects`` checks): the new objects are listed, packed and
    indexed with ``index-pack --strict`` into a scratch object directory, then removed."""
    tips = sorted(set(tips) - {ZERO})
    if not tips:
        return None
    with tempfile.TemporaryDirectory(prefix="gitd-mirror-check-") as scratch, \
            tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as errors:
        (Path(scratch) / "pack").mkdir()
        stdin.write(("\n".join(tips) + "\n").encode())
        stdin.seek(0)
        env = {"GIT_OBJECT_DIRECTORY": scratch, "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(git_dir / "objects")}
        listing = context.git_command(["rev-list", "--objects", "--stdin", "--not", "--all"], git_dir=git_dir)
        packing = context.git_command(["pack-objects", "--stdout", "-q"], git_dir=git_dir)
        index = context.git_command(["index-pack", "--stdin", "--strict"], git_dir=git_dir, env=env)
        lister = subprocess.Popen(listing.argv, env=listing.env, stdin=stdin, stdout=subprocess.PIPE, stderr=errors)
        packer = subprocess.Popen(packing.argv, env=packing.env, stdin=lister.stdout, stdout=subprocess.PIPE,
                                  stderr=errors)
        indexer = subprocess.Popen(index.argv, env=index.env, stdin=packer.stdout, stdout=subprocess.DEVNULL,
                                   stderr=errors)
        assert lister.stdout is not None and packer.stdout is not None
        lister.stdout.close()
        packer.stdout.close()
        codes = [indexer.wait(), packer.wait(), lister.wait()]
        if not any(codes):
            return None
        errors.seek(0)
        text = errors.read(65536).decode("utf-8", "replace")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    complaints = [ln.removeprefix("error: ") for ln in lines if ln.startswith("error: ")]
    return (complaints or lines or ["git refused the objects"])[0][:300]
