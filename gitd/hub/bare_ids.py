"""Repository ids without a namespace (``gpt2``, ``squad``), as the Hub's old canonical models
had. gitd keeps every repository under a namespace, so such an id names nothing: Hub-shaped
paths that hold one answer 404 with ``X-Error-Code: RepoNotFound`` (never a bare 404 or a
405), so ``repo_exists``, ``file_exists`` and ``revision_exists`` return False instead of
raising. The HTTP app asks ``bare_repo_miss`` about each request no route took."""

from __future__ import annotations

import re

from gitd.errors import GitdError, NotFound

# What follows a repository id in the Hub's paths.
_ACTIONS = (
    "revision", "tree", "treesize", "paths-info", "preupload", "commit", "commits", "refs", "branch", "tag",
    "discussions", "settings", "resolve", "xet-read-token", "xet-write-token", "super-squash", "lfs-files",
    "compare", "parquet", "croissant", "auth-check", "ask-access", "user-access-request", "metadata", "lineage",
    "likers",
)
_API = re.compile(r"^/api/(?:models|datasets|spaces|codes)/[^/]+(?:/(?:" + "|".join(map(re.escape, _ACTIONS))
                  + r")(?:/.*)?)?/?$", re.S)
_FILES = re.compile(r"^/(?:(?:datasets|spaces|codes)/)?[^/]+/resolve/[^/]+(?:/.*)?$", re.S)


def bare_repo_miss(path: str) -> GitdError | None:
    """RepoNotFound for a path no route took that names a repository without a namespace."""
    if _API.match(path) or _FILES.match(path):
        return NotFound("repository not found: repository ids have a namespace here (namespace/name)",
                        code="RepoNotFound")
    return None
