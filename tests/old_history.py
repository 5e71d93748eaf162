"""A repository whose history holds objects as old git versions and import tools wrote
them, built byte by byte (``git hash-object --literally``): what long-lived projects
such as redis carry, and what today's ``git fsck --strict`` flags."""

from __future__ import annotations

from pathlib import Path

from tests.support import Git

# What each built object is there for: the fsck message id it raises.
ODDITIES = ("zeroPaddedFilemode", "badTimezone", "missingSpaceBeforeDate", "zeroPaddedDate")


def _write(git: Git, repo: Path, kind: str, data: bytes) -> str:
    return git("hash-object", "-t", kind, "--literally", "-w", "--stdin", cwd=repo, input=data).stdout.decode().strip()


def build_old_history(git: Git, repo: Path) -> dict[str, str]:
    """A non-bare repository at ``repo`` with branch main and tag v0 over such objects;
    returns the names of the refs and objects made."""
    git("init", "-q", "-b", "main", str(repo))
    blob = _write(git, repo, "blob", b"hello from 2005\n")
    sub = _write(git, repo, "tree", b"100644 inner.txt\0" + bytes.fromhex(blob))
    # "040000": a directory's mode with its leading zero.
    top = _write(git, repo, "tree", b"040000 sub\0" + bytes.fromhex(sub) + b"100644 top.txt\0" + bytes.fromhex(blob))
    first = _write(git, repo, "commit", (
        f"tree {top}\n"
        "author Old Tool <old@example.com> 1112911993 +051800\n"      # a timezone of six digits
        "committer Old Tool <old@example.com> 1112911993 +051800\n"
        "\nimported by an old tool\n").encode())
    second = _write(git, repo, "commit", (
        f"tree {top}\nparent {first}\n"
        "author Glued <glued@example.com>1112912000 +0000\n"            # no space before the date
        "committer Glued <glued@example.com>1112912000 +0000\n"
        "\nsecond\n").encode())
    third = _write(git, repo, "commit", (
        f"tree {sub}\nparent {second}\n"
        "author Padded <padded@example.com> 01112913000 +0000\n"        # a zero-padded date
        "committer Padded <padded@example.com> 01112913000 +0000\n"
        "\nthird\n").encode())
    git("update-ref", "refs/heads/main", third, cwd=repo)
    git("update-ref", "refs/tags/v0", first, cwd=repo)
    return {"blob": blob, "sub": sub, "top": top, "first": first, "second": second, "third": third}


def refs_and_objects(git: Git, repo: Path) -> tuple[str, list[str]]:
    """``git for-each-ref`` (branches and tags) and every reachable object, sorted: what a
    clone must reproduce exactly."""
    refs = git.out("for-each-ref", "--format=%(objectname) %(refname)", "refs/heads", "refs/tags", cwd=repo)
    objects = sorted(git.out("rev-list", "--all", "--objects", cwd=repo).splitlines())
    return refs, objects
