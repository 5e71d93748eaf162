"""Authenticator: API tokens, signed tokens and what they are bound to."""

from __future__ import annotations

import json
import time

import pytest

from gitd.access.auth import SIGNED_PREFIX, Authenticator, _unb64, hash_token, ssh_key_parent
from gitd.access.rules import DAEMON, AccessLevel, Principal
from gitd.errors import Unauthorized
from gitd.store import Accounts, Store


@pytest.fixture
def auth(tmp_path) -> Authenticator:
    store = Store(tmp_path / "db.sqlite")
    store.migrate()
    return Authenticator(Accounts(store), b"k" * 32)


def claims_of(token: str) -> dict:
    return json.loads(_unb64(token[len(SIGNED_PREFIX):].split(".")[0]))


def token_principal(auth: Authenticator, name: str = "alice") -> tuple[Principal, str]:
    user = auth.accounts.find(name) or auth.accounts.create_user(name)
    token = auth.create_token(user, f"t{len(auth.accounts.tokens(user))}")
    principal = auth.principal_for_token(token)
    assert principal is not None and principal.token_id is not None
    return principal, token


def test_a_signed_token_speaks_for_its_caller_on_one_repository(auth):
    caller, _ = token_principal(auth)
    bearer = auth.sign_access(caller, 7, AccessLevel.WRITE, 3600)
    got = auth.principal_for_token(bearer)
    assert got is not None and got.method == "signed"
    assert got.account == caller.account and got.repo_id == 7 and got.cap == AccessLevel.WRITE
    assert got.parent == caller.parent and got.parent is not None and got.parent.kind == "tok"
    assert auth.principal_from_header(f"Bearer {bearer}") == got


def test_a_signed_token_never_carries_more_than_its_caller_may(auth):
    user = auth.accounts.create_user("reader")
    token = auth.create_token(user, "ro", scope="read")
    caller = auth.principal_for_token(token)
    assert caller is not None and caller.cap == AccessLevel.READ
    got = auth.principal_for_token(auth.sign_access(caller, 1, AccessLevel.WRITE, 3600))
    assert got is not None and got.cap == AccessLevel.READ


def test_regression_signed_tokens_die_with_the_api_token_they_were_minted_for(auth):
    caller, _ = token_principal(auth)
    other, _ = token_principal(auth)  # a second token of the same user stays valid
    bearer = auth.sign_access(caller, 1, AccessLevel.WRITE, 3600)
    kept = auth.sign_access(other, 1, AccessLevel.WRITE, 3600)
    assert auth.principal_for_token(bearer) is not None
    assert caller.account is not None
    [row] = [t for t in auth.accounts.tokens(caller.account) if t.id == caller.token_id]
    auth.accounts.revoke_token(caller.account, row.name)
    assert auth.principal_for_token(bearer) is None
    with pytest.raises(Unauthorized):
        auth.principal_from_header(f"Bearer {bearer}")
    assert auth.principal_for_token(kept) is not None


def test_regression_signed_tokens_die_with_the_ssh_key_they_were_minted_for(auth):
    user = auth.accounts.create_user("sshuser")
    key = auth.accounts.add_ssh_key(user, "SHA256:abc", "ssh-ed25519 AAAA", "laptop")
    caller = Principal(account=user, method="ssh", parent=ssh_key_parent(key))
    bearer = auth.sign_access(caller, 1, AccessLevel.WRITE, 3600)
    assert claims_of(bearer)["par"][:2] == ["key", key.id]
    assert auth.principal_for_token(bearer) is not None
    auth.accounts.remove_ssh_key(user, "SHA256:abc")
    assert auth.principal_for_token(bearer) is None
    # The same key registered again (a new row, which may get the same id) does not revive
    # tokens of the old registration.
    time.sleep(0.002)
    again = auth.accounts.add_ssh_key(user, "SHA256:abc", "ssh-ed25519 AAAA", "laptop")
    assert again.id == key.id
    assert auth.principal_for_token(bearer) is None


def test_regression_a_signed_token_naming_another_users_parent_is_refused(auth):
    alice, _ = token_principal(auth, "alice")
    bob, _ = token_principal(auth, "bob")
    assert bob.account is not None
    # Claims that pair alice's token with bob's account (only the key holder could sign
    # them, but the check must not depend on that alone).
    assert alice.parent is not None
    forged = auth.sign({"k": "access", "sub": bob.account.id, "par": list(alice.parent), "rid": 1, "lvl": 2}, 60)
    assert auth.principal_for_token(forged) is None
    orphan = auth.sign({"k": "access", "sub": bob.account.id, "rid": 1, "lvl": 2}, 60)  # no parent at all
    assert auth.principal_for_token(orphan) is None


