"""Parsing users' SSH public keys and finding their owner."""

from __future__ import annotations

import subprocess
from pathlib import Path

import asyncssh
import pytest

from gitd.errors import BadRequest, Conflict
from gitd.ssh.keys import SSHKeys, normalise_fingerprint, parse_public_key
from gitd.store import Accounts, Store


def keygen(tmp_path: Path, name: str, *args: str) -> Path:
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-C", f"{name}@test", "-f", str(path), *args], check=True)
    return path


def ssh_keygen_fingerprint(pub: Path) -> str:
    return subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True,
                          check=True).stdout.split()[1]


@pytest.mark.parametrize("args", [("-t", "ed25519"), ("-t", "ecdsa"), ("-t", "rsa", "-b", "2048")])
def test_fingerprints_match_ssh_keygen(tmp_path, args):
    key = keygen(tmp_path, "k", *args)
    parsed = parse_public_key(key.with_suffix(".pub").read_text())
    assert parsed.fingerprint == ssh_keygen_fingerprint(key.with_suffix(".pub"))
    assert parsed.comment == "k@test"
    assert parsed.public_key.split() == key.with_suffix(".pub").read_text().split()[:2]


def test_refuses_private_keys_weak_keys_and_other_text(tmp_path):
    ed = keygen(tmp_path, "ed", "-t", "ed25519")
    with pytest.raises(BadRequest, match="private key"):
        parse_public_key(ed.read_text())
    small = keygen(tmp_path, "small", "-t", "rsa", "-b", "1024")
    with pytest.raises(BadRequest, match="at least 2048 bits"):
        parse_public_key(small.with_suffix(".pub").read_text())
    line = ed.with_suffix(".pub").read_text()
    with pytest.raises(BadRequest, match="several lines"):
        parse_public_key(line + line)
    with pytest.raises(BadRequest, match="options are not accepted"):
        parse_public_key('command="/bin/sh" ' + line)
    with pytest.raises(BadRequest, match="DSA"):
        parse_public_key("ssh-dss AAAAB3NzaC1kc3MAAACBAP== x")
    with pytest.raises(BadRequest, match="cannot read"):
        parse_public_key("ssh-ed25519 AAAAnotbase64!!")
    with pytest.raises(BadRequest, match="no SSH public key"):
        parse_public_key("\n# just a comment\n")


def test_normalise_fingerprint():
    assert normalise_fingerprint(" abc ") == "SHA256:abc"
    assert normalise_fingerprint("SHA256:abc") == "SHA256:abc"


def test_add_list_remove_and_owner(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    store.migrate()
    accounts = Accounts(store)
    keys = SSHKeys(accounts)
    alice = accounts.create_user("alice")
    bob = accounts.create_user("bob")
    org = accounts.create_org("acme", alice)
    pub = keygen(tmp_path, "a", "-t", "ed25519").with_suffix(".pub").read_text()
    other = keygen(tmp_path, "b", "-t", "ed25519").with_suffix(".pub").read_text()

    row = keys.add(alice, pub)
    assert row.title == "a@test" and [k.fingerprint for k in keys.list(alice)] == [row.fingerprint]
    with pytest.raises(Conflict, match="one user only"):
        keys.add(bob, pub)
    with pytest.raises(BadRequest, match="organisation"):
        keys.add(org, other)

    found = keys.owner(asyncssh.import_public_key(pub))
    assert found is not None and found[1].name == "alice"
    assert keys.owner(asyncssh.import_public_key(other)) is None

    keys.remove(alice, row.fingerprint.removeprefix("SHA256:"))
    assert keys.list(alice) == [] and keys.owner(asyncssh.import_public_key(pub)) is None
    store.close()
