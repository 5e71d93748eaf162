"""The example plugin's own tests: gitd's `gitd_harness` fixture runs it in-process."""

import pytest
from gitd_example_plugin import PushLog

import gitd


def test_wip_commits_stay_off_main_and_pushes_are_logged(gitd_harness):
    h = gitd_harness(PushLog, name="pushlog")
    repo = h.repo("alice/model", files={"README.md": "# model\n"})
    with pytest.raises(gitd.PushRejected, match="does not take work in progress"):
        h.commit(repo, {"x.txt": "x"}, message="WIP: half done")
    h.commit(repo, {"x.txt": "x"}, message="WIP: fine here", branch="dev")
    h.run_jobs()
    assert h.repo_info(repo) == {"pushes": 2}
    assert [p["refs"] for p in h.http("GET", "/api/models/alice/model/pushes").json()] == [
        [["refs/heads/main", "create"]], [["refs/heads/dev", "create"]]]
