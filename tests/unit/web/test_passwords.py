"""Passwords: scrypt hashes with a salt each, checked in constant form, never stored plain."""

from __future__ import annotations

import pytest

from gitd.access.passwords import Passwords, hash_password, verify_password
from gitd.errors import BadRequest
from gitd.store import Accounts, Store

FAST = 1 << 10  # a cheap cost for tests; the default is 2**15


@pytest.fixture
def accounts(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    store.migrate()
    yield Accounts(store)
    store.close()


def test_a_hash_verifies_its_password_only():
    stored = hash_password("correct horse", n=FAST)
    assert stored.startswith(f"scrypt${FAST}$8$1$") and "correct horse" not in stored
    assert verify_password("correct horse", stored)
    assert not verify_password("correct horsf", stored)
    assert hash_password("correct horse", n=FAST) != stored  # a salt of its own each time


@pytest.mark.parametrize("stored", [
    "", "plain", "scrypt$1024$8$1$", "scrypt$x$8$1$AAAA$AAAA", "md5$1$1$1$AAAA$AAAA",
    "scrypt$1000$8$1$AAAA$AAAA",  # not a power of two
    "scrypt$1073741824$8$1$AAAA$AAAA",  # a cost that would take the server's memory: refused unhashed
    "scrypt$1024$8$1$!!!!$AAAA",
])
def test_malformed_or_unreasonable_hashes_never_verify(stored):
    assert not verify_password("anything", stored)


def test_passwords_are_set_for_users_and_checked_by_name(accounts):
    alice = accounts.create_user("alice")
    org = accounts.create_org("acme", alice)
    passwords = Passwords(accounts, n=FAST)
    with pytest.raises(BadRequest, match="at least 8"):
        passwords.set(alice, "short")
    with pytest.raises(BadRequest, match="organisation"):
        passwords.set(org, "long enough pw")
    assert passwords.check("alice", "long enough pw") is None  # no password yet
    passwords.set(alice, "long enough pw")
    assert passwords.check("alice", "long enough pw") == alice
    assert passwords.check("ALICE", "long enough pw") == alice  # names are case-insensitive
    assert passwords.check("alice", "long enough pX") is None
    assert passwords.check("nobody", "long enough pw") is None
    assert passwords.check("acme", "long enough pw") is None
    row = accounts.store.db.execute("SELECT hash FROM passwords").fetchone()[0]
    assert "long enough pw" not in row
