import pytest

from gitd.access.rules import ANONYMOUS, DAEMON, Access, AccessLevel, Principal
from gitd.errors import Forbidden, NotFound, Unauthorized
from gitd.store import Accounts, Repos, Store


@pytest.fixture
def world(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    store.migrate()
    accounts, repos = Accounts(store), Repos(store)
    w = {n: accounts.create_user(n) for n in ("owner", "reader", "writer", "orgadmin", "stranger")}
    w["admin"] = accounts.create_user("root", is_admin=True)
    org = accounts.create_org("acme", w["orgadmin"])
    accounts.set_member(org, w["reader"], "read")
    accounts.set_member(org, w["writer"], "write")
    w["private_user_repo"] = repos.insert(w["owner"], "p", "model", private=True, default_branch="main")
    w["public_org_repo"] = repos.insert(org, "pub", "dataset", private=False, default_branch="main")
    w["private_org_repo"] = repos.insert(org, "priv", "model", private=True, default_branch="main")
    return w, Access(accounts)


def p(account, **kw):
    return Principal(account=account, method="token", **kw)


def test_levels(world):
    w, access = world
    priv, pub, org_priv = w["private_user_repo"], w["public_org_repo"], w["private_org_repo"]
    assert access.level(ANONYMOUS, pub) == AccessLevel.READ
    assert access.level(ANONYMOUS, priv) == AccessLevel.NONE
    assert access.level(p(w["owner"]), priv) == AccessLevel.ADMIN
    assert access.level(p(w["stranger"]), priv) == AccessLevel.NONE
    assert access.level(p(w["stranger"]), pub) == AccessLevel.READ
    assert access.level(p(w["reader"]), org_priv) == AccessLevel.READ
    assert access.level(p(w["writer"]), org_priv) == AccessLevel.WRITE
    assert access.level(p(w["orgadmin"]), org_priv) == AccessLevel.ADMIN
    assert access.level(p(w["admin"]), priv) == AccessLevel.ADMIN


def test_credential_caps_and_repo_pinning(world):
    w, access = world
    org_priv = w["private_org_repo"]
    assert access.level(p(w["writer"], cap=AccessLevel.READ), org_priv) == AccessLevel.READ
    assert access.level(p(w["writer"], repo_id=org_priv.id), org_priv) == AccessLevel.WRITE
    assert access.level(p(w["writer"], repo_id=org_priv.id + 999), org_priv) == AccessLevel.NONE


def test_anonymous_read_can_be_turned_off(world):
    w, _ = world
    access = Access(world[1].accounts, anonymous_read=False)
    assert access.level(ANONYMOUS, w["public_org_repo"]) == AccessLevel.NONE


def test_require_hides_what_cannot_be_read(world):
    w, access = world
    priv = w["private_user_repo"]
    with pytest.raises(Unauthorized):
        access.require(ANONYMOUS, priv, AccessLevel.READ)
    with pytest.raises(Unauthorized):
        access.require(ANONYMOUS, None, AccessLevel.READ)
    with pytest.raises(NotFound):
        access.require(p(w["stranger"]), priv, AccessLevel.READ)
    with pytest.raises(NotFound):
        access.require(p(w["stranger"]), None, AccessLevel.READ)
    with pytest.raises(Forbidden):
        access.require(p(w["reader"]), w["private_org_repo"], AccessLevel.WRITE)
    with pytest.raises(Unauthorized):
        access.require(ANONYMOUS, w["public_org_repo"], AccessLevel.WRITE)
    assert access.require(p(w["writer"]), w["private_org_repo"], AccessLevel.WRITE) == AccessLevel.WRITE


def test_readable_says_exactly_what_level_says(world):
    """Listings filter by ``Access.readable`` in SQL; item pages by ``Access.level``: the two must agree."""
    w, access = world
    accounts, repos = access.accounts, Repos(access.accounts.store)
    every = repos.list()
    principals = [ANONYMOUS, Principal(account=None, cap=AccessLevel.NONE)]
    for name in ("owner", "reader", "writer", "orgadmin", "stranger", "admin"):
        principals += [p(w[name]), p(w[name], cap=AccessLevel.READ), p(w[name], cap=AccessLevel.NONE)]
        principals += [p(w[name], repo_id=r.id) for r in every]
    principals += [Principal(account=None, cap=cap, repo_id=r.id, method=DAEMON)
                   for r in every for cap in (AccessLevel.READ, AccessLevel.NONE)]
    for rules in (access, Access(accounts, anonymous_read=False)):
        for who in principals:
            listed = {r.id for r in repos.listing(rules.readable(who))}
            assert listed == {r.id for r in every if rules.level(who, r) >= AccessLevel.READ}, who


def test_a_daemon_token_reads_its_one_repository_whatever_its_visibility(world):
    w, access = world
    priv, org_priv = w["private_user_repo"], w["private_org_repo"]
    reader = Principal(account=None, cap=AccessLevel.READ, repo_id=priv.id, method=DAEMON)
    assert access.level(reader, priv) == AccessLevel.READ
    assert access.level(reader, org_priv) == AccessLevel.NONE  # pinned
    writer = Principal(account=None, cap=AccessLevel.WRITE, repo_id=priv.id, method=DAEMON)
    assert access.level(writer, priv) == AccessLevel.WRITE
    assert access.namespace_level(writer, w["owner"]) == AccessLevel.NONE  # creates nothing
    # an unpinned "daemon" principal is nobody's: only what anonymous callers get
    assert access.level(Principal(account=None, cap=AccessLevel.READ, method=DAEMON), priv) == AccessLevel.NONE


def test_lfs_uploads_are_the_writers_and_for_a_pull_request_a_public_repositorys_readers(world):
    w, access = world
    pub, org_priv = w["public_org_repo"], w["private_org_repo"]
    assert access.require_lfs_upload(p(w["writer"]), pub, for_pull_request=False) == AccessLevel.WRITE
    assert access.require_lfs_upload(p(w["stranger"]), pub, for_pull_request=True) == AccessLevel.READ
    with pytest.raises(Forbidden):  # for a branch
        access.require_lfs_upload(p(w["stranger"]), pub, for_pull_request=False)
    with pytest.raises(Forbidden):  # a private repository's reader
        access.require_lfs_upload(p(w["reader"]), org_priv, for_pull_request=True)
    with pytest.raises(NotFound):  # one who cannot read it at all
        access.require_lfs_upload(p(w["stranger"]), org_priv, for_pull_request=True)
    with pytest.raises(Forbidden):  # a read-only credential
        access.require_lfs_upload(p(w["stranger"], cap=AccessLevel.READ), pub, for_pull_request=True)
    with pytest.raises(Unauthorized):
        access.require_lfs_upload(ANONYMOUS, pub, for_pull_request=True)
