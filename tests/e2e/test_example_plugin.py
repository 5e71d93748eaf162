"""The documented example plugin (examples/gitd-example-plugin), installed as a separate
package the way a third party would, driven by real pushes, real HTTP clients,
huggingface_hub and the gitd command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

from tests.e2e.hook_helpers import plugin_daemon, wait_for
from tests.plugin_packages import install_plugin_packages
from tests.support import Git, unique


def get(url: str, token: str | None = None) -> tuple[int, object]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_the_example_plugin_works_as_documented(tmp_path_factory, git: Git, tmp_path):
    from huggingface_hub import HfApi

    site = install_plugin_packages(tmp_path_factory)
    pd = plugin_daemon(tmp_path / "d", site)
    try:
        d = pd.daemon
        user, token = d.user()
        _, other_token = d.user()
        repo = f"{user}/{unique('ex')}"
        d.cli("repo", "create", repo, "--empty")
        url = d.repo_url(repo, token=token)

        work = git.init_work(tmp_path / "w", {"a.txt": "a\n", "b.txt": "b\n"}, message="Initial import")
        git("push", "-q", url, "main", cwd=work)
        git.commit(work, {"x.txt": "x\n"}, message="WIP: half done")
        proc = git("push", url, "main", cwd=work, check=False)
        assert proc.returncode != 0
        assert "remote: main does not take work in progress: commit" in proc.stderr.decode()
        assert '"WIP: half done"' in proc.stderr.decode()
        git("push", "-q", url, "main:wip-branch", cwd=work)  # other branches may

        pushes_url = f"{d.url}/api/models/{repo}/pushes"
        pushes = wait_for(lambda: (lambda s, b: b if s == 200 and len(b) >= 2 else None)(*get(pushes_url)),
                          what="two recorded pushes")
        assert [(p["pusher"], p["via"], p["refs"], p["files_changed"]) for p in pushes] == [
            (user, "http", [["refs/heads/main", "create"]], 2),
            (user, "http", [["refs/heads/wip-branch", "create"]], 0)]

        # The info answer carries the plugin's field, as huggingface_hub sees it.
        assert HfApi(endpoint=d.url, token=token).model_info(repo).pushes == 2
        # The caller's own pushes; another user has none.
        assert len(get(f"{d.url}/api/plugins/pushlog/mine", token)[1]) == 2
        assert get(f"{d.url}/api/plugins/pushlog/mine", other_token) == (200, [])
        assert get(f"{d.url}/api/plugins/pushlog/mine")[0] == 401

        # Private: the plugin's routes answer as the daemon's do.
        d.cli("repo", "set", repo, "--private")
        assert get(pushes_url)[0] == 401
        assert get(pushes_url, other_token)[0] == 404
        assert get(pushes_url, token)[0] == 200

        env = {**os.environ, "PYTHONPATH": str(site)}
        shown = subprocess.run([sys.executable, "-m", "gitd.cli", "--data", str(d.data), "pushlog", "show", repo],
                               capture_output=True, text=True, env=env, timeout=60)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.splitlines() == [f"{user} via http: create refs/heads/main (2 file(s) changed)",
                                             f"{user} via http: create refs/heads/wip-branch (0 file(s) changed)"]
    finally:
        pd.daemon.stop()
