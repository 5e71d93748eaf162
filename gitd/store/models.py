"""Rows as typed, immutable values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gitd.names import repo_url_path


@dataclass(frozen=True)
class Account:
    id: int
    name: str
    kind: str  # "user" | "org"
    email: str | None
    is_admin: bool
    created_at: str

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Account:
        return cls(
            id=row["id"], name=row["name"], kind=row["kind"], email=row["email"],
            is_admin=bool(row["is_admin"]), created_at=row["created_at"],
        )


@dataclass(frozen=True)
class Token:
    id: int
    account_id: int
    name: str
    scope: str  # "read" | "write"
    created_at: str
    last_used_at: str | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Token:
        return cls(
            id=row["id"], account_id=row["account_id"], name=row["name"], scope=row["scope"],
            created_at=row["created_at"], last_used_at=row["last_used_at"],
        )


@dataclass(frozen=True)
class SSHKey:
    id: int
    account_id: int
    fingerprint: str
    public_key: str
    title: str
    created_at: str

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> SSHKey:
        return cls(**{k: row[k] for k in ("id", "account_id", "fingerprint", "public_key", "title", "created_at")})


@dataclass(frozen=True)
class Repo:
    id: int
    owner_id: int
    namespace: str
    name: str
    type: str
    private: bool
    default_branch: str
    description: str
    created_at: str
    updated_at: str

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def url_path(self) -> str:
        """Path of the repo's web URL: 'alice/m', 'datasets/alice/d', ..."""
        return repo_url_path(self.type, self.namespace, self.name)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Repo:
        return cls(
            id=row["id"], owner_id=row["owner_id"], namespace=row["namespace"], name=row["name"],
            type=row["type"], private=bool(row["private"]), default_branch=row["default_branch"],
            description=row["description"], created_at=row["created_at"], updated_at=row["updated_at"],
        )
