from gitd.access.rules import Principal
from gitd.clock import ManualClock
from gitd.hub.pr_uploads import PullRequestUploads, pr_number
from gitd.store import Accounts, Repos, Store
from gitd.store.discussions import Discussions


def test_announced_sizes_are_for_a_pull_request_until_they_expire(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    store.migrate()
    accounts, repos = Accounts(store), Repos(store)
    owner, reader, other = (accounts.create_user(n) for n in ("owner", "reader", "other"))
    repo = repos.insert(owner, "m", "model", private=False, default_branch="main")
    clock = ManualClock()
    uploads = PullRequestUploads(Discussions(store), clock=clock, ttl=60, max_callers=2)
    me, them = Principal(account=reader, method="token"), Principal(account=other, method="token")

    assert not uploads.for_pull_request(me, repo, None, [10])
    uploads.announce(me, repo, [10, 20])
    assert uploads.for_pull_request(me, repo, None, [10, 20])
    assert not uploads.for_pull_request(me, repo, None, [10, 30])  # a size never announced
    assert not uploads.for_pull_request(me, repo, None, [])
    assert not uploads.for_pull_request(them, repo, None, [10])  # announced by another account
    assert not uploads.for_pull_request(me, repo, "refs/heads/main", [10])  # a branch named
    assert not uploads.for_pull_request(me, repo, "refs/pr/1", [10])  # no such pull request
    clock.advance(61)
    assert not uploads.for_pull_request(me, repo, None, [10])


def test_pr_numbers():
    assert pr_number("refs/pr/12") == 12
    assert pr_number("refs/pr/") is None and pr_number("refs/heads/pr/1") is None and pr_number("refs/pr/1a") is None
