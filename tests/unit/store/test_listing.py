"""``Repos.listing``: visibility, filters, order and paging in SQL."""

from __future__ import annotations

import pytest

from gitd.access.rules import Readable
from gitd.store import Accounts, Repos, Store

ALL = Readable(everything=True)


@pytest.fixture
def rows(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    store.migrate()
    accounts, repos = Accounts(store), Repos(store)
    alice, bob = accounts.create_user("alice"), accounts.create_user("bob")
    made = {}
    for i, (owner, name, private) in enumerate([(alice, "zeta", False), (bob, "alpha", True), (alice, "beta_1", False),
                                                (bob, "gamma", False), (alice, "beta-2", True)]):
        r = repos.insert(owner, name, "model", private=private, default_branch="main")
        # distinct, out-of-insertion-order timestamps
        store.db.execute("UPDATE repos SET created_at = ?, updated_at = ? WHERE id = ?",
                         [f"2024-01-0{i + 1}", f"2024-02-0{5 - i}", r.id])
        made[name] = r.id
    repos.insert(alice, "ds", "dataset", private=False, default_branch="main")
    return repos, made, alice


def names(found) -> list[str]:
    return [r.name for r in found]


def test_order_type_and_visibility(rows):
    repos, _, alice = rows
    assert names(repos.listing(ALL, repo_type="model")) == ["zeta", "alpha", "beta_1", "gamma", "beta-2"]
    assert names(repos.listing(ALL, repo_type="model", order="created", descending=True)) == [
        "beta-2", "gamma", "beta_1", "alpha", "zeta"]
    assert names(repos.listing(ALL, repo_type="model", order="updated")) == ["beta-2", "gamma", "beta_1", "alpha",
                                                                            "zeta"]
    # by full name: alice's, then bob's
    assert names(repos.listing(ALL, repo_type="model", order="name")) == ["beta-2", "beta_1", "zeta", "alpha",
                                                                         "gamma"]
    assert names(repos.listing(Readable(public=True), repo_type="model")) == ["zeta", "beta_1", "gamma"]
    mine = Readable(public=True, owners=frozenset({alice.id}))
    assert names(repos.listing(mine, repo_type="model")) == ["zeta", "beta_1", "gamma", "beta-2"]
    assert repos.listing(Readable(), repo_type="model") == []
    assert names(repos.listing(ALL)) == ["zeta", "alpha", "beta_1", "gamma", "beta-2", "ds"]


def test_search_owner_ids_and_pages(rows):
    repos, made, alice = rows
    assert names(repos.listing(ALL, search="beta_")) == ["beta_1"]  # '_' is no wildcard
    assert names(repos.listing(ALL, search=["alice/", "BETA"])) == ["beta_1", "beta-2"]
    assert names(repos.listing(ALL, owner=alice, repo_type="model")) == ["zeta", "beta_1", "beta-2"]
    some = [made["gamma"], made["zeta"], made["alpha"]]
    assert names(repos.listing(ALL, ids=some, order="created", descending=True)) == ["gamma", "alpha", "zeta"]
    assert names(repos.listing(Readable(public=True), ids=some)) == ["zeta", "gamma"]
    assert repos.listing(ALL, ids=[]) == []
    assert names(repos.listing(ALL, repo_type="model", offset=1, limit=2)) == ["alpha", "beta_1"]
    batches = list(repos.listing_ids(Readable(public=True), order="created", batch=2))
    assert [len(b) for b in batches] == [2, 2]
    assert [i for b in batches for i in b] == [r.id for r in repos.listing(Readable(public=True), order="created")]
