"""The stock huggingface_hub client (pinned 2.4.0) against a live gitd: repos, uploads, downloads, refs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfFileSystem,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RevisionNotFoundError

from tests.support import unique

README = """---
license: apache-2.0
library_name: transformers
pipeline_tag: text-classification
tags:
  - tiny
  - test
---
# A tiny model
"""


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@pytest.fixture(scope="module")
def seeded(hub, tmp_path_factory):
    """A model repo with a README card, a folder, a branch, a tag, and a file changed after the tag."""
    user, token = hub.user()
    api = hub.api(token)
    repo_id = f"{user}/{unique('m')}"
    api.create_repo(repo_id)
    folder = tmp_path_factory.mktemp("folder")
    (folder / "sub" / "deep").mkdir(parents=True)
    (folder / "config.json").write_text('{"v": 1}\n')
    (folder / "sub" / "a.txt").write_text("a\n")
    (folder / "sub" / "deep" / "b.bin").write_bytes(bytes(range(256)) * 40)
    api.upload_folder(folder_path=folder, repo_id=repo_id, commit_message="add folder")
    api.upload_file(path_or_fileobj=README.encode(), path_in_repo="README.md", repo_id=repo_id)
    v1 = api.model_info(repo_id).sha
    api.create_tag(repo_id, tag="v1.0", tag_message="first release")
    api.create_branch(repo_id, branch="feature/x")
    api.upload_file(path_or_fileobj=b'{"v": 2}\n', path_in_repo="config.json", repo_id=repo_id)
    head = api.model_info(repo_id).sha
    return {"user": user, "token": token, "api": api, "repo": repo_id, "v1": v1, "head": head}


def test_create_repo_for_user_and_org(hub, daemon):
    user, token = hub.user()
    api = hub.api(token)
    name = f"{user}/{unique('c')}"
    url = api.create_repo(name)
    assert url.repo_id == name and url.startswith(hub.url)
    assert api.create_repo(name, exist_ok=True).repo_id == name  # 409 carrying url
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo(name)
    assert exc.value.response.status_code == 409

    org = unique("org")
    daemon.cli("org", "create", org, "--owner", user)
    ds = api.create_repo(f"{org}/{unique('d')}", repo_type="dataset", private=True)
    assert ds.repo_type == "dataset" and ds.namespace == org
    info = api.dataset_info(ds.repo_id)
    assert info.private is True and info.author == org
    space = api.create_repo(f"{user}/{unique('s')}", repo_type="space", space_sdk="gradio")
    assert space.repo_type == "space"
    assert api.space_info(space.repo_id).id == space.repo_id

    _, outsider_token = hub.user()
    with pytest.raises(HfHubHTTPError) as denied:
        hub.api(outsider_token).create_repo(f"{org}/{unique('x')}")
    assert denied.value.response.status_code == 403
    assert "orgs" in api.whoami() and api.whoami()["orgs"][0]["name"] == org
    assert api.whoami()["auth"]["accessToken"]["role"] == "write"


def test_download_by_branch_tag_and_sha(hub, seeded, tmp_path):
    repo, api = seeded["repo"], seeded["api"]
    by_branch = hf_hub_download(repo, "config.json", endpoint=hub.url)
    assert Path(by_branch).read_text() == '{"v": 2}\n'
    by_tag = hf_hub_download(repo, "config.json", revision="v1.0", endpoint=hub.url)
    assert Path(by_tag).read_text() == '{"v": 1}\n'
    by_sha = hf_hub_download(repo, "config.json", revision=seeded["v1"], endpoint=hub.url)
    assert Path(by_sha).read_text() == '{"v": 1}\n'
    slash = hf_hub_download(repo, "sub/deep/b.bin", revision="feature/x", endpoint=hub.url)
    assert Path(slash).read_bytes() == bytes(range(256)) * 40

    snap = Path(snapshot_download(repo, revision="v1.0", allow_patterns=["sub/*"], endpoint=hub.url,
                                  cache_dir=tmp_path / "c1"))
    assert snap.name == seeded["v1"]
    assert sorted(str(p.relative_to(snap)) for p in snap.rglob("*") if p.is_file()) == [
        "sub/a.txt", "sub/deep/b.bin"]
    full = Path(snapshot_download(repo, revision=seeded["head"], endpoint=hub.url, cache_dir=tmp_path / "c2"))
    assert (full / "config.json").read_text() == '{"v": 2}\n'
    assert (full / "README.md").read_text() == README
    main = Path(snapshot_download(repo, allow_patterns="*.json", endpoint=hub.url, cache_dir=tmp_path / "c3"))
    assert main.name == seeded["head"] and [p.name for p in main.iterdir()] == ["config.json"]
    assert api.list_repo_files(repo, revision="v1.0") == [".gitattributes", "README.md", "config.json", "sub/a.txt",
                                                          "sub/deep/b.bin"]


def test_tree_paths_info_and_oids(hub, seeded):
    repo, api = seeded["repo"], seeded["api"]
    top = list(api.list_repo_tree(repo))
    assert [(type(e).__name__, e.path) for e in top] == [
        ("RepoFile", ".gitattributes"), ("RepoFile", "README.md"), ("RepoFile", "config.json"), ("RepoFolder", "sub")]
    files = {e.path: e for e in api.list_repo_tree(repo, recursive=True) if type(e).__name__ == "RepoFile"}
    assert files["config.json"].blob_id == git_blob_sha1(b'{"v": 2}\n')
    assert files["sub/deep/b.bin"].size == 256 * 40
    deep = list(api.list_repo_tree(repo, path_in_repo="sub/deep", expand=True))
    assert [e.path for e in deep] == ["sub/deep/b.bin"]
    assert deep[0].last_commit.title == "add folder"
    with pytest.raises(EntryNotFoundError):
        list(api.list_repo_tree(repo, path_in_repo="nope"))
    info = api.get_paths_info(repo, ["config.json", "sub", "missing.txt"], revision="v1.0")
    assert [(type(e).__name__, e.path) for e in info] == [("RepoFile", "config.json"), ("RepoFolder", "sub")]
    assert info[0].blob_id == git_blob_sha1(b'{"v": 1}\n')


def test_tree_pagination_follows_absolute_links(hub):
    user, token = hub.user()
    api = hub.api(token)
    repo = f"{user}/{unique('p')}"
    api.create_repo(repo)
    ops = [CommitOperationAdd(path_in_repo=f"f{i:03d}.txt", path_or_fileobj=f"{i}\n".encode()) for i in range(60)]
    api.create_commit(repo, operations=ops, commit_message="sixty files")
    # expand=True pages by 50 entries, so the client must follow the Link header once.
    listed = list(api.list_repo_tree(repo, expand=True))
    assert [e.path for e in listed] == [".gitattributes"] + [f"f{i:03d}.txt" for i in range(60)]
    assert all(e.last_commit is not None for e in listed)


def test_exists_checks(hub, seeded):
    repo, api = seeded["repo"], seeded["api"]
    assert api.file_exists(repo, "sub/a.txt") is True
    assert api.file_exists(repo, "sub/zzz.txt") is False
    assert api.file_exists(repo, "config.json", revision="nope") is False
    assert api.repo_exists(repo) is True
    assert api.repo_exists(f"{seeded['user']}/{unique('missing')}") is False
    assert api.revision_exists(repo, "v1.0") is True
    assert api.revision_exists(repo, "feature/x") is True
    assert api.revision_exists(repo, seeded["v1"]) is True
    assert api.revision_exists(repo, "no-such-branch") is False
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo, "config.json", revision="no-such-branch", endpoint=hub.url)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo, "absent.json", endpoint=hub.url)


def test_refs_branches_tags_and_commits(hub, seeded):
    repo, api = seeded["repo"], seeded["api"]
    refs = api.list_repo_refs(repo)
    assert {b.name: b.target_commit for b in refs.branches} == {"main": seeded["head"], "feature/x": seeded["v1"]}
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1.0", seeded["v1"])]
    assert refs.converts == []

    api.create_branch(repo, branch="from-tag", revision="v1.0")
    api.create_branch(repo, branch="from-tag", exist_ok=True)
    with pytest.raises(HfHubHTTPError):
        api.create_branch(repo, branch="from-tag")
    api.create_tag(repo, tag="light", revision=seeded["v1"])
    refs = api.list_repo_refs(repo)
    assert {b.name for b in refs.branches} == {"main", "feature/x", "from-tag"}
    assert {t.name: t.target_commit for t in refs.tags} == {"v1.0": seeded["v1"], "light": seeded["v1"]}
    api.delete_branch(repo, branch="from-tag")
    api.delete_tag(repo, tag="light")
    assert {b.name for b in api.list_repo_refs(repo).branches} == {"main", "feature/x"}

    commits = api.list_repo_commits(repo)
    assert [c.commit_id for c in commits][:2] == [seeded["head"], seeded["v1"]]
    assert commits[0].title == "Upload config.json with huggingface_hub"
    assert commits[-2].title == "add folder" and commits[0].authors == [seeded["user"]]
    assert commits[-1].title == "initial commit"  # create_repo's, as on the Hub
    assert [c.commit_id for c in api.list_repo_commits(repo, revision="v1.0")] == [c.commit_id for c in commits[1:]]


def test_delete_file_and_parent_commit(hub):
    user, token = hub.user()
    api = hub.api(token)
    repo = f"{user}/{unique('d')}"
    api.create_repo(repo)
    first = api.create_commit(repo, commit_message="two", operations=[
        CommitOperationAdd("x/one.txt", b"1"), CommitOperationAdd("x/two.txt", b"2"), CommitOperationAdd("keep", b"k")])
    api.delete_file("x/one.txt", repo)
    assert api.list_repo_files(repo) == [".gitattributes", "keep", "x/two.txt"]
    with pytest.raises(EntryNotFoundError):
        api.delete_file("x/one.txt", repo)
    with pytest.raises(HfHubHTTPError) as stale:
        api.create_commit(repo, commit_message="stale", parent_commit=first.oid,
                          operations=[CommitOperationAdd("late.txt", b"late")])
    assert stale.value.response.status_code == 412
    head = api.model_info(repo).sha
    api.create_commit(repo, commit_message="rm folder", parent_commit=head,
                      operations=[CommitOperationDelete("x/")])
    assert api.list_repo_files(repo) == [".gitattributes", "keep"]


def test_model_info_card_and_search(hub, seeded):
    repo, api = seeded["repo"], seeded["api"]
    info = api.model_info(repo)
    assert info.sha == seeded["head"] and info.pipeline_tag == "text-classification"
    assert info.library_name == "transformers" and {"tiny", "test"} <= set(info.tags)
    assert info.card_data["license"] == "apache-2.0"
    assert info.created_at is not None and info.last_modified is not None
    sizes = {s.rfilename: s.size for s in info.siblings}
    assert sizes["sub/deep/b.bin"] == 256 * 40 and sizes["config.json"] == len('{"v": 2}\n')
    at_tag = api.model_info(repo, revision="v1.0")
    assert at_tag.sha == seeded["v1"]
    found = list(api.list_models(search=repo.split("/")[1], author=seeded["user"]))
    assert [m.id for m in found] == [repo]
    assert [m.id for m in api.list_models(author=seeded["user"], filter="tiny")] == [repo]
    assert list(api.list_models(author=seeded["user"], filter="no-such-tag")) == []

    ds = f"{seeded['user']}/{unique('ds')}"
    api.create_repo(ds, repo_type="dataset")
    api.upload_file(path_or_fileobj=b"a,b\n1,2\n", path_in_repo="data.csv", repo_id=ds, repo_type="dataset")
    dinfo = api.dataset_info(ds)
    assert [s.rfilename for s in dinfo.siblings] == [".gitattributes", "data.csv"] and len(dinfo.sha) == 40
    assert [d.id for d in api.list_datasets(author=seeded["user"])] == [ds]


def test_hffilesystem_ls_and_ranged_reads(hub, seeded):
    fs = HfFileSystem(endpoint=hub.url, token=False, skip_instance_cache=True)
    repo = seeded["repo"]
    listing = fs.ls(f"{repo}/sub", detail=True)
    assert {(e["name"], e["type"]) for e in listing} == {(f"{repo}/sub/a.txt", "file"),
                                                         (f"{repo}/sub/deep", "directory")}
    content = bytes(range(256)) * 40
    with fs.open(f"{repo}/sub/deep/b.bin", "rb", block_size=1000) as f:
        f.seek(2500)
        assert f.read(300) == content[2500:2800]
        f.seek(10100)
        assert f.read() == content[10100:]
    assert fs.cat_file(f"{repo}@v1.0/config.json") == b'{"v": 1}\n'
    assert fs.info(f"{repo}/config.json")["size"] == len('{"v": 2}\n')
    assert sorted(fs.glob(f"{repo}/**/*.bin")) == [f"{repo}/sub/deep/b.bin"]


def test_settings_move_and_delete(hub):
    user, token = hub.user()
    api = hub.api(token)
    repo = f"{user}/{unique('v')}"
    api.create_repo(repo)
    api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo)
    anon = hub.api(False)
    assert anon.repo_exists(repo) is True
    api.update_repo_settings(repo, private=True, gated=False)  # gating is refused: test_hub_edges
    assert anon.repo_exists(repo) is False and api.model_info(repo).private is True
    api.update_repo_settings(repo, private=False)
    assert anon.model_info(repo).private is False

    moved = f"{user}/{unique('moved')}"
    api.move_repo(repo, moved)
    assert Path(hf_hub_download(moved, "x.txt", endpoint=hub.url, token=token)).read_bytes() == b"x"
    # the old name redirects readers, as on the Hub
    assert api.model_info(repo).id == moved
    assert Path(hf_hub_download(repo, "x.txt", endpoint=hub.url, token=token,
                                cache_dir=hub.home / unique("c"))).read_bytes() == b"x"
    api.update_repo_settings(moved, private=True)
    _, other = hub.user()
    assert hub.api(other).repo_exists(repo) is False  # no redirect to a repo the caller cannot read
    api.delete_repo(moved)
    assert api.repo_exists(repo) is False
    assert api.repo_exists(moved) is False
    api.delete_repo(moved, missing_ok=True)


def test_create_pr_commits_to_refs_pr(hub):
    user, token = hub.user()
    api = hub.api(token)
    repo = f"{user}/{unique('pr')}"
    api.create_repo(repo)
    api.upload_file(path_or_fileobj=b"base", path_in_repo="f.txt", repo_id=repo)
    base = api.model_info(repo).sha
    info = api.upload_file(path_or_fileobj=b"proposal", path_in_repo="f.txt", repo_id=repo, create_pr=True)
    assert info.pr_num == 1 and info.pr_revision == "refs/pr/1"
    assert api.model_info(repo).sha == base  # main untouched
    pr_file = hf_hub_download(repo, "f.txt", revision="refs/pr/1", endpoint=hub.url)
    assert Path(pr_file).read_bytes() == b"proposal"
    api.upload_file(path_or_fileobj=b"more", path_in_repo="g.txt", repo_id=repo, revision="refs/pr/1")
    refs = api.list_repo_refs(repo, include_pull_requests=True)
    assert [p.ref for p in refs.pull_requests] == ["refs/pr/1"]
    details = api.get_discussion_details(repo, 1)
    assert details.is_pull_request and details.target_branch == "refs/heads/main"
    assert api.list_repo_files(repo, revision="refs/pr/1") == [".gitattributes", "f.txt", "g.txt"]


def test_upload_folder_as_pull_request(hub, tmp_path):
    user, token = hub.user()
    api = hub.api(token)
    repo = f"{user}/{unique('fpr')}"
    api.create_repo(repo)
    api.upload_file(path_or_fileobj=b"v1", path_in_repo="w.txt", repo_id=repo)
    (tmp_path / "w.txt").write_bytes(b"v2")
    (tmp_path / "extra.txt").write_bytes(b"new")
    info = api.upload_folder(folder_path=tmp_path, repo_id=repo, create_pr=True, commit_message="propose")
    assert info.pr_revision == "refs/pr/1"
    assert api.list_repo_files(repo) == [".gitattributes", "w.txt"]
    assert api.list_repo_files(repo, revision="refs/pr/1") == [".gitattributes", "extra.txt", "w.txt"]
    assert [d.num for d in api.get_repo_discussions(repo)] == [1]
