"""Names of accounts and repositories, and the repository types with their URL prefixes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gitd.errors import BadRequest

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")

REPO_TYPES = ("model", "dataset", "code", "space")
# The SDKs a space's README card may name (as on the Hub).
SPACE_SDKS = ("gradio", "streamlit", "docker", "static")

# URL prefix of each type, as on the Hugging Face Hub: models have none.
TYPE_PREFIX = {"model": "", "dataset": "datasets", "space": "spaces", "code": "codes"}
PREFIX_TYPE = {prefix: t for t, prefix in TYPE_PREFIX.items() if prefix}

# Words that begin a route, a type prefix or a well-known path: no account may use
# them, or "/datasets/x/y" and "/api/..." would become ambiguous.
RESERVED = frozenset(
    {
        "api", "datasets", "spaces", "codes", "models", "kernels", "collections",
        "healthz", "metrics", "login", "logout", "join", "settings", "admin", "new",
        "organizations", "orgs", "users", "docs", "static", "assets", "info",
        "git", "lfs", "hf", "csg", "ms", "internal", "resolve", "blob", "tree",
        "raw", "search", "explore", "pricing", "spaces-dashboard", "well-known",
    }
)


def is_valid_name(name: str) -> bool:
    return (
        bool(NAME_RE.fullmatch(name))
        and ".." not in name
        and not name.lower().endswith(".git")
    )


def check_name(name: str, what: str = "name") -> str:
    if not isinstance(name, str) or not is_valid_name(name):
        raise BadRequest(
            f"invalid {what} {name!r}: use 1-96 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit, without '..' or a trailing '.git'"
        )
    return name


def check_account_name(name: str) -> str:
    check_name(name, "account name")
    if name.lower() in RESERVED:
        raise BadRequest(f"{name!r} is a reserved name")
    return name


def check_repo_type(repo_type: str) -> str:
    if repo_type not in REPO_TYPES:
        raise BadRequest(f"unknown repository type {repo_type!r}; expected one of {', '.join(REPO_TYPES)}")
    return repo_type


def split_full_name(full_name: str) -> tuple[str, str]:
    """'ns/name' -> ('ns', 'name'), validating both parts."""
    parts = full_name.split("/")
    if len(parts) != 2:
        raise BadRequest(f"expected NAMESPACE/NAME, got {full_name!r}")
    ns, name = parts
    return check_name(ns, "namespace"), check_name(name, "repository name")


def repo_url_path(repo_type: str, namespace: str, name: str) -> str:
    """The path of a repository's web URL, e.g. 'datasets/alice/corpus'."""
    prefix = TYPE_PREFIX[repo_type]
    return f"{prefix}/{namespace}/{name}" if prefix else f"{namespace}/{name}"


@dataclass(frozen=True)
class RepoName:
    """A repository as a URL or an SSH command names it (type, namespace, name), not yet
    looked up. Both transports parse their paths into this one type."""

    type: str
    namespace: str
    name: str
    git_suffix: bool = field(default=False, compare=False)  # named with a trailing ".git"

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"

    def __str__(self) -> str:
        return repo_url_path(self.type, self.namespace, self.name)
