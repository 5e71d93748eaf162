"""The metadata plugin's answers to the Hub listings' filters, and its lineage route:
what the caller may not read never shows, through tags, filters or lineage."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from gitd_plugins.metadata import MetadataPlugin

import gitd.hub.listing
from gitd.testing import LfsBytes
from tests.metadata_files import gguf_bytes


def card(**keys) -> str:
    lines = [f"{k}: {v}" for k, v in keys.items()]
    return "---\n" + "\n".join(lines) + "\n---\n"


@pytest.fixture
def world(gitd_harness):
    h = gitd_harness(MetadataPlugin, name="metadata")
    h.user("eve")
    g = LfsBytes(gguf_bytes())
    h.repo("alice/llama-gguf", files={"README.md": card(license="mit", language="en"), "m.gguf": g})
    h.repo("alice/secret-gguf", private=True, files={"README.md": card(license="mit", pipeline_tag="text-generation"),
                                                     "m.gguf": g})
    h.repo("bob/classifier", files={"README.md": card(license="apache-2.0", pipeline_tag="text-classification",
                                                      language="[en, de]", library_name="transformers")})
    h.repo("bob/tg", files={"README.md": card(license="mit", pipeline_tag="text-generation", language="fr"),
                            "q.gguf": g})
    h.repo("bob/ds", type="dataset", files={"README.md": card(license="mit"), "m.gguf": g})
    h.run_jobs()
    return h


def ids(h, query: dict | list, user: str | None = None, kind: str = "models") -> list[str]:
    r = h.http("GET", f"/api/{kind}?" + urlencode(query, doseq=True), user=user)
    assert r.status == 200, r.body
    return [m["id"] for m in r.json()]


def test_filters_by_tag_pipeline_library_language_and_license(world):
    h = world
    assert ids(h, {"filter": "gguf"}) == ["alice/llama-gguf", "bob/tg"]
    assert ids(h, {"filter": ["gguf", "fr"]}) == ["bob/tg"]
    assert ids(h, {"pipeline_tag": "text-generation"}) == ["bob/tg"]
    assert ids(h, {"library": "transformers"}) == ["bob/classifier"]
    assert ids(h, {"library": "gguf", "language": "en"}) == ["alice/llama-gguf"]
    assert ids(h, {"license": "mit"}) == ["alice/llama-gguf", "bob/tg"]
    assert ids(h, {"filter": "license:apache-2.0"}) == ["bob/classifier"]
    assert ids(h, {"filter": "gguf", "author": "bob"}) == ["bob/tg"]
    assert ids(h, {"filter": "gguf", "search": "llama"}) == ["alice/llama-gguf"]
    assert ids(h, {"filter": "no-such-tag"}) == []
    assert ids(h, {"filter": "gguf"}, kind="datasets") == ["bob/ds"]


def test_regression_private_repositories_never_match_a_filter_for_others(world):
    h = world
    assert "alice/secret-gguf" not in ids(h, {"filter": "gguf"})
    assert "alice/secret-gguf" not in ids(h, {"filter": "gguf"}, user="eve")
    assert ids(h, {"pipeline_tag": "text-generation", "filter": "gguf"}, user="eve") == ["bob/tg"]
    assert ids(h, {"filter": "gguf"}, user="alice") == ["alice/llama-gguf", "alice/secret-gguf", "bob/tg"]


def test_many_matches_are_asked_about_batch_by_batch(world, monkeypatch):
    h = world
    monkeypatch.setattr(gitd.hub.listing, "SMALL_MATCH", 0)  # every answer counts as "many"
    monkeypatch.setattr(gitd.hub.listing, "BATCH", 2)
    assert ids(h, {"filter": "gguf"}) == ["alice/llama-gguf", "bob/tg"]
    assert ids(h, {"filter": "gguf"}, user="alice") == ["alice/llama-gguf", "alice/secret-gguf", "bob/tg"]
    assert ids(h, {"filter": "gguf", "limit": 1, "cursor": 1}, user="alice") == ["alice/secret-gguf"]


def test_sort_limit_and_pages(world):
    h = world
    r = h.http("GET", "/api/models?filter=license:mit&limit=1&sort=createdAt", user="alice")
    assert [m["id"] for m in r.json()] == ["bob/tg"]  # newest first
    assert "cursor=1" in r.headers["Link"]
    r = h.http("GET", "/api/models?filter=license:mit&limit=1&sort=createdAt&cursor=2", user="alice")
    assert [m["id"] for m in r.json()] == ["alice/llama-gguf"] and "Link" not in r.headers
    assert ids(h, {"filter": "license:mit", "sort": "createdAt", "direction": "1"}) == ["alice/llama-gguf", "bob/tg"]


def test_listing_entries_carry_derived_values_and_expand(world):
    h = world
    (entry,) = h.http("GET", "/api/models?filter=fr").json()
    assert entry["pipeline_tag"] == "text-generation" and "gguf" in entry["tags"]
    assert "gguf" not in entry  # not asked for
    (entry,) = h.http("GET", "/api/models?filter=fr&expand=gguf&expand=tags").json()
    assert set(entry) == {"_id", "id", "gguf", "tags"}
    assert entry["gguf"]["architecture"] == "llama"


def lineage(h, repo: str, user: str | None = None) -> dict:
    r = h.http("GET", f"/api/models/{repo}/lineage", user=user)
    assert r.status == 200, r.body
    d = r.json()
    return {"ancestors": [(a["id"], a["relation"], a["depth"]) for a in d["ancestors"]],
            "descendants": [(a["id"], a["relation"], a["depth"]) for a in d["descendants"]]}


def test_lineage_among_readable_repositories(gitd_harness):
    h = gitd_harness(MetadataPlugin, name="metadata")
    h.user("eve")
    h.repo("org/base", files={"README.md": card(license="mit")})
    h.repo("bob/tune", files={"README.md": card(license="mit", base_model="org/base")})
    h.repo("bob/tune-gguf", files={"README.md": card(license="mit", base_model="bob/tune"),
                                   "m.gguf": LfsBytes(gguf_bytes())})
    h.repo("carol/adapter", files={"README.md": card(license="mit"), "adapter_config.json":
                                   '{"base_model_name_or_path": "org/base", "peft_type": "LORA"}'})
    h.repo("carol/secret-tune", private=True, files={"README.md": card(base_model="org/base")})
    h.repo("dan/merge", files={"README.md": card(base_model="[org/base, bob/tune]")})
    h.repo("dan/hidden-child", files={"README.md": card(base_model="carol/secret-tune")})
    h.run_jobs()
    assert lineage(h, "org/base") == {"ancestors": [], "descendants": [
        ("bob/tune", "finetune", 1), ("carol/adapter", "adapter", 1), ("dan/merge", "merge", 1),
        ("bob/tune-gguf", "quantized", 2)]}
    assert lineage(h, "bob/tune-gguf")["ancestors"] == [("bob/tune", "quantized", 1), ("org/base", "finetune", 2)]
    # carol sees her private fine-tune, and through it its child; nobody else does
    seen = lineage(h, "org/base", user="carol")["descendants"]
    assert ("carol/secret-tune", "finetune", 1) in seen and ("dan/hidden-child", "finetune", 2) in seen
    for user in (None, "eve"):
        names = [d[0] for d in lineage(h, "org/base", user=user)["descendants"]]
        assert "carol/secret-tune" not in names and "dan/hidden-child" not in names
    assert lineage(h, "dan/hidden-child", user="eve")["ancestors"] == []
    assert h.http("GET", "/api/models/carol/secret-tune/lineage", user="eve").status == 404
