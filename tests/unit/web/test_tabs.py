"""The mechanism behind plugins' web tabs (gitd/web/tabs.py): who sees which tab, in what
order, and what happens to a plugin that answers nonsense or fails."""

from __future__ import annotations

from pathlib import Path

import pytest

import gitd
from gitd.access.rules import AccessLevel
from gitd.config import Config
from gitd.plugins.events import RepoInfo
from gitd.plugins.host import PluginHost
from gitd.web.tabs import WebTabs

REPO = RepoInfo(1, "alice", "m", "model", False, Path("/nonexistent"))


def draw(_request) -> str:
    return "<p>tab</p>"


class Tabs:
    @gitd.hookimpl
    def gitd_web_tabs(self, repo):
        if repo.type != "model":
            return None
        return [gitd.WebTab("late", "Late", draw, order=90), gitd.WebTab("admin", "Admin", draw, access="admin"),
                gitd.WebTab("early", "Early", draw, order=10), gitd.WebTab("write", "Write", draw, access="write",
                                                                           order=20)]


class Nonsense:
    @gitd.hookimpl
    def gitd_web_tabs(self, repo):
        return [gitd.WebTab("ok", "OK", draw, order=10), "not a tab"] if repo.name == "m" else "not a list"


class Broken:
    @gitd.hookimpl
    def gitd_web_tabs(self, repo):
        raise RuntimeError("boom")


def tabs() -> WebTabs:
    host = PluginHost(Config.load(None, environ={}))
    host.register("aaa", Tabs())
    host.register("zzz", Nonsense())
    host.register("broken", Broken())
    return WebTabs(host)


def names(found) -> list[str]:
    return [f"{plugin}:{tab.name}" for plugin, tab in found]


def test_tabs_follow_the_callers_level_then_order_and_plugin_name():
    t = tabs()
    assert names(t.for_repo(REPO, AccessLevel.READ)) == ["aaa:early", "zzz:ok", "aaa:late"]
    assert names(t.for_repo(REPO, AccessLevel.WRITE)) == ["aaa:early", "zzz:ok", "aaa:write", "aaa:late"]
    assert names(t.for_repo(REPO, AccessLevel.ADMIN)) == ["aaa:early", "zzz:ok", "aaa:write", "aaa:late",
                                                          "aaa:admin"]
    assert t.find(REPO, AccessLevel.READ, "aaa", "admin") is None  # there, but not for a reader
    assert t.find(REPO, AccessLevel.ADMIN, "aaa", "admin").label == "Admin"
    assert t.find(REPO, AccessLevel.ADMIN, "zzz", "late") is None  # another plugin's name


def test_nonsense_and_failures_are_left_out_not_fatal(caplog):
    other = RepoInfo(2, "alice", "other", "dataset", False, Path("/nonexistent"))
    assert tabs().for_repo(other, AccessLevel.ADMIN) == []
    assert "not a list" in caplog.text and "boom" in caplog.text
    assert WebTabs(None).for_repo(REPO, AccessLevel.ADMIN) == []


@pytest.mark.parametrize("name", ["", "a/b", "a b", "x" * 65, "../x"])
def test_a_tabs_name_is_one_url_segment(name):
    with pytest.raises(ValueError):
        gitd.WebTab(name, "Label", draw)
    with pytest.raises(ValueError):
        gitd.WebTab("fine", "Label", draw, access="owner")  # type: ignore[arg-type]
