"""Hub mirrors of each repository type from another gitd (``--from-hub URL --repo-id ID
--type space|dataset``), and the plugins that follow a mirror sync as they follow a push:
the spaces plugin serves the mirrored static space, the dataset viewer converts the mirrored
dataset and answers for the mirrored commit. The real daemons with their built-in plugins."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from huggingface_hub import HfApi

from tests.e2e.hook_helpers import wait_for
from tests.e2e.mirror_helpers import api, mirror_daemon, status, wait_sync
from tests.lfs_support import lfs_git, lfs_work
from tests.support import unique

SPACE_CARD = "---\ntitle: mirrored\nsdk: static\n---\n# a static space\n"
DATASET_CARD = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: train.csv
  - split: test
    path: test.csv
---
"""


def get(url: str, token: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers or {}), exc.read()


def test_a_space_and_a_dataset_are_mirrored_by_repo_id_and_their_plugins_run(make_daemon, git, tmp_path,
                                                                             monkeypatch):
    src = make_daemon()
    owner, src_token = src.user()
    lfs_git(git)
    space = src.repo(owner, repo_type="space")
    work = lfs_work(git, tmp_path / "space", {"README.md": SPACE_CARD, "index.html": b"<h1>mirrored space</h1>",
                                              "logo.bin": b"\x89PNG not really" * 100})
    git("push", "-q", src.repo_url(space, token=src_token, repo_type="space"), "main", cwd=work)
    space_head = git.out("rev-parse", "HEAD", cwd=work)
    dataset = src.repo(owner, repo_type="dataset")
    rows = [{"id": i, "text": f"line {i}"} for i in range(30)]
    dwork = lfs_work(git, tmp_path / "dataset", {
        "README.md": DATASET_CARD, "train.csv": "id,text\n" + "".join(f"{r['id']},{r['text']}\n" for r in rows),
        "test.csv": "id,text\n99,held out\n"})
    git("push", "-q", src.repo_url(dataset, token=src_token, repo_type="dataset"), "main", cwd=dwork)
    dataset_head = git.out("rev-parse", "HEAD", cwd=dwork)

    d = mirror_daemon(make_daemon, **{"plugins.mirror.interval": 0})
    user, token = d.user()
    monkeypatch.setenv("SOURCE_TOKEN", src_token)

    # --type space: read through the source's spaces/ git endpoint, with the LFS file
    space_copy = f"{user}/{unique('space')}"
    code, out, _ = d.cli("mirror", "add", space_copy, "--type", "space", "--from-hub", src.url, "--repo-id", space,
                         "--token-env", "SOURCE_TOKEN")
    assert code == 0, out
    pull = wait_sync(d, space_copy, token, repo_type="space")
    assert pull["last_error"] is None, pull
    assert pull["source"] == {"hub": src.url, "repo_id": space, "mode": "git"}
    assert pull["url"] == f"{src.url}/spaces/{space}" and pull["last_result"]["lfs_objects"] == 1
    info = HfApi(endpoint=d.url, token=token).space_info(space_copy)
    assert info.sha == space_head and info.sdk == "static"
    assert get(f"{d.url}/spaces/{space_copy}/resolve/main/logo.bin", token)[2] == b"\x89PNG not really" * 100
    # the spaces plugin deployed the mirrored commit, as after a push
    served = wait_for(lambda: (r := get(f"{d.url}/spaces/{space_copy}/app/", token))[0] == 200 and r, 60,
                      "the mirrored static space served")
    assert served[2] == b"<h1>mirrored space</h1>"
    code, _, err = d.cli("mirror", "sync", space_copy, check=False)  # a space is named with its type
    assert code == 1 and f"no model repository {space_copy}" in err
    assert d.cli("mirror", "sync", space_copy, "--type", "space")[0] == 0

    # --type dataset: the dataset viewer's job runs after the sync, for the mirrored commit
    data_copy = f"{user}/{unique('data')}"
    code, out, _ = d.cli("mirror", "add", data_copy, "--type", "dataset", "--from-hub", src.url, "--repo-id",
                         dataset, "--token-env", "SOURCE_TOKEN")
    assert code == 0, out
    pull = wait_sync(d, data_copy, token, repo_type="dataset")
    assert pull["last_error"] is None and pull["source"]["repo_id"] == dataset, pull

    def described(commit: str):
        status_, headers, body = get(f"{d.url}/api/plugins/datasets/parquet?dataset={data_copy}", token)
        return status_ == 200 and headers.get("X-Revision") == commit and json.loads(body)

    parquet = wait_for(lambda: described(dataset_head), timeout=90, what="the mirrored dataset converted")
    assert sorted(f["split"] for f in parquet["parquet_files"]) == ["test", "train"]
    code, splits = api(d, "GET", f"/api/plugins/datasets/splits?dataset={data_copy}", token)
    assert code == 200 and [s["split"] for s in splits["splits"]] == ["train", "test"] and splits["failed"] == []
    code, first = api(d, "GET", f"/api/plugins/datasets/first-rows?dataset={data_copy}&config=default&split=train",
                      token)
    assert code == 200 and [r["row"] for r in first["rows"]] == rows
    refs = HfApi(endpoint=d.url, token=token).list_repo_refs(data_copy, repo_type="dataset")
    assert [r.ref for r in refs.converts] == ["refs/convert/parquet"]
    assert status(d, data_copy, token, "dataset")["pull"]["read_only"] is True
    assert src_token not in d.log()
