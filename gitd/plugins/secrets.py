"""Secrets a plugin keeps (credentials for remotes, say): encrypted at rest, per plugin.

``context.secrets.encrypt(value) -> str`` gives a token to store (in the plugin's
tables); ``context.secrets.decrypt(token) -> bytes`` gives the value back. Tokens are
Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) under a key derived, per
plugin, from ``DATA/secrets/plugins.key``: 32 random bytes, created on first use with
mode 0600 in the data directory's private ``secrets/`` folder. A database copied
without that file reveals no secret, and one plugin's tokens do not decrypt as
another's.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import threading
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32


class SecretError(Exception):
    """A token that does not decrypt (another key, or damaged)."""


def _load_or_create(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = secrets.token_bytes(KEY_BYTES)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(key)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(temp, path)  # never replaces a key another process made meanwhile
        except FileExistsError:
            pass
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    return path.read_bytes()


class PluginSecrets:
    def __init__(self, key_file: Path, plugin: str):
        self.key_file = key_file
        self.plugin = plugin
        self._fernet: Fernet | None = None
        self._lock = threading.Lock()

    def _cipher(self) -> Fernet:
        with self._lock:
            if self._fernet is None:
                master = _load_or_create(self.key_file)
                if len(master) != KEY_BYTES:
                    raise SecretError(f"{self.key_file} is not a {KEY_BYTES}-byte key")
                derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                               info=f"gitd plugin secrets v1:{self.plugin}".encode()).derive(master)
                self._fernet = Fernet(base64.urlsafe_b64encode(derived))
            return self._fernet

    def encrypt(self, value: bytes | str) -> str:
        data = value.encode() if isinstance(value, str) else value
        return self._cipher().encrypt(data).decode("ascii")

    def decrypt(self, token: str) -> bytes:
        try:
            return self._cipher().decrypt(token.encode("ascii"))
        except (InvalidToken, ValueError):
            raise SecretError("the stored secret does not decrypt with this data directory's key") from None
