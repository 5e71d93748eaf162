"""Collections with the stock huggingface_hub 2.4 client: create, get, update, delete, add,
update and delete items, list by owner and item; private collections hidden, and a
collection never shows a viewer a repository they cannot read."""

from __future__ import annotations

import pytest
from huggingface_hub.errors import HfHubHTTPError

from tests.support import unique


def status(exc: pytest.ExceptionInfo[HfHubHTTPError]) -> int:
    return exc.value.response.status_code


def test_collections_whole(hub):
    owner, token = hub.user()
    _, other_token = hub.user()
    api, other = hub.api(token), hub.api(other_token)
    model, dataset = f"{owner}/{unique('cm')}", f"{owner}/{unique('cd')}"
    api.create_repo(model)
    api.create_repo(dataset, repo_type="dataset")
    c = api.create_collection("My picks", description="the best")
    assert c.slug.startswith(f"{owner}/my-picks-") and c.items == [] and not c.private
    assert api.create_collection("My picks", exists_ok=True).slug == c.slug
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_collection("My picks")
    assert status(exc) == 409
    c = api.add_collection_item(c.slug, model, "model", note="start here")
    c = api.add_collection_item(c.slug, dataset, "dataset")
    assert [(i.item_id, i.item_type, i.note) for i in c.items] == [(model, "model", "start here"),
                                                                   (dataset, "dataset", None)]
    with pytest.raises(HfHubHTTPError) as exc:
        api.add_collection_item(c.slug, model, "model")
    assert status(exc) == 409
    assert len(api.add_collection_item(c.slug, model, "model", exists_ok=True).items) == 2
    with pytest.raises(HfHubHTTPError) as exc:
        api.add_collection_item(c.slug, "2311.12983", "paper")
    assert status(exc) == 400 and "papers" in str(exc.value)

    api.update_collection_item(c.slug, c.items[1].item_object_id, note="data", position=0)
    got = other.get_collection(c.slug)  # public: anyone reads it
    assert [(i.item_id, i.note) for i in got.items] == [(dataset, "data"), (model, "start here")]
    updated = api.update_collection_metadata(c.slug, title="Best picks", description="updated")
    assert updated.title == "Best picks" and updated.description == "updated"
    with pytest.raises(HfHubHTTPError) as exc:
        other.update_collection_metadata(c.slug, title="mine now")
    assert status(exc) == 403
    with pytest.raises(HfHubHTTPError) as exc:
        other.delete_collection_item(c.slug, got.items[0].item_object_id)
    assert status(exc) == 403

    assert [x.slug for x in hub.api().list_collections(owner=owner)] == [c.slug]
    assert [x.slug for x in hub.api().list_collections(item=f"datasets/{dataset}")] == [c.slug]
    api.delete_collection_item(c.slug, got.items[0].item_object_id)
    assert [i.item_id for i in api.get_collection(c.slug).items] == [model]
    api.delete_collection(c.slug)
    with pytest.raises(HfHubHTTPError) as exc:
        api.get_collection(c.slug)
    assert status(exc) == 404
    api.delete_collection(c.slug, missing_ok=True)


def test_regression_private_collections_and_private_items_stay_hidden(hub):
    owner, token = hub.user()
    _, other_token = hub.user()
    api, other, anon = hub.api(token), hub.api(other_token), hub.api()
    hidden_repo, open_repo = f"{owner}/{unique('hr')}", f"{owner}/{unique('or')}"
    api.create_repo(hidden_repo, private=True)
    api.create_repo(open_repo)
    secret = api.create_collection("Secret plans", private=True)
    public = api.create_collection("Public list")
    api.add_collection_item(public.slug, hidden_repo, "model")
    api.add_collection_item(public.slug, open_repo, "model")
    for viewer in (other, anon):
        with pytest.raises(HfHubHTTPError) as exc:
            viewer.get_collection(secret.slug)
        assert status(exc) == 404
        assert [x.slug for x in viewer.list_collections(owner=owner)] == [public.slug]
        assert [i.item_id for i in viewer.get_collection(public.slug).items] == [open_repo]
        assert list(viewer.list_collections(item=f"models/{hidden_repo}")) == []
        with pytest.raises(HfHubHTTPError) as exc:
            viewer.delete_collection(secret.slug)
        assert status(exc) in (401, 404)
    with pytest.raises(HfHubHTTPError) as exc:
        other.add_collection_item(other.create_collection("Mine").slug, hidden_repo, "model")
    assert status(exc) == 404  # as a missing repository
    assert sorted(x.slug for x in api.list_collections(owner=owner)) == sorted([secret.slug, public.slug])
    assert [i.item_id for i in api.get_collection(public.slug).items] == [hidden_repo, open_repo]
