"""Credentials: API tokens (stored hashed), short-lived signed tokens, HTTP headers."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets

from gitd.access.rules import ANONYMOUS, AccessLevel, Principal
from gitd.clock import SYSTEM_CLOCK, Clock
from gitd.errors import Unauthorized
from gitd.store import Account, Accounts
from gitd.store.db import StampedCache

TOKEN_PREFIX = "gitd_"
SIGNED_PREFIX = "gitds."
_TOUCH_EVERY = 60.0


def hash_token(token: str) -> str:
    # API tokens are 240-bit random strings, so a plain SHA-256 is a safe one-way store.
    return hashlib.sha256(token.encode()).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Authenticator:
    """Turns credentials into a Principal. Holds the internal signing key."""

    def __init__(self, accounts: Accounts, secret_key: bytes, *, clock: Clock = SYSTEM_CLOCK):
        self.accounts = accounts
        self.clock = clock
        self._key = secret_key
        self._touched: dict[int, float] = {}
        # Authorization header -> Principal for API tokens: the same few headers come on every
        # request, and a revoked token or a changed account drops the answers (StampedCache).
        self._by_header = StampedCache(accounts.store)

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

    def sign_access(self, account: Account | None, repo_id: int, level: AccessLevel, ttl: float) -> str:
        """A token that lets its bearer act as ``account`` on one repository, up to ``level``."""
        return self.sign({"k": "access", "sub": account.id if account else None, "rid": repo_id,
                          "lvl": int(level)}, ttl)

    # -- resolving credentials --------------------------------------------------------------
    def principal_for_token(self, token: str) -> Principal | None:
        """None when the token is unknown, expired or forged."""
        if token.startswith(SIGNED_PREFIX):
            claims = self.verify_signed(token)
            if claims is None or claims.get("k") != "access":
                return None
            account = self.accounts.by_id(claims["sub"]) if claims.get("sub") is not None else None
            return Principal(account=account, cap=AccessLevel(claims["lvl"]), repo_id=claims["rid"],
                             method="signed")
        found = self.accounts.token_by_hash(hash_token(token))
        if found is None:
            return None
        tok, account = found
        self._touch(tok.id)
        cap = AccessLevel.READ if tok.scope == "read" else AccessLevel.ADMIN
        return Principal(account=account, cap=cap, method="token", token_id=tok.id)

    def _touch(self, token_id: int | None) -> None:
        """Record a token's use, at most once a minute per token (a write per request would
        serialise every reader behind the database's write lock)."""
        if token_id is None:
            return
        now = self.clock.monotonic()
        if now - self._touched.get(token_id, -_TOUCH_EVERY) >= _TOUCH_EVERY:
            self._touched[token_id] = now
            self.accounts.touch_token_id(token_id)

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
