"""Ref names from clients: revisions to look up and branch or tag names to create.

The rules are git's ``check-ref-format`` (with ``--branch`` for branches), checked here
in Python so that no request reaches git or libgit2 with a name they would choke on, and
so that no branch is created that git itself would refuse (``refs/heads/HEAD`` makes
``HEAD`` ambiguous for every client).
"""

from __future__ import annotations

import re

from gitd.errors import BadRequest

# Longest revision looked up (libgit2's limit on ref names), and longest component of a new
# ref name (file systems refuse longer file names).
MAX_REVISION = 1024
MAX_COMPONENT = 255

_FORBIDDEN = set(" ~^:?*[\\\x7f")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_revision(revision: str) -> str:
    """A revision to resolve (branch, tag, ``refs/...`` or sha): BadRequest when it is too long or
    holds characters no ref name may hold."""
    if not revision or len(revision) > MAX_REVISION:
        raise BadRequest(f"invalid revision: at most {MAX_REVISION} characters")
    if _CONTROL.search(revision):
        raise BadRequest("invalid revision: control characters")
    return revision


def check_ref_component_rules(name: str) -> bool:
    """git's ``check-ref-format`` rules for a ref name (without the ``refs/`` requirement)."""
    if not name or len(name) > MAX_REVISION or name == "@" or name.endswith((".", "/")) or name.startswith("/"):
        return False
    if ".." in name or "//" in name or "@{" in name or any(c in _FORBIDDEN or ord(c) < 32 for c in name):
        return False
    return all(part and len(part) <= MAX_COMPONENT and not part.startswith(".") and not part.endswith(".lock")
               for part in name.split("/"))


def check_branch_name(name: str, what: str = "branch") -> str:
    """A new branch (or tag) name, refused as ``git check-ref-format --branch`` refuses it, and ``HEAD``."""
    if not check_ref_component_rules(name) or name.startswith("-") or name == "HEAD" or name.startswith("refs/"):
        raise BadRequest(f"invalid {what} name {name[:100]!r}")
    return name
