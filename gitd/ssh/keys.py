"""Users' SSH public keys: parsing what users paste, and finding a key's owner.

A key is identified by its OpenSSH SHA256 fingerprint (``SHA256:...``, as
``ssh-keygen -lf`` prints it) and belongs to one user only.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncssh

from gitd.errors import BadRequest, NotFound
from gitd.store import Account, Accounts, SSHKey

# Algorithms a user key may use. DSA is gone from OpenSSH; RSA needs 2048 bits or more.
ALLOWED_ALGORITHMS = frozenset({
    "ssh-ed25519", "ssh-rsa",
    "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
})
MIN_RSA_BITS = 2048
MAX_KEY_TEXT = 16 * 1024


@dataclass(frozen=True)
class ParsedKey:
    algorithm: str
    fingerprint: str
    public_key: str  # "<algorithm> <base64>", without the comment
    comment: str


def fingerprint(key: asyncssh.SSHKey) -> str:
    return key.get_fingerprint("sha256")


def normalise_fingerprint(text: str) -> str:
    """Accept 'SHA256:abc...' or the bare base64 part."""
    text = text.strip()
    return text if text.startswith("SHA256:") else f"SHA256:{text}"


def parse_public_key(text: str) -> ParsedKey:
    """Parse one OpenSSH public key line (``ssh-ed25519 AAAA... comment``).

    Raises BadRequest with a message for the user for anything else: private keys,
    several keys, authorized_keys options, unknown or weak algorithms.
    """
    if len(text) > MAX_KEY_TEXT:
        raise BadRequest("that is too long to be an SSH public key")
    if "PRIVATE KEY" in text:
        raise BadRequest("this is a private key: never share it. Add the public key (the .pub file) instead")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise BadRequest("no SSH public key found")
    if len(lines) > 1:
        raise BadRequest("expected one SSH public key, found several lines; add keys one at a time")
    line = lines[0]
    algorithm = line.split(None, 1)[0]
    if algorithm not in ALLOWED_ALGORITHMS:
        if algorithm == "ssh-dss":
            raise BadRequest("DSA keys are not accepted (OpenSSH no longer supports them); use an ed25519 key")
        raise BadRequest(
            f"not an OpenSSH public key line (it starts with {algorithm[:40]!r}); expected something like "
            "'ssh-ed25519 AAAA... you@host'. authorized_keys options are not accepted"
        )
    try:
        key = asyncssh.import_public_key(line)
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise BadRequest(f"cannot read this SSH public key: {exc}")
    if algorithm == "ssh-rsa":
        bits = key.pyca_key.key_size  # type: ignore[attr-defined]
        if bits < MIN_RSA_BITS:
            raise BadRequest(f"RSA keys need at least {MIN_RSA_BITS} bits; this one has {bits}")
    public = key.export_public_key("openssh").decode("ascii").split()
    comment = line.split(None, 2)[2] if len(line.split(None, 2)) > 2 else ""
    return ParsedKey(algorithm=public[0], fingerprint=fingerprint(key), public_key=f"{public[0]} {public[1]}",
                     comment=comment)


class SSHKeys:
    """Registering keys for users, and finding the user a verified key belongs to."""

    def __init__(self, accounts: Accounts):
        self.accounts = accounts

    def add(self, user: Account, text: str, title: str | None = None) -> SSHKey:
        if user.kind != "user":
            raise BadRequest(f"{user.name!r} is an organisation; SSH keys belong to users")
        parsed = parse_public_key(text)
        return self.accounts.add_ssh_key(user, parsed.fingerprint, parsed.public_key,
                                         title if title is not None else parsed.comment)

    def list(self, user: Account) -> list[SSHKey]:
        return self.accounts.ssh_keys(user)

    def remove(self, user: Account, fingerprint_text: str) -> None:
        self.accounts.remove_ssh_key(user, normalise_fingerprint(fingerprint_text))

    def still_owned(self, key: SSHKey, account: Account) -> Account | None:
        """The account, re-read, if ``key`` is still registered to it (a key can be removed
        while a connection that authenticated with it stays open)."""
        current = self.accounts.ssh_key_by_fingerprint(key.fingerprint)
        if current is None or current.account_id != account.id:
            return None
        try:
            return self.accounts.by_id(account.id)
        except NotFound:
            return None

    def owner(self, key: asyncssh.SSHKey) -> tuple[SSHKey, Account] | None:
        """The registered key and its user, or None. The whole key is compared, not only
        its fingerprint."""
        row = self.accounts.ssh_key_by_fingerprint(fingerprint(key))
        if row is None:
            return None
        public = key.export_public_key("openssh").decode("ascii").split()
        if row.public_key.split()[:2] != public[:2]:
            return None
        try:
            account = self.accounts.by_id(row.account_id)
        except NotFound:
            return None
        return row, account