def test_regression_a_token_id_given_out_again_does_not_revive_signed_tokens(auth):
    caller, _ = token_principal(auth, "carol")
    bearer = auth.sign_access(caller, 1, AccessLevel.WRITE, 3600)
    assert caller.account is not None
    [row] = auth.accounts.tokens(caller.account)
    auth.accounts.revoke_token(caller.account, row.name)
    successor, _ = token_principal(auth, "carol")
    assert successor.token_id == caller.token_id  # SQLite hands the freed id out again
    assert auth.principal_for_token(bearer) is None


def test_regression_a_signed_token_of_a_deleted_account_is_refused(auth):
    caller, _ = token_principal(auth, "gone")
    bearer = auth.sign_access(caller, 1, AccessLevel.READ, 3600)
    assert caller.account is not None
    with auth.accounts.store.transaction() as db:
        db.execute("DELETE FROM tokens WHERE account_id = ?", [caller.account.id])
        db.execute("DELETE FROM accounts WHERE id = ?", [caller.account.id])
    assert auth.principal_for_token(bearer) is None


def test_regression_a_signed_token_minted_from_a_signed_token_never_outlives_it(auth):
    caller, _ = token_principal(auth)
    first = auth.sign_access(caller, 1, AccessLevel.WRITE, 100)
    signed = auth.principal_for_token(first)
    assert signed is not None and signed.expires == claims_of(first)["exp"]
    assert auth.lifetime(caller, 3600) == 3600
    assert auth.lifetime(signed, 3600) <= 100
    second = auth.sign_access(signed, 1, AccessLevel.WRITE, 3600)
    assert claims_of(second)["exp"] <= claims_of(first)["exp"]
    assert claims_of(second)["par"] == list(caller.parent)  # the parent is inherited, not the bearer
    renewed = auth.principal_for_token(second)
    assert renewed is not None and renewed.expires is not None and renewed.expires <= signed.expires
    # And the whole chain dies with the API token at its root.
    assert caller.account is not None
    [row] = [t for t in auth.accounts.tokens(caller.account) if t.id == caller.token_id]
    auth.accounts.revoke_token(caller.account, row.name)
    assert auth.principal_for_token(first) is None and auth.principal_for_token(second) is None


def test_expired_and_forged_signed_tokens_are_refused(auth):
    caller, _ = token_principal(auth)
    expired = auth.sign_for(caller, {"k": "access", "rid": 1, "lvl": 1}, -5)
    assert auth.principal_for_token(expired) is None
    good = auth.sign_access(caller, 1, AccessLevel.READ, 60)
    body, mac = good[len(SIGNED_PREFIX):].split(".")
    assert auth.principal_for_token(f"{SIGNED_PREFIX}{body}.{mac[:-2]}AA") is None
    assert auth.principal_for_token("gitd_" + "x" * 40) is None
    assert hash_token("a") != hash_token("b")
    assert time.time() < claims_of(good)["exp"] <= time.time() + 61


def test_a_daemon_token_is_pinned_expires_and_mints_only_for_its_repository(auth, monkeypatch):
    token = auth.sign_daemon(7, AccessLevel.READ, 60)
    got = auth.principal_for_token(token)
    assert got is not None and got.method == DAEMON and got.account is None
    assert got.repo_id == 7 and got.cap == AccessLevel.READ
    # what it is handed (an LFS link's bearer) stays a daemon token for the same repository, no longer
    link = auth.principal_for_token(auth.sign_access(got, 7, AccessLevel.WRITE, 3600))
    assert link is not None and link.method == DAEMON and link.repo_id == 7 and link.cap == AccessLevel.READ
    assert link.expires is not None and link.expires <= got.expires
    with pytest.raises(ValueError):
        auth.sign_access(got, 8, AccessLevel.READ, 60)
    # admin never: a daemon token writes at most
    assert auth.principal_for_token(auth.sign_daemon(7, AccessLevel.ADMIN, 60)).cap == AccessLevel.WRITE
    later = time.time() + 61
    monkeypatch.setattr(auth.clock, "time", lambda: later)
    assert auth.principal_for_token(token) is None
