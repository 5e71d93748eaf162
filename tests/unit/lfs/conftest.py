"""A migrated store with one user and two repositories, for the LFS unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gitd.store import Account, Accounts, Repo, Repos, Store


@dataclass
class World:
    store: Store
    accounts: Accounts
    repos: Repos
    alice: Account
    bob: Account
    first: Repo
    second: Repo


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    store = Store(tmp_path / "gitd.db")
    store.migrate()
    accounts, repos = Accounts(store), Repos(store)
    alice, bob = accounts.create_user("alice"), accounts.create_user("bob")
    first = repos.insert(alice, "one", "model", private=False, default_branch="main")
    second = repos.insert(alice, "two", "model", private=True, default_branch="main")
    yield World(store, accounts, repos, alice, bob, first, second)
    store.close()
