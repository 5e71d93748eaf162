"""Credentials: API tokens (stored hashed), short-lived signed tokens, HTTP headers.

A signed token (``gitds.<claims>.<hmac>``) is always minted for a caller: its claims name
the account (``sub``) and the credential the caller came with, its parent (``par``: the
API token, or the SSH key; see ``Parent``). Every use checks that the parent still exists
and still belongs to that account, so revoking a token, removing an SSH key or deleting
the account ends every signed token minted from it at once. A signed token minted for a
caller who came with a signed token inherits its parent and never outlives it (``exp``
is capped at the caller's own): signed tokens cannot be renewed into a chain.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable

from gitd.access.rules import ANONYMOUS, DAEMON, AccessLevel, Parent, Principal
from gitd.clock import SYSTEM_CLOCK, Clock
from gitd.errors import NotFound, Unauthorized
from gitd.store import Account, Accounts, SSHKey
from gitd.store.db import StampedCache

TOKEN_PREFIX = "gitd_"
SIGNED_PREFIX = "gitds."
_TOUCH_EVERY = 60.0


def hash_token(token: str) -> str:
    # API tokens are 240-bit random strings, so a plain SHA-256 is a safe one-way store.
    return hashlib.sha256(token.encode()).hexdigest()


def token_parent(token_id: int, token_hash: str) -> Parent:
    return Parent("tok", token_id, token_hash[:16])


def ssh_key_parent(key: SSHKey) -> Parent:
    return Parent("key", key.id, key.created_at)


def _parent(value: object) -> Parent | None:
    """A signed token's "par" claim, if well-formed."""
    if not (isinstance(value, list) and len(value) == 3):
        return None
    kind, parent_id, version = value
    if kind not in ("tok", "key") or not isinstance(parent_id, int) or not isinstance(version, str):
        return None
    return Parent(kind, parent_id, version)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Authenticator:
    """Turns credentials into a Principal. Holds the internal signing key."""

    def __init__(self, accounts: Accounts, secret_key: bytes, *, clock: Clock = SYSTEM_CLOCK,
                 record_use: Callable[[int], None] | None = None):
        self.accounts = accounts
        self.clock = clock
        # Notes a token's use (the daemon: gitd.store.lastused.LastUsed, which never blocks).
        self.record_use = record_use or accounts.touch_token_id
        self._key = secret_key
        self._touched: dict[int, float] = {}
        # Authorization header -> Principal for API tokens: the same few headers come on every
        # request, and a revoked token or a changed account drops the answers (StampedCache).
        self._by_header = StampedCache(accounts.store)
        # (account id, Parent) -> whether a signed token's parent is still there.
        self._parents = StampedCache(accounts.store)

    # -- API tokens -------------------------------------------------------------------------
    def create_token(self, account: Account, name: str, scope: str = "write") -> str:
        token = TOKEN_PREFIX + secrets.token_urlsafe(30)
        self.accounts.add_token(account, name, hash_token(token), scope)
        return token

    # -- signed tokens ------------------------------------------------------------------------
    def sign(self, payload: dict, ttl: float) -> str:
        """A self-contained token: JSON claims plus an HMAC, valid for ``ttl`` seconds."""
        claims = dict(payload, exp=int(self.clock.time() + ttl))
        body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        mac = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return f"{SIGNED_PREFIX}{body}.{_b64(mac)}"

    def verify_signed(self, token: str) -> dict | None:
        if not token.startswith(SIGNED_PREFIX):
            return None
        try:
            body, mac = token[len(SIGNED_PREFIX):].split(".")
            expected = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(expected, _unb64(mac)):
                return None
            claims = json.loads(_unb64(body))
        except (ValueError, binascii.Error, json.JSONDecodeError):
            return None
        if not isinstance(claims, dict) or claims.get("exp", 0) < self.clock.time():
            return None
        return claims

    def lifetime(self, principal: Principal, ttl: float) -> int:
        """Seconds a credential minted for ``principal`` may live: ``ttl``, cut to what is left
        of the principal's own signed token if it came with one."""
        if principal.expires is None:
            return int(ttl)
        return max(0, min(int(ttl), principal.expires - int(self.clock.time())))

    def sign_for(self, principal: Principal, payload: dict, ttl: float) -> str:
        """A signed token for ``principal``'s use, bound to its parent credential (see the
        module's docstring) and living at most ``lifetime(principal, ttl)`` seconds."""
        claims = dict(payload, sub=principal.account.id if principal.account else None)
        if principal.method == DAEMON:  # a daemon process's token: what it mints stays pinned and expires with it
            if payload.get("rid") != principal.repo_id:
                raise ValueError("a daemon token acts on its own repository only")
            claims["d"] = 1
        if principal.parent is not None:
            claims["par"] = list(principal.parent)
        return self.sign(claims, self.lifetime(principal, ttl))

    def sign_access(self, principal: Principal, repo_id: int, level: AccessLevel, ttl: float) -> str:
        """A token that lets its bearer act as ``principal`` on one repository, up to ``level``."""
        return self.sign_for(principal, {"k": "access", "rid": repo_id, "lvl": int(min(level, principal.cap))}, ttl)

    def sign_daemon(self, repo_id: int, level: AccessLevel, ttl: float) -> str:
        """A token for a process the daemon itself starts (a plugin's training job or model
        server): it acts on one repository, up to ``level``, whatever the repository's
        visibility, for ``ttl`` seconds. No account stands behind it (``DAEMON``), so nothing
        but its expiry ends it: keep ``ttl`` to the process's expected life."""
        return self.sign({"k": "access", "d": 1, "rid": int(repo_id), "lvl": int(level)}, ttl)

    # -- resolving credentials --------------------------------------------------------------
    def principal_for_claims(self, claims: dict) -> Principal | None:
        """The caller a verified signed token speaks for; None once its parent is gone (the
        API token revoked, the SSH key removed, the account deleted)."""
        sub = claims.get("sub")
        try:
            level, repo_id, exp = AccessLevel(claims["lvl"]), claims["rid"], int(claims["exp"])
        except (KeyError, TypeError, ValueError):
            return None
        if claims.get("d") == 1 and sub is None and isinstance(repo_id, int):
            return Principal(account=None, cap=min(level, AccessLevel.WRITE), repo_id=repo_id, method=DAEMON,
                             expires=exp)
        if sub is None:
            return Principal(account=None, cap=level, repo_id=repo_id, method="signed", expires=exp)
        parent = _parent(claims.get("par"))
        if parent is None or not isinstance(sub, int) or not self._parent_alive(sub, parent):
            return None  # every signed-in caller has a parent credential, and this one is gone
        try:
            account = self.accounts.by_id(sub)
        except NotFound:
            return None
        return Principal(account=account, cap=level, repo_id=repo_id, method="signed", parent=parent, expires=exp)

    def _parent_alive(self, account_id: int, parent: Parent) -> bool:
        known = self._parents.current()
        cache_key = (account_id, parent)
        alive = known.get(cache_key)
        if alive is None:
            version = (self.accounts.token_version(parent.id, account_id) if parent.kind == "tok"
                       else self.accounts.ssh_key_version(parent.id, account_id))
            alive = version is not None and hmac.compare_digest(version, parent.version)
            self._parents.remember(known, cache_key, alive)
        return alive

    def principal_for_token(self, token: str) -> Principal | None:
        """None when the token is unknown, expired or forged, or (a signed one) its parent is gone."""
        if token.startswith(SIGNED_PREFIX):
            claims = self.verify_signed(token)
            if claims is None or claims.get("k") != "access":
                return None
            return self.principal_for_claims(claims)
        token_hash = hash_token(token)
        found = self.accounts.token_by_hash(token_hash)
        if found is None:
            return None
        tok, account = found
        self._touch(tok.id)
        cap = AccessLevel.READ if tok.scope == "read" else AccessLevel.ADMIN
        return Principal(account=account, cap=cap, method="token", token_id=tok.id,
                         parent=token_parent(tok.id, token_hash))

    def _touch(self, token_id: int | None) -> None:
        """Record a token's use, at most once a minute per token (a write per request would
        serialise every reader behind the database's write lock). The daemon's ``record_use``
        writes in the background: it never delays or fails the request."""
        if token_id is None:
            return
        now = self.clock.monotonic()
        if now - self._touched.get(token_id, -_TOUCH_EVERY) >= _TOUCH_EVERY:
            self._touched[token_id] = now
            self.record_use(token_id)

    def principal_from_header(self, authorization: str | None) -> Principal:
        """Parse ``Authorization: Basic|Bearer``; anonymous when absent, 401 when invalid.

        With Basic, the username is ignored and the password is the token (an empty
        password with a token as username is accepted too).
        """
        if not authorization:
            return ANONYMOUS
        known = self._by_header.current()
        cached = known.get(authorization)
        if cached is not None:
            self._touch(cached.token_id)
            return cached
        principal = self._parse_header(authorization)
        if principal.method == "token":  # signed tokens expire: checked every time
            self._by_header.remember(known, authorization, principal)
        return principal

    def _parse_header(self, authorization: str) -> Principal:
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        token: str | None = None
        if scheme.lower() == "bearer":
            token = value
        elif scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise Unauthorized("malformed Basic credentials")
            token = password or user
        if not token:
            raise Unauthorized("unsupported authorization scheme; use Basic or Bearer with an access token")
        principal = self.principal_for_token(token)
        if principal is None:
            raise Unauthorized("invalid or expired credentials", code="InvalidCredentials")
        return principal
