"""Passwords for the web UI's login: hashed with scrypt (``hashlib.scrypt``, memory-hard),
each with its own salt, in the self-describing form ``scrypt$N$r$p$salt$hash``.

API tokens stay the credential of git and the APIs; a password only opens a browser
session (``gitd.web.sessions``). ``verify`` costs about the same whether or not the
account exists or has a password (a dummy hash is checked), so timing does not tell
which user names exist.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from gitd.errors import BadRequest
from gitd.store import Account, Accounts
from gitd.store.passwords import PasswordRows

# scrypt's cost: 2**15 x 8 x 128 bytes = 32 MiB of memory and ~50-100 ms per hash.
N, R, P = 1 << 15, 8, 1
DKLEN = 32
MAX_MEM = 64 * 1024 * 1024
MIN_LENGTH = 8
MAX_LENGTH = 1024  # hashing cost grows with length only a little, but bound what a form may send


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def hash_password(password: str, *, n: int = N, r: int = R, p: int = P) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=MAX_MEM, dklen=DKLEN)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (False for a malformed or unknown hash format)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        n_, r_, p_ = int(n), int(r), int(p)
        salt_b, digest_b = _unb64(salt), _unb64(digest)
    except (ValueError, binascii.Error):
        return False
    # Only costs this server would have chosen: a stored hash is data too.
    if scheme != "scrypt" or not (2 <= n_ <= 1 << 20 and n_ & (n_ - 1) == 0 and 1 <= r_ <= 32 and 1 <= p_ <= 4):
        return False
    if len(password) > MAX_LENGTH:
        return False
    try:
        found = hashlib.scrypt(password.encode(), salt=salt_b, n=n_, r=r_, p=p_, maxmem=MAX_MEM,
                               dklen=len(digest_b) or DKLEN)
    except ValueError:
        return False
    return hmac.compare_digest(found, digest_b)


def check_new_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_LENGTH:
        raise BadRequest(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise BadRequest(f"a password has at most {MAX_LENGTH} characters")
    return password


class Passwords:
    """Setting and checking users' passwords (blocking: scrypt takes tens of milliseconds,
    so the daemon calls ``check`` on a worker thread)."""

    def __init__(self, accounts: Accounts, *, n: int = N):
        self.accounts = accounts
        self.rows = PasswordRows(accounts.store)
        self.n = n
        self._dummy = hash_password(secrets.token_urlsafe(16), n=n)

    def set(self, account: Account, password: str) -> None:
        if account.kind != "user":
            raise BadRequest(f"{account.name!r} is an organisation; only users have passwords")
        self.rows.set(account.id, hash_password(check_new_password(password), n=self.n))

    def check(self, name: str, password: str) -> Account | None:
        """The user ``name`` if ``password`` is theirs, else None."""
        account = self.accounts.find(name) if isinstance(name, str) and 0 < len(name) <= 96 else None
        stored = self.rows.get(account.id) if account is not None and account.kind == "user" else None
        ok = verify_password(password, stored or self._dummy)
        return account if ok and stored is not None else None
