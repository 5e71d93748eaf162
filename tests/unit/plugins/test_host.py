"""PluginHost: enabling, settings, validation and calling conventions."""

from __future__ import annotations

import pluggy
import pytest

import gitd
from gitd.config import Config, ConfigError
from gitd.plugins.host import PluginHost, setting_bool


def host(**env: str) -> PluginHost:
    return PluginHost(Config.load(None, environ=env))


def test_plugins_are_enabled_unless_disabled_by_list_or_table():
    h = host(GITD_PLUGINS__DISABLED="a,b", GITD_PLUGINS__C__ENABLED="false", GITD_PLUGINS__D__ENABLED="yes")
    assert not h.enabled("a") and not h.enabled("b") and not h.enabled("c")
    assert h.enabled("d") and h.enabled("anything-else")


def test_regression_enabled_false_from_the_environment_disables_the_plugin():
    # Environment values for a plugin gitd ships no defaults for arrive as strings;
    # bool("false") is True, which used to leave the plugin running.
    assert not host(GITD_PLUGINS__THIRDPARTY__ENABLED="false").enabled("thirdparty")
    with pytest.raises(ConfigError, match=r"plugins\.thirdparty\.enabled"):
        host(GITD_PLUGINS__THIRDPARTY__ENABLED="maybe").enabled("thirdparty")


def test_settings_are_the_plugins_table_without_enabled():
    h = host(GITD_PLUGINS__X__ENABLED="true", GITD_PLUGINS__X__COLOR="blue")
    assert h.settings("x") == {"color": "blue"}
    assert h.settings("policy")["max_blob_size"] == "10MiB"  # the shipped default table
    assert h.settings("unknown") == {}


def test_setting_bool_accepts_booleans_and_their_spellings():
    assert setting_bool({"k": True}, "k", False) is True
    assert setting_bool({"k": "No"}, "k", True) is False
    assert setting_bool({}, "k", True) is True
    with pytest.raises(ConfigError):
        setting_bool({"k": "2"}, "k", True)


class Configured:
    def __init__(self, settings):
        self.settings = settings

    @gitd.hookimpl
    def gitd_repo_created(self, repo):
        return ("created", self.settings, repo)


def test_a_class_is_instantiated_with_its_settings():
    h = host(GITD_PLUGINS__CONF__SIZE="3")
    h.register("conf", Configured)
    [(name, call)] = h.implementations("gitd_repo_created")
    assert name == "conf"
    assert call(repo="r") == ("created", {"size": "3"}, "r")
    assert h.implementation("gitd_repo_created", "conf") is not None
    assert h.implementation("gitd_repo_created", "other") is None


def test_an_implementation_gets_only_the_arguments_it_declares():
    class NoArgs:
        called = 0

        @gitd.hookimpl
        def gitd_pre_receive(self):
            NoArgs.called += 1

    h = host()
    h.register("noargs", NoArgs())
    [(_, call)] = h.implementations("gitd_pre_receive")
    call(event=object())
    assert NoArgs.called == 1


def test_a_misspelt_hook_is_refused_at_registration():
    class Typo:
        @gitd.hookimpl
        def gitd_post_recieve(self, event):
            pass

    h = host()
    with pytest.raises(pluggy.PluginValidationError, match="gitd_post_recieve is not a gitd hook"):
        h.register("typo", Typo())
    assert "typo" not in h.names()


def test_hook_wrappers_are_refused():
    class Wrapper:
        @gitd.hookimpl(wrapper=True)
        def gitd_pre_receive(self, event):
            yield

    h = host()
    with pytest.raises(pluggy.PluginValidationError, match="wrapper"):
        h.register("wrapper", Wrapper())
    assert "wrapper" not in h.names()


def test_call_order_follows_pluggy():
    calls = []

    def make(label, **opts):
        class P:
            @gitd.hookimpl(**opts)
            def gitd_post_receive(self, event):
                calls.append(label)
        return P()

    h = host()
    h.register("first", make("first", tryfirst=True))
    h.register("a", make("a"))
    h.register("b", make("b"))
    for _, call in h.implementations("gitd_post_receive"):
        call(event=None)
    assert calls == ["first", "b", "a"]  # pluggy: tryfirst, then last registered first


def test_the_builtin_policy_plugin_comes_from_its_entry_point():
    assert "policy" in host().load_entry_points().names()
    assert "policy" not in host(GITD_PLUGINS__DISABLED="policy").load_entry_points().names()
    broken = host(GITD_PLUGINS__POLICY__MAX_BLOB_SIZE="lots").load_entry_points()
    assert "policy" not in broken.names()
    assert "plugins.policy.max_blob_size: expected a size" in broken.load_errors["policy"]
    typo = host(GITD_PLUGINS__POLICY__MAX_BLOB_SIZ="1MiB").load_entry_points()
    assert "plugins.policy.max_blob_siz: unknown setting" in typo.load_errors["policy"]
