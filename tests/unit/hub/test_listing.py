from gitd.access.rules import Readable
from gitd.hub.listing import ListingQuery, RepoListing
from gitd.plugins.filters import RepoIds
from gitd.store import Accounts, Repos, Store


def test_narrowing_applies_with_and_without_tag_filters(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    store.migrate()
    owner = Accounts(store).create_user("owner")
    rows = Repos(store)
    repos = [rows.insert(owner, f"r{n}", "model", private=False, default_branch="main") for n in range(4)]
    keep = {repos[1].id, repos[2].id}
    narrow = [RepoIds(RepoIds.MANY + 1, list, lambda batch: [i for i in batch if i in keep])]
    tagged = {repos[2].id, repos[3].id}
    listing = RepoListing(rows)  # no plugins: tag filters read the cards (``describe``)

    def describe(repo):
        return {"tags": ["t"] if repo.id in tagged else []}

    def names(**kw):
        found, _ = listing.page(ListingQuery(Readable(public=True), "model", narrow=narrow, **kw), describe)
        return [r.name for r in found]

    assert names() == ["r1", "r2"]
    assert names(filters={"tags": ["t"]}) == ["r2"]
    assert names(limit=1) == ["r1"] and names(offset=1) == ["r2"]
