"""A repository fresh from create_repo, as huggingface_hub 2.4 and the `hf` CLI meet it: it has
its first commit (the Hub's default .gitattributes; a space's README names its sdk), so refs,
pull requests, /revision/main and HfFileSystem work at once; and preupload sends files to
LFS as the Hub does: by that .gitattributes, whatever their size, and by binary samples."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd, HfFileSystem, hf_hub_download

from tests.support import unique


@pytest.mark.parametrize(("repo_type", "private"), [("model", False), ("dataset", True)])
def test_a_fresh_repository_has_a_first_commit(hub, repo_type, private):
    user, token = hub.user()
    api = hub.api(token)
    repo = f"{user}/{unique('fresh')}"
    api.create_repo(repo, repo_type=repo_type, private=private)
    info = api.repo_info(repo, repo_type=repo_type)
    assert len(info.sha) == 40 and [s.rfilename for s in info.siblings] == [".gitattributes"]
    assert api.revision_exists(repo, "main", repo_type=repo_type)
    attributes = hf_hub_download(repo, ".gitattributes", repo_type=repo_type, token=token)
    text = Path(attributes).read_text()
    assert "*.safetensors filter=lfs diff=lfs merge=lfs -text" in text
    assert ("*.png filter=lfs" in text) == (repo_type == "dataset")
    # Everything that needs a commit works on it straight away.
    api.create_branch(repo, branch="dev", repo_type=repo_type)
    api.create_tag(repo, tag="v0", repo_type=repo_type)
    pr = api.create_commit(repo, operations=[CommitOperationAdd("a.txt", b"a")], commit_message="propose",
                           create_pr=True, repo_type=repo_type)
    assert pr.pr_revision == "refs/pr/1"
    refs = api.list_repo_refs(repo, repo_type=repo_type)
    assert sorted(b.name for b in refs.branches) == ["dev", "main"] and [t.name for t in refs.tags] == ["v0"]
    assert api.list_repo_files(repo, repo_type=repo_type) == [".gitattributes"]
    prefix = "" if repo_type == "model" else f"{repo_type}s/"
    fs = HfFileSystem(endpoint=hub.url, token=token)
    assert [p.rsplit("/", 1)[1] for p in fs.ls(f"{prefix}{repo}", detail=False)] == [".gitattributes"]
    assert [c.title for c in api.list_repo_commits(repo, repo_type=repo_type)] == ["initial commit"]


def test_a_space_gets_a_readme_naming_its_sdk(hub):
    user, token = hub.user()
    api = hub.api(token)
    repo = f"{user}/{unique('sp')}"
    api.create_repo(repo, repo_type="space", space_sdk="gradio")
    readme = Path(hf_hub_download(repo, "README.md", repo_type="space", token=token)).read_text()
    assert readme.startswith("---\n") and "sdk: gradio" in readme
    assert sorted(api.list_repo_files(repo, repo_type="space")) == [".gitattributes", "README.md"]


def test_preupload_sends_small_tracked_and_binary_files_through_lfs(hub):
    user, token = hub.user()
    api = hub.api(token)
    repo = f"{user}/{unique('modes')}"
    api.create_repo(repo, repo_type="dataset")
    files = {
        "w.bin": b"tiny",  # *.bin: LFS at any size
        "img/x.png": b"not really a png",  # a dataset's .gitattributes tracks images
        "blob.dat": b"\x00\x01\x02binary",  # untracked, but binary
        "notes.txt": "plain text, UTF-8: héllo\n".encode(),  # stays in git
    }
    api.create_commit(repo, repo_type="dataset", commit_message="mixed",
                      operations=[CommitOperationAdd(p, d) for p, d in files.items()])
    tree = {e.path: e for e in api.list_repo_tree(repo, repo_type="dataset", recursive=True)
            if type(e).__name__ == "RepoFile"}
    for path in ("w.bin", "img/x.png", "blob.dat"):
        assert tree[path].lfs is not None and tree[path].lfs.sha256 == hashlib.sha256(files[path]).hexdigest(), path
    assert tree["notes.txt"].lfs is None
    for path, data in files.items():
        got = hf_hub_download(repo, path, repo_type="dataset", token=token, force_download=True)
        assert Path(got).read_bytes() == data
    # The repository's own .gitattributes decides: untrack *.bin and a new .bin goes into git.
    text = Path(hf_hub_download(repo, ".gitattributes", repo_type="dataset", token=token)).read_text()
    lfs = "filter=lfs diff=lfs merge=lfs -text\n"
    text = text.replace(f"*.bin {lfs}", "") + f"*.txt {lfs}"
    api.upload_file(path_or_fileobj=text.encode(), path_in_repo=".gitattributes", repo_id=repo, repo_type="dataset")
    api.create_commit(repo, repo_type="dataset", commit_message="after",
                      operations=[CommitOperationAdd("v.bin", b"small text"), CommitOperationAdd("t.txt", b"t")])
    tree = {e.path: e for e in api.list_repo_tree(repo, repo_type="dataset") if type(e).__name__ == "RepoFile"}
    assert tree["v.bin"].lfs is None and tree["t.txt"].lfs is not None
