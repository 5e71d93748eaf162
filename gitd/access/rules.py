"""Who may do what with a repository: one ordered AccessLevel and one function.

Every transport (Smart HTTP, SSH, LFS, the APIs) asks ``Access.level`` or
``Access.require`` and only compares the answer to the level it needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

from gitd.errors import Forbidden, NotFound, Unauthorized
from gitd.store import Account, Accounts, Repo
from gitd.store.gates import RepoGates


class AccessLevel(IntEnum):
    NONE = 0
    READ = 1
    WRITE = 2
    ADMIN = 3

    @classmethod
    def parse(cls, name: str) -> AccessLevel:
        return cls[name.upper()]


ROLE_LEVEL = {"read": AccessLevel.READ, "write": AccessLevel.WRITE, "admin": AccessLevel.ADMIN}


class Parent(NamedTuple):
    """A credential that signed tokens are minted from: ("tok", API token id, the first 16 hex
    digits of its hash) or ("key", SSH key id, when it was registered). Row ids can be used
    again after a delete; the third part tells a new row from the one a token was bound to."""

    kind: str
    id: int
    version: str


@dataclass(frozen=True)
class Principal:
    """The caller of a request, as established by a transport.

    ``cap`` limits what the credential may do whatever the account could (a read
    token, an LFS download token); ``repo_id`` pins a credential to one repository.
    """

    account: Account | None
    cap: AccessLevel = AccessLevel.ADMIN
    repo_id: int | None = None
    method: str = "anonymous"  # anonymous | token | signed | ssh | session | daemon
    token_id: int | None = None  # the API token it came with (method "token")
    # The credential behind it, which signed tokens minted for it are bound to: its API
    # token or SSH key (for method "signed": the one its signed token was minted from).
    parent: Parent | None = None
    expires: int | None = None  # method "signed": when its token expires (Unix time)

    @property
    def is_anonymous(self) -> bool:
        return self.account is None

    @property
    def name(self) -> str | None:
        return self.account.name if self.account else None


ANONYMOUS = Principal(account=None)
# A token the daemon minted for a process it started (Authenticator.sign_daemon): no account,
# always pinned to one repository, which it may use up to its ``cap`` whatever its visibility.
DAEMON = "daemon"


@dataclass(frozen=True)
class Readable:
    """Which repositories a principal may read, as a listing asks it of the database:
    every repository (``everything``), or the public ones (``public``) and every one owned
    by an account in ``owners``; ``repo_id`` pins it to one repository. It says exactly
    what ``Access.level(principal, repo) >= READ`` says (tests/unit/access check both)."""

    everything: bool = False
    public: bool = False
    owners: frozenset[int] = frozenset()
    repo_id: int | None = None

    @property
    def nothing(self) -> bool:
        return not self.everything and not self.public and not self.owners


class Access:
    def __init__(self, accounts: Accounts, *, anonymous_read: bool = True, gates: RepoGates | None = None):
        self.accounts = accounts
        self.anonymous_read = anonymous_read
        self.gates = gates

    def level(self, principal: Principal, repo: Repo, *, gate: bool = True) -> AccessLevel:
        """The one function that decides what ``principal`` may do with ``repo``.

        A gated repository (gitd.store.gates) is NONE to the readers it has not let in, on every
        transport; ``gate=False`` asks what they may do with what the Hub shows of it anyway
        (its info, listings, discussions)."""
        if principal.repo_id is not None and principal.repo_id != repo.id:
            return AccessLevel.NONE
        if principal.method == DAEMON and principal.repo_id is not None:
            return principal.cap  # the daemon's own process: neither visibility nor a gate holds it back
        level = min(self._account_level(principal.account, repo), principal.cap)
        if gate and level == AccessLevel.READ and self.gated_out(principal, repo):
            return AccessLevel.NONE
        return level

    def gated_out(self, principal: Principal, repo: Repo) -> bool:
        """Whether ``repo``'s gate holds ``principal`` back: a public gated repository and a caller
        who neither writes to it nor had an access request accepted."""
        if self.gates is None or repo.private:
            return False
        if principal.method == DAEMON and principal.repo_id == repo.id:
            return False  # the daemon's own process (a fine-tune job reading its base model)
        account = principal.account
        if account is not None and self._account_level(account, repo) >= AccessLevel.WRITE:
            return False
        if self.gates.mode(repo.id) is None:
            return False
        return account is None or not self.gates.granted(repo.id, account.id)

    def _account_level(self, account: Account | None, repo: Repo) -> AccessLevel:
        public = AccessLevel.NONE if repo.private else AccessLevel.READ
        if account is None:
            return public if self.anonymous_read else AccessLevel.NONE
        if account.is_admin or account.id == repo.owner_id:
            return AccessLevel.ADMIN
        role = self.accounts.role_in(repo.owner_id, account.id)
        return max(public, ROLE_LEVEL.get(role or "", AccessLevel.NONE))

    def readable(self, principal: Principal) -> Readable:
        """The repositories ``principal`` may read, for listings that filter in SQL."""
        if principal.cap < AccessLevel.READ:
            return Readable(repo_id=principal.repo_id)
        account = principal.account
        if principal.method == DAEMON and principal.repo_id is not None:
            return Readable(everything=True, repo_id=principal.repo_id)
        if account is None:
            return Readable(public=self.anonymous_read, repo_id=principal.repo_id)
        if account.is_admin:
            return Readable(everything=True, repo_id=principal.repo_id)
        owners = {account.id} | {org.id for org, role in self.accounts.orgs_of(account) if role in ROLE_LEVEL}
        return Readable(public=True, owners=frozenset(owners), repo_id=principal.repo_id)

    def namespace_level(self, principal: Principal, owner: Account) -> AccessLevel:
        """What the caller may do in a namespace (a user or an organisation): creating or
        moving repositories into it needs WRITE. Credentials pinned to one repository get NONE."""
        account = principal.account
        if account is None or principal.repo_id is not None:
            return AccessLevel.NONE
        if account.is_admin or account.id == owner.id:
            level = AccessLevel.ADMIN
        elif owner.kind == "org":
            level = ROLE_LEVEL.get(self.accounts.role_in(owner.id, account.id) or "", AccessLevel.NONE)
        else:
            level = AccessLevel.NONE
        return min(level, principal.cap)

    def require_namespace(self, principal: Principal, owner: Account | None, needed: AccessLevel) -> AccessLevel:
        """Like ``require`` for a namespace: 401 anonymous, 403 signed in without the right."""
        level = self.namespace_level(principal, owner) if owner is not None else AccessLevel.NONE
        if level >= needed:
            return level
        if principal.is_anonymous:
            raise Unauthorized("authentication required")
        raise Forbidden("you cannot create or manage repositories in this namespace")

    def require_lfs_upload(self, principal: Principal, repo: Repo | None, *, for_pull_request: bool) -> AccessLevel:
        """Uploading Git LFS objects to ``repo``: its writers; and, as on the Hub, the community
        of a public repository for a pull request, that is a signed-in reader with a credential
        that may write (not a read token) when ``for_pull_request`` says the upload is for a pull
        request the caller may open or add to (the evidence: gitd.hub.pr_uploads). Anything else
        answers as ``require(..., WRITE)`` does."""
        level = self.level(principal, repo) if repo is not None else AccessLevel.NONE
        if level >= AccessLevel.WRITE:
            return level
        if (for_pull_request and repo is not None and not repo.private and level >= AccessLevel.READ
                and principal.account is not None and principal.cap >= AccessLevel.WRITE):
            return level
        return self.require(principal, repo, AccessLevel.WRITE)

    def require(self, principal: Principal, repo: Repo | None, needed: AccessLevel, *,
                gate: bool = True) -> AccessLevel:
        """Return the caller's level, or raise the error a client should see.

        A repository the caller cannot read is indistinguishable from a missing one:
        401 for anonymous callers (so clients ask for credentials), 404 otherwise.
        """
        level = self.level(principal, repo, gate=gate) if repo is not None else AccessLevel.NONE
        if level >= needed:
            return level
        if principal.is_anonymous:
            raise Unauthorized("authentication required", code="RepoNotFound" if level == 0 else "Unauthorized")
        if level == AccessLevel.NONE:
            raise NotFound("repository not found", code="RepoNotFound")
        raise Forbidden(
            "you do not have write access to this repository"
            if needed == AccessLevel.WRITE
            else "you do not have admin access to this repository"
        )
