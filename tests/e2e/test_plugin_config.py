"""Plugins are enabled, disabled and configured by name in gitd.toml or GITD_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.hook_helpers import plugin_daemon, wait_for
from tests.plugin_packages import install_plugin_packages
from tests.support import Git


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_plugin_packages(tmp_path_factory)


def test_plugins_are_disabled_and_configured_by_name(site, git: Git, tmp_path):
    pd = plugin_daemon(tmp_path / "d", site, {
        "plugins.disabled": ["veto"],
        "plugins.crasher.enabled": False,
        "plugins.recorder.color": "blue",
    })
    try:
        user, token = pd.daemon.user()
        repo = pd.daemon.repo(user)
        work = git.init_work(tmp_path / "w")
        # veto and crasher would refuse this push; both are disabled.
        git("push", "-q", "-o", "veto=no", "-o", "crash=error", pd.daemon.repo_url(repo, token=token), "main",
            cwd=work)
        [pre] = pd.records("pre", repo=repo)
        assert pre["settings"] == {"dir": str(pd.records_dir), "color": "blue"}
        log = pd.daemon.log()
        assert "plugin veto is disabled" in log and "plugin crasher is disabled" in log
        assert "plugin recorder loaded" in log and "plugin policy loaded" in log
    finally:
        pd.daemon.stop()


def test_regression_a_plugin_that_fails_to_load_refuses_pushes_until_fixed_or_disabled(site, git: Git, tmp_path):
    # A plugin that cannot load may be the one enforcing policy: pushes are refused
    # (not waved through unchecked) until the administrator fixes or disables it.
    pd = plugin_daemon(tmp_path / "d", site, start=False)
    config = pd.daemon.data / "gitd.toml"
    config.write_text(config.read_text() + '\n[plugins.broken]\nfail = "true"\n')
    pd.daemon.start()
    try:
        user, token = pd.daemon.user()
        repo = pd.daemon.repo(user)
        work = git.init_work(tmp_path / "w")
        proc = git("push", pd.daemon.repo_url(repo, token=token), "main", cwd=work, check=False)
        assert proc.returncode != 0
        err = proc.stderr.decode()
        assert "remote: push refused: the server's push checks are not all available." in err
        assert "broken" not in err
        log = pd.daemon.log()
        assert "plugin broken failed to load: ValueError: broken plugin: bad settings" in log
        assert "refused: plugin(s) failed to load: broken" in log

        pd.daemon.stop()
        text = config.read_text()
        assert "disabled = []" in text
        config.write_text(text.replace("disabled = []", 'disabled = ["broken"]', 1))
        pd.daemon.start()  # on a new port
        git("push", "-q", pd.daemon.repo_url(repo, token=token), "main", cwd=work)
        assert wait_for(lambda: pd.records("post"), what="post-receive after the fix")
    finally:
        pd.daemon.stop()
