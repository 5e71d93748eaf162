"""A public repository's readers open pull requests carrying Git LFS files, as on the Hub, with
the stock huggingface_hub 2.4 client (HF_HUB_DISABLE_XET=1): the LFS batch API lets a signed-in
reader upload only for a pull request they may open or add to (gitd.hub.pr_uploads), never for
a branch, a private repository, or anonymously."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pygit2
import pytest
from huggingface_hub import CommitOperationAdd, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError

from gitd.lfs.pointer import parse_pointer
from tests.lfs_support import LFS_JSON, LfsClient, http, sha256
from tests.support import unique

WEIGHTS = b"\x00\x01safetensors-ish weights\xff" * 64  # binary: preupload answers "lfs"


def preupload(hub, repo: str, token: str, data: bytes, *, create_pr: bool = True) -> int:
    """The preupload huggingface_hub sends before a create_pr commit; its status."""
    query = "?create_pr=1" if create_pr else ""
    body = {"files": [{"path": "w.bin", "size": len(data),
                       "sample": base64.b64encode(data[:512]).decode()}]}
    return http("POST", f"{hub.url}/api/models/{repo}/preupload/main{query}", json.dumps(body).encode(),
                {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}).status


def test_a_reader_opens_a_pull_request_carrying_lfs_files(hub, tmp_path):
    owner, owner_token = hub.user()
    _, reader_token = hub.user()
    api, reader = hub.api(owner_token), hub.api(reader_token)
    repo = f"{owner}/{unique('prlfs')}"
    api.create_repo(repo)

    pr = reader.create_commit(repo, operations=[CommitOperationAdd("model.safetensors", WEIGHTS)],
                              commit_message="Add weights", create_pr=True)
    assert pr.pr_revision == f"refs/pr/{pr.pr_num}"
    # The reader adds another LFS file to their own pull request (the batch names refs/pr/N).
    more = os.urandom(3000)
    reader.upload_file(path_or_fileobj=more, path_in_repo="extra.bin", repo_id=repo, revision=pr.pr_revision)

    files = {f.path: f for f in api.list_repo_tree(repo, revision=pr.pr_revision)}
    assert files["model.safetensors"].lfs.sha256 == sha256(WEIGHTS)
    assert files["extra.bin"].lfs.sha256 == sha256(more)
    got = hf_hub_download(repo, "model.safetensors", revision=pr.pr_revision, cache_dir=tmp_path, token=False)
    assert Path(got).read_bytes() == WEIGHTS
    got = hf_hub_download(repo, "extra.bin", revision=pr.pr_revision, cache_dir=tmp_path, token=False)
    assert Path(got).read_bytes() == more
    # Git holds pointers; main is untouched until a writer merges.
    blob = pygit2.Repository(str(hub.daemon.repo_path(repo))).revparse_single(f"{pr.pr_revision}:model.safetensors")
    assert parse_pointer(blob.data).oid == sha256(WEIGHTS)
    assert "model.safetensors" not in api.list_repo_files(repo)
    api.merge_pull_request(repo, pr.pr_num)
    merged = hf_hub_download(repo, "model.safetensors", cache_dir=tmp_path / "m", token=False)
    assert Path(merged).read_bytes() == WEIGHTS


def test_regression_a_reader_cannot_upload_lfs_objects_for_a_branch(hub):
    owner, owner_token = hub.user()
    _, reader_token = hub.user()
    _, stranger_token = hub.user()
    api, reader = hub.api(owner_token), hub.api(reader_token)
    repo = f"{owner}/{unique('prlfs')}"
    api.create_repo(repo)
    data = os.urandom(2048)
    obj = [(sha256(data), len(data))]
    lfs = LfsClient(hub.daemon, repo, reader_token)

    # Through the client: the branch stays the writers' (preupload refuses before any upload).
    with pytest.raises(HfHubHTTPError) as exc:
        reader.upload_file(path_or_fileobj=data, path_in_repo="w.bin", repo_id=repo)
    assert exc.value.response.status_code == 403
    # By hand: no ref and no pull request announced, or a branch named, even after an announcement.
    assert lfs.batch("upload", obj).status == 403
    assert preupload(hub, repo, reader_token, data, create_pr=False) == 403
    assert preupload(hub, repo, reader_token, data) == 200
    for ref in ("refs/heads/main", "main", "refs/pr/999"):
        assert lfs.batch("upload", obj, ref={"name": ref}).status == 403, ref
    other = os.urandom(4096)  # a size the preupload did not announce
    assert lfs.batch("upload", [(sha256(other), len(other))]).status == 403
    # The announced upload is allowed; its links serve only the reader who asked for them.
    answer = lfs.batch("upload", obj)
    assert answer.status == 200, answer.body
    actions = answer.json()["objects"][0]["actions"]
    put = http("PUT", actions["upload"]["href"], data, {"Authorization": f"Bearer {stranger_token}"})
    assert put.status == 403
    assert http("PUT", actions["upload"]["href"], data).status == 200
    verify = http("POST", actions["verify"]["href"], json.dumps({"oid": obj[0][0], "size": len(data)}).encode(),
                  {"Authorization": f"Bearer {stranger_token}", "Content-Type": LFS_JSON})
    assert verify.status == 403
    # Another reader's pull request is not theirs to add to.
    pr = reader.create_commit(repo, operations=[CommitOperationAdd("a.txt", b"a\n")], commit_message="PR",
                              create_pr=True)
    stranger = LfsClient(hub.daemon, repo, stranger_token)
    assert stranger.batch("upload", obj, ref={"name": pr.pr_revision}).status == 403
    assert lfs.batch("upload", obj, ref={"name": pr.pr_revision}).status == 200
    api.change_discussion_status(repo, pr.pr_num, "closed")
    assert lfs.batch("upload", obj, ref={"name": pr.pr_revision}).status == 403  # closed: no more


def test_regression_a_reader_cannot_upload_lfs_objects_to_a_private_repo_or_anonymously(hub):
    owner, owner_token = hub.user()
    member, member_token = hub.user()
    _, read_only = hub.daemon.user(scope="read")
    api = hub.api(owner_token)
    org = unique("prorg")
    hub.daemon.cli("org", "create", org, "--owner", owner)
    hub.daemon.cli("org", "add-member", org, member, "--role", "read")
    private = f"{org}/{unique('prlfs')}"
    api.create_repo(private, private=True)
    public = f"{owner}/{unique('prlfs')}"
    api.create_repo(public)
    data = os.urandom(1024)
    obj = [(sha256(data), len(data))]

    # A read member of a private repository's organisation: the batch stays the writers'.
    assert preupload(hub, private, member_token, data) == 200
    member_lfs = LfsClient(hub.daemon, private, member_token)
    assert member_lfs.batch("download", obj).status == 200  # they read it
    assert member_lfs.batch("upload", obj).status == 403
    # Anonymous callers: 401 on the batch and on the links.
    anonymous = LfsClient(hub.daemon, public)
    assert anonymous.batch("upload", obj).status == 401
    assert anonymous.batch("upload", obj, ref={"name": "refs/pr/1"}).status == 401
    assert http("PUT", anonymous.base + f"/objects/{obj[0][0]}/{len(data)}", data).status == 401
    # A read-only token cannot open a pull request, so cannot announce one either.
    assert preupload(hub, public, read_only, data) == 403
    assert LfsClient(hub.daemon, public, read_only).batch("upload", obj).status == 403
