"""The ``gitd_repo_filter`` contribution point (API 1.1): a plugin's answer narrows the Hub
listings; the caller's access still decides what shows; a plugin that answers None, or
fails, leaves the daemon to check the cards' tags itself."""

from __future__ import annotations

import pytest

import gitd
from gitd.plugin_api import RepoIds, hookimpl


class Evens:
    """Matches the repositories with an even id for filter=even; handles nothing else."""

    def __init__(self, context):
        self.calls: list[dict] = []

    @hookimpl
    def gitd_repo_filter(self, repo_type, filters):
        self.calls.append(filters)
        if set(filters) != {"tags"} or filters["tags"] != ["even"]:
            return None
        return [i for i in range(1, 100) if i % 2 == 0]


class LazyEvens(Evens):
    @hookimpl
    def gitd_repo_filter(self, repo_type, filters):
        ids = super().gitd_repo_filter(repo_type, filters)
        if ids is None:
            return None
        return RepoIds(10**6, lambda: pytest.fail("many matches are never listed whole"),
                       lambda batch: [i for i in batch if i in ids])


class Broken:
    def __init__(self, context):
        pass

    @hookimpl
    def gitd_repo_filter(self, repo_type, filters):
        raise RuntimeError("index unavailable")


def names(h, query: str, user: str | None = None) -> list[str]:
    r = h.http("GET", "/api/models?" + query, user=user)
    assert r.status == 200
    return [m["id"] for m in r.json()]


@pytest.fixture(params=[Evens, LazyEvens])
def h(request, gitd_harness):
    h = gitd_harness(request.param, name="evens")
    for i in range(1, 7):
        h.repo(f"alice/m{i}", private=i == 4, files={"README.md": "---\ntags: [card-tag]\n---\n" if i == 1 else "x"})
    h.user("eve")
    return h


def test_the_plugins_answer_narrows_the_listing_to_what_the_caller_may_read(h):
    assert tuple(int(n) for n in gitd.API_VERSION.split(".")) >= (1, 1)  # where gitd_repo_filter came in
    assert names(h, "filter=even") == ["alice/m2", "alice/m6"]
    assert names(h, "filter=even", user="eve") == ["alice/m2", "alice/m6"]
    assert names(h, "filter=even", user="alice") == ["alice/m2", "alice/m4", "alice/m6"]
    assert names(h, "filter=even&limit=1&cursor=1", user="alice") == ["alice/m4"]
    assert h.plugin.calls[0] == {"tags": ["even"]}


def test_filters_the_plugin_does_not_handle_are_checked_against_the_cards(h):
    assert names(h, "filter=card-tag") == ["alice/m1"]
    assert names(h, "filter=card-tag&pipeline_tag=x") == []
    assert h.plugin.calls[-1] == {"tags": ["card-tag"], "pipeline_tag": ["x"]}


def test_a_failing_plugin_leaves_the_listing_to_the_cards(gitd_harness):
    h = gitd_harness(Broken, name="broken")
    h.repo("alice/a", files={"README.md": "---\ntags: [t]\n---\n"})
    h.repo("alice/b", files={"README.md": "x"})
    assert names(h, "filter=t") == ["alice/a"]
