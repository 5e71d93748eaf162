"""Issue #20 §4: a full disk, for real (a small tmpfs under the data directory). Writes are
refused below [server] min_free_space with 507 "the server is out of disk space" (the LFS
error JSON for LFS clients) before the disk is full, so git-lfs and huggingface_hub stop
instead of retrying; a write that meets a full disk anyway answers 507 too; reads go on;
/readyz and /metrics report it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.hook_helpers import wait_for
from tests.e2e.ops.faults import fill, small_filesystem
from tests.e2e.rawhttp import metric, request
from tests.lfs_support import LfsClient, http, lfs_git, lfs_work, sha256
from tests.support import Daemon, Git, new_daemon

MIB = 1024 * 1024


@pytest.fixture
def on_tmpfs(tmp_path: Path) -> Iterator:
    """make(settings) -> a started daemon whose data directory is a 48 MiB tmpfs."""
    started: list[Daemon] = []

    def make(settings: dict[str, object]) -> Daemon:
        root = tmp_path / f"d{len(started)}"
        stack.append(small_filesystem(root / "data", "48m"))
        stack[-1].__enter__()
        d = new_daemon(root, settings)
        started.append(d)
        return d.start()

    stack: list = []
    yield make
    for d in started:
        d.stop()
    for mount in reversed(stack):
        mount.__exit__(None, None, None)


def statuses(d: Daemon, route: str, status: str) -> float:
    return metric(request(d.url, "GET", "/metrics").body.decode(), "gitd_http_requests_total", route=route,
                  status=status)


def test_regression_writes_below_the_watermark_answer_507_and_clients_stop(on_tmpfs, git: Git, tmp_path, monkeypatch):
    d = on_tmpfs({"server.min_free_space": "12MiB", "hub.regular_upload_max": "1KB"})
    user, token = d.user()
    repo, lfs_repo = d.repo(user), d.repo(user)
    work = git.init_work(tmp_path / "w", {"README.md": "hello\n"})
    git("push", "-q", d.repo_url(repo, token=token), "main", cwd=work)
    filler = fill(d.data, leave=8 * MIB)  # under the 12 MiB watermark; writes would still fit
    wait_for(lambda: request(d.url, "GET", "/readyz").status == 503, what="the daemon to see the disk low")

    # git-lfs: the batch API says why, once; git-lfs gives up instead of retrying.
    lgit = lfs_git(git)
    lwork = lfs_work(lgit, tmp_path / "lw", {"model.bin": os.urandom(MIB)})
    pushed = lgit("push", d.repo_url(lfs_repo, token=token), "main", cwd=lwork, check=False, timeout=120)
    err = pushed.stderr.decode()
    assert pushed.returncode != 0 and "out of disk space" in err, err
    assert statuses(d, "lfs-batch", "507") <= 2, err
    assert statuses(d, "lfs-batch", "500") == 0

    # The LFS API by hand: 507 with the LFS error JSON.
    data = os.urandom(1000)
    answer = LfsClient(d, repo, token).batch("upload", [(sha256(data), len(data))])
    assert answer.status == 507 and "out of disk space" in json.loads(answer.body)["message"]

    # huggingface_hub: an LFS file and a regular one; the client reports the server's reason.
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    api = HfApi(endpoint=d.url, token=token)
    # (preupload sends binary content to LFS whatever its size: the small file is text)
    for content, route in ((os.urandom(200_000), "lfs-batch"), (b"small text\n" * 9, "hub-commit")):
        before = statuses(d, route, "507")
        with pytest.raises(HfHubHTTPError) as raised:
            api.upload_file(path_or_fileobj=content, path_in_repo=f"f{len(content)}.txt", repo_id=repo)
        assert raised.value.response.status_code == 507 and "out of disk space" in str(raised.value)
        assert statuses(d, route, "507") == before + 1  # asked once: not retried

    # git push: refused before any of the pack is sent, with the reason.
    git.commit(work, {"more.txt": "more\n"}, message="more")
    plain = git("push", d.repo_url(repo, token=token), "main", cwd=work, check=False)
    assert plain.returncode != 0 and "507" in plain.stderr.decode() + plain.stdout.decode()

    # Reads go on; /readyz and /metrics say why writes are refused.
    git("clone", "-q", d.repo_url(repo, token=token), str(tmp_path / "c"))
    ready = request(d.url, "GET", "/readyz")
    assert ready.status == 503 and "disk space low" in json.loads(ready.body)["reason"]
    assert metric(request(d.url, "GET", "/metrics").body.decode(), "gitd_disk_low") == 1
    assert "disk space low" in d.log()

    filler.unlink()  # space again: writes are accepted (within the second free space is cached)
    wait_for(lambda: request(d.url, "GET", "/readyz").status == 200, what="/readyz to be ready again")
    git("push", "-q", d.repo_url(repo, token=token), "main", cwd=work)
    assert LfsClient(d, repo, token).upload(data).status == 200


def test_regression_a_write_that_fills_the_disk_answers_507_and_leaves_nothing(on_tmpfs, tmp_path):
    d = on_tmpfs({"server.min_free_space": "0"})
    user, token = d.user()
    repo = d.repo(user)
    fill(d.data, leave=2 * MIB)
    data = os.urandom(4 * MIB)  # more than the disk holds
    client = LfsClient(d, repo, token)
    answer = client.batch("upload", [(sha256(data), len(data))])
    assert answer.status == 200, answer.body
    upload = answer.json()["objects"][0]["actions"]["upload"]
    put = http("PUT", upload["href"], data, upload.get("header", {}))
    assert put.status == 507, (put.status, put.body)
    assert "out of disk space" in json.loads(put.body)["message"]
    assert not list((d.data / "lfs" / "tmp").iterdir())  # the part file went with the failed write
    assert request(d.url, "GET", "/healthz").status == 200
