"""Users, organisations, memberships, API tokens and SSH keys."""

from __future__ import annotations

import sqlite3

from gitd.errors import BadRequest, Conflict, NotFound
from gitd.store.db import StampedCache, Store, utcnow
from gitd.store.models import Account, SSHKey, Token

ORG_ROLES = ("read", "write", "admin")
TOKEN_SCOPES = ("read", "write")


class Accounts:
    def __init__(self, store: Store):
        self.store = store
        self._roles = StampedCache(store)  # role_in answers: asked for every request to an org's repository

    # -- accounts -------------------------------------------------------------------------
    def _create(self, name: str, kind: str, email: str | None, is_admin: bool) -> Account:
        try:
            with self.store.transaction() as db:
                db["accounts"].insert(
                    {"name": name, "kind": kind, "email": email, "is_admin": int(is_admin), "created_at": utcnow()}
                )
                row_id = db.execute("SELECT last_insert_rowid()").fetchone()[0]
        except sqlite3.IntegrityError:
            raise Conflict(f"the name {name!r} is already taken")
        return self.by_id(row_id)

    def create_user(self, name: str, *, email: str | None = None, is_admin: bool = False) -> Account:
        return self._create(name, "user", email, is_admin)

    def create_org(self, name: str, owner: Account) -> Account:
        if owner.kind != "user":
            raise BadRequest(f"{owner.name!r} is an organisation, not a user")
        with self.store.transaction():
            org = self._create(name, "org", None, False)
            self.set_member(org, owner, "admin")
        return org

    def by_id(self, account_id: int) -> Account:
        # Plain SQL: sqlite-utils' rows_where introspects the table on every call, and this
        # runs on every authenticated request.
        cur = self.store.db.execute("SELECT * FROM accounts WHERE id = ?", [account_id])
        row = cur.fetchone()
        if row is None:
            raise NotFound(f"no account with id {account_id}")
        return Account.from_row(dict(zip([c[0] for c in cur.description], row, strict=True)))

    def find(self, name: str) -> Account | None:
        rows = list(self.store.db["accounts"].rows_where("name = ? COLLATE NOCASE", [name]))
        return Account.from_row(rows[0]) if rows else None

    def get(self, name: str, kind: str | None = None) -> Account:
        account = self.find(name)
        if account is None or (kind is not None and account.kind != kind):
            raise NotFound(f"no {kind or 'account'} named {name!r}")
        return account

    def list(self, kind: str | None = None) -> list[Account]:
        where, args = ("kind = ?", [kind]) if kind else (None, [])
        return [Account.from_row(r) for r in self.store.db["accounts"].rows_where(where, args, order_by="name")]

    def set_admin(self, account: Account, is_admin: bool) -> None:
        self.store.db["accounts"].update(account.id, {"is_admin": int(is_admin)})

    # -- organisation membership ----------------------------------------------------------
    def set_member(self, org: Account, user: Account, role: str) -> None:
        if org.kind != "org":
            raise BadRequest(f"{org.name!r} is not an organisation")
        if user.kind != "user":
            raise BadRequest(f"{user.name!r} is not a user")
        if role not in ORG_ROLES:
            raise BadRequest(f"unknown role {role!r}; expected one of {', '.join(ORG_ROLES)}")
        self.store.db.execute(
            "INSERT INTO org_members (org_id, user_id, role) VALUES (?, ?, ?) "
            "ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role",
            [org.id, user.id, role],
        )

    def remove_member(self, org: Account, user: Account) -> None:
        cur = self.store.db.execute("DELETE FROM org_members WHERE org_id = ? AND user_id = ?", [org.id, user.id])
        if cur.rowcount == 0:
            raise NotFound(f"{user.name!r} is not a member of {org.name!r}")

    def role_in(self, org_id: int, user_id: int) -> str | None:
        known = self._roles.current()
        key = (org_id, user_id)
        if key in known:
            return known[key]
        row = self.store.db.execute(
            "SELECT role FROM org_members WHERE org_id = ? AND user_id = ?", [org_id, user_id]
        ).fetchone()
        role = row[0] if row else None
        self._roles.remember(known, key, role)
        return role

    def members(self, org: Account) -> list[tuple[Account, str]]:
        rows = self.store.db.query(
            "SELECT a.*, m.role AS role FROM org_members m JOIN accounts a ON a.id = m.user_id "
            "WHERE m.org_id = ? ORDER BY a.name",
            [org.id],
        )
        return [(Account.from_row(row), row["role"]) for row in rows]

    def orgs_of(self, user: Account) -> list[tuple[Account, str]]:
        rows = self.store.db.execute(
            "SELECT m.org_id, m.role FROM org_members m JOIN accounts a ON a.id = m.org_id "
            "WHERE m.user_id = ? ORDER BY a.name",
            [user.id],
        ).fetchall()
        return [(self.by_id(org_id), role) for org_id, role in rows]

    # -- tokens -----------------------------------------------------------------------------
    def add_token(self, account: Account, name: str, token_hash: str, scope: str) -> Token:
        if scope not in TOKEN_SCOPES:
            raise BadRequest(f"unknown scope {scope!r}; expected read or write")
        try:
            self.store.db["tokens"].insert(
                {"account_id": account.id, "name": name, "token_hash": token_hash, "scope": scope,
                 "created_at": utcnow(), "last_used_at": None}
            )
        except sqlite3.IntegrityError:
            raise Conflict(f"{account.name!r} already has a token named {name!r}")
        return self.tokens(account, name=name)[0]

    def tokens(self, account: Account, *, name: str | None = None) -> list[Token]:
        where, args = "account_id = ?", [account.id]
        if name is not None:
            where, args = where + " AND name = ?", [*args, name]
        return [Token.from_row(r) for r in self.store.db["tokens"].rows_where(where, args, order_by="id")]

    def token_by_hash(self, token_hash: str) -> tuple[Token, Account] | None:
        # Requests do not come here each time: Authenticator caches the answer per header.
        cur = self.store.db.execute("SELECT * FROM tokens WHERE token_hash = ?", [token_hash])
        row = cur.fetchone()
        found = None
        if row is not None:
            token = Token.from_row(dict(zip([c[0] for c in cur.description], row, strict=True)))
            found = (token, self.by_id(token.account_id))
        return found

    def token_version(self, token_id: int, account_id: int) -> str | None:
        """The first 16 hex digits of API token ``token_id``'s hash, if it still exists and
        belongs to ``account_id`` (ids of revoked tokens are given out again; hashes never)."""
        row = self.store.db.execute("SELECT substr(token_hash, 1, 16) FROM tokens WHERE id = ? AND account_id = ?",
                                    [token_id, account_id]).fetchone()
        return row[0] if row else None

    def touch_token_id(self, token_id: int) -> None:
        self.store.db.execute("UPDATE tokens SET last_used_at = ? WHERE id = ?", [utcnow(), token_id])

    def revoke_token(self, account: Account, name: str) -> None:
        cur = self.store.db.execute("DELETE FROM tokens WHERE account_id = ? AND name = ?", [account.id, name])
        if cur.rowcount == 0:
            raise NotFound(f"{account.name!r} has no token named {name!r}")

    # -- ssh keys ---------------------------------------------------------------------------
    def add_ssh_key(self, account: Account, fingerprint: str, public_key: str, title: str) -> SSHKey:
        try:
            self.store.db["ssh_keys"].insert(
                {"account_id": account.id, "fingerprint": fingerprint, "public_key": public_key,
                 "title": title, "created_at": utcnow()}
            )
        except sqlite3.IntegrityError:
            raise Conflict("this key is already registered (a key can belong to one user only)")
        key = self.ssh_key_by_fingerprint(fingerprint)
        assert key is not None
        return key

    def ssh_keys(self, account: Account) -> list[SSHKey]:
        return [SSHKey.from_row(r) for r in self.store.db["ssh_keys"].rows_where("account_id = ?", [account.id],
                                                                                order_by="id")]

    def ssh_key_by_fingerprint(self, fingerprint: str) -> SSHKey | None:
        rows = list(self.store.db["ssh_keys"].rows_where("fingerprint = ?", [fingerprint]))
        return SSHKey.from_row(rows[0]) if rows else None

    def ssh_key_version(self, key_id: int, account_id: int) -> str | None:
        """When SSH key ``key_id`` was registered, if it still is, to ``account_id`` (ids of
        removed keys are given out again; a key registered again is a new registration)."""
        row = self.store.db.execute("SELECT created_at FROM ssh_keys WHERE id = ? AND account_id = ?",
                                    [key_id, account_id]).fetchone()
        return row[0] if row else None

    def remove_ssh_key(self, account: Account, fingerprint: str) -> None:
        cur = self.store.db.execute(
            "DELETE FROM ssh_keys WHERE account_id = ? AND fingerprint = ?", [account.id, fingerprint]
        )
        if cur.rowcount == 0:
            raise NotFound(f"{account.name!r} has no key {fingerprint}")
