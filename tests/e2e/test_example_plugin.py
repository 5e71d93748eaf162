"""The documented example plugin (examples/gitd-example-plugin), installed as a separate
package the way a third party would, driven by real pushes."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.hook_helpers import plugin_daemon, wait_for
from tests.plugin_packages import install_plugin_packages
from tests.support import Git, unique


def log_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_the_example_plugin_works_as_documented(tmp_path_factory, git: Git, tmp_path):
    site = install_plugin_packages(tmp_path_factory)
    push_log = tmp_path / "push-log.jsonl"
    pd = plugin_daemon(tmp_path / "d", site, {"plugins.pushlog.log_file": str(push_log)})
    try:
        user, token = pd.daemon.user()
        repo = f"{user}/{unique('ex')}"
        pd.daemon.cli("repo", "create", repo)
        wait_for(lambda: [r for r in log_lines(push_log) if r["event"] == "created"], what="created line")
        url = pd.daemon.repo_url(repo, token=token)

        work = git.init_work(tmp_path / "w", message="Initial import")
        git("push", "-q", url, "main", cwd=work)
        git.commit(work, {"x.txt": "x\n"}, message="WIP: half done")
        proc = git("push", url, "main", cwd=work, check=False)
        assert proc.returncode != 0
        assert "remote: main does not take work in progress: commit" in proc.stderr.decode()
        assert '"WIP: half done"' in proc.stderr.decode()
        git("push", "-q", url, "main:wip-branch", cwd=work)  # other branches may

        lines = wait_for(lambda: [r for r in log_lines(push_log) if r["event"] == "push"] if len(
            [r for r in log_lines(push_log) if r["event"] == "push"]) >= 2 else None, what="two push lines")
        assert [r["repo"] for r in lines] == [repo, repo]
        assert {r["updates"][0][0] for r in lines} == {"refs/heads/main", "refs/heads/wip-branch"}
        assert all(r["pusher"] == user and r["via"] == "http" for r in lines)
        assert len(log_lines(push_log)) == 3  # created + two pushes; the refused push left nothing
    finally:
        pd.daemon.stop()
