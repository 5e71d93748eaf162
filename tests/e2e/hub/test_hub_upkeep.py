"""The rest of huggingface_hub 2.4's repository calls: likes, list_user_repos (`hf repos ls`),
super_squash_history, list_lfs_files / permanently_delete_lfs_files, delete_file naming a
folder, and the card schema at /api/validate-yaml; private repositories stay hidden."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from tests.e2e.hub.test_hub_discussions import hf
from tests.support import unique


def post(hub, path: str, token: str | None, body: dict | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    req = urllib.request.Request(hub.url + path, method="POST", data=json.dumps(body or {}).encode(), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_likes_and_the_users_repository_list(hub):
    owner, token = hub.user()
    fan, fan_token = hub.user()
    api, fan_api = hub.api(token), hub.api(fan_token)
    public, private = f"{owner}/{unique('lk')}", f"{owner}/{unique('lkp')}"
    api.create_repo(public)
    api.create_repo(private, private=True, repo_type="dataset")
    assert post(hub, f"/api/models/{public}/like", fan_token)[0] == 200
    assert post(hub, f"/api/models/{public}/like", token)[0] == 200
    assert post(hub, f"/api/datasets/{private}/like", token)[0] == 200
    assert post(hub, f"/api/datasets/{private}/like", fan_token)[0] == 404  # hidden, as if missing
    assert post(hub, f"/api/models/{public}/like", None)[0] == 401
    assert api.model_info(public).likes == 2
    assert sorted(u.username for u in api.list_repo_likers(public)) == sorted([owner, fan])
    assert api.list_liked_repos(owner).models == [public] and api.list_liked_repos(owner).datasets == [private]
    assert fan_api.list_liked_repos(owner).datasets == []  # another's like list hides what they cannot read
    with pytest.raises(RepositoryNotFoundError):
        list(fan_api.list_repo_likers(private, repo_type="dataset"))
    fan_api.unlike(public)
    assert fan_api.list_liked_repos(fan).total == 0 and api.model_info(public).likes == 1

    # list_user_repos (hf repos ls): one's own repositories with their storage; an org's for members.
    api.upload_file(path_or_fileobj=b"\x00" * 5000, path_in_repo="w.bin", repo_id=public)
    mine = {r.id: r for r in api.list_user_repos()}
    assert set(mine) == {public, private}
    assert mine[private].visibility == "private" and mine[private].type == "dataset"
    assert mine[public].storage >= 5000
    assert [r.id for r in fan_api.list_user_repos()] == []
    listed = json.loads(hf(hub, token, "repos", "ls", "--format", "json").stdout)  # the hf CLI's view of it
    assert sorted(r["id"] for r in listed) == sorted([public, private])
    org = unique("org")
    hub.daemon.cli("org", "create", org, "--owner", owner)
    with pytest.raises(HfHubHTTPError) as exc:
        list(fan_api.list_user_repos(namespace=org))
    assert exc.value.response.status_code == 404
    assert list(api.list_user_repos(namespace=org)) == []  # its owner (a member) lists it


def test_listings_sort_by_likes_and_refuse_sorts_they_do_not_know(hub):
    owner, token = hub.user()
    fans = [hub.user()[1] for _ in range(2)]
    api = hub.api(token)
    names = [f"{owner}/{unique(p)}" for p in ("none", "two", "one")]
    for name in names:
        api.create_repo(name)
    for fan in fans:
        assert post(hub, f"/api/models/{names[1]}/like", fan)[0] == 200
    assert post(hub, f"/api/models/{names[2]}/like", fans[0])[0] == 200
    assert [m.id for m in api.list_models(author=owner, sort="likes")] == [names[1], names[2], names[0]]
    assert [m.likes for m in api.list_models(author=owner, sort="likes", expand=["likes"])] == [2, 1, 0]
    hub.api(fans[0]).unlike(names[1])
    hub.api(fans[1]).unlike(names[1])
    assert next(m.id for m in api.list_models(author=owner, sort="likes")) == names[2]
    with pytest.raises(HfHubHTTPError) as refused:
        list(api.list_models(author=owner, sort="popularity"))
    assert refused.value.response.status_code == 400 and "sort='popularity'" in str(refused.value)


def test_super_squash_lfs_files_and_folder_deletes(hub, tmp_path):
    owner, token = hub.user()
    _, other_token = hub.user()
    api = hub.api(token)
    repo = f"{owner}/{unique('sq')}"
    api.create_repo(repo)
    api.create_commit(repo, commit_message="one", operations=[
        CommitOperationAdd("w.bin", b"\x01weights"), CommitOperationAdd("ckpt/a.txt", b"a"),
        CommitOperationAdd("ckpt/deep/b.txt", b"b")])
    api.upload_file(path_or_fileobj=b"\x02other", path_in_repo="old.bin", repo_id=repo)
    api.delete_file("old.bin", repo)

    # deletedFile naming a folder deletes it, as on the Hub (delete_file sends no trailing slash).
    api.delete_file("ckpt", repo)
    assert api.list_repo_files(repo) == [".gitattributes", "w.bin"]

    lfs = list(api.list_lfs_files(repo))
    assert sorted(f.filename for f in lfs) == ["", "w.bin"]  # old.bin's object: in no file of main any more
    weights = next(f for f in lfs if f.filename == "w.bin")
    assert weights.size == len(b"\x01weights")
    with pytest.raises(HfHubHTTPError) as exc:
        api.permanently_delete_lfs_files(repo, [weights])  # rewrite_history=True: refused by name
    assert exc.value.response.status_code == 400 and "rewrite_history=False" in str(exc.value)
    api.permanently_delete_lfs_files(repo, [f for f in lfs if f.filename == ""], rewrite_history=False)
    assert [f.filename for f in api.list_lfs_files(repo)] == ["w.bin"]
    for call in (lambda: list(hub.api(other_token).list_lfs_files(repo)),
                 lambda: hub.api(other_token).super_squash_history(repo)):
        with pytest.raises(HfHubHTTPError) as exc:
            call()
        assert exc.value.response.status_code == 403

    # Squashing rewrites a branch: the default branch is protected by the policy plugin
    # (protect_default_branch), which refuses it by name; another branch squashes.
    with pytest.raises(HfHubHTTPError) as exc:
        api.super_squash_history(repo)
    assert exc.value.response.status_code == 403 and "force-pushing to the default branch" in str(exc.value)
    api.create_branch(repo, branch="dev")
    api.upload_file(path_or_fileobj=b"dev", path_in_repo="dev.txt", repo_id=repo, revision="dev")
    assert len(api.list_repo_commits(repo, revision="dev")) == 6
    api.super_squash_history(repo, branch="dev", commit_message="squashed")
    assert [c.title for c in api.list_repo_commits(repo, revision="dev")] == ["squashed"]
    assert api.list_repo_files(repo, revision="dev") == [".gitattributes", "dev.txt", "w.bin"]
    got = hf_hub_download(repo, "w.bin", revision="dev", cache_dir=tmp_path)
    assert Path(got).read_bytes() == b"\x01weights"


def test_regression_upkeep_routes_hide_a_private_repository(hub):
    owner, token = hub.user()
    _, other_token = hub.user()
    repo = f"{owner}/{unique('sqp')}"
    hub.api(token).create_repo(repo, private=True)
    for api in (hub.api(other_token), hub.api()):
        for call in (lambda a: list(a.list_lfs_files(repo)), lambda a: a.super_squash_history(repo),
                     lambda a: list(a.list_repo_likers(repo)), lambda a: a.unlike(repo)):
            with pytest.raises(RepositoryNotFoundError):
                call(api)
    batch = {"deletions": {"sha": ["0" * 64], "rewriteHistory": False}}
    assert post(hub, f"/api/models/{repo}/lfs-files/batch", other_token, batch)[0] == 404
    assert post(hub, f"/api/models/{repo}/lfs-files/batch", None, batch)[0] == 401


def test_validate_yaml_checks_the_card_schema(hub):
    code, body = post(hub, "/api/validate-yaml", None, {"content": "---\nlicense: my-own\n---\n", "repoType": "model"})
    assert code == 400 and "my-own" in body["errors"][0]["message"]
    code, body = post(hub, "/api/validate-yaml", None, {"content": "# no metadata\n", "repoType": "model"})
    assert code == 200 and body["warnings"] and "no YAML metadata" in body["warnings"][0]["message"]
    code, body = post(hub, "/api/validate-yaml", None, {"content": "---\nlicense: [mit, apache-2.0]\ntags: x\n---\n"})
    assert code == 200 and body == {}
    code, body = post(hub, "/api/validate-yaml", None, {"content": "---\ntags: {a: 1}\n---\n"})
    assert code == 400 and '"tags"' in body["errors"][0]["message"]
    owner, token = hub.user()
    api = hub.api(token)
    repo = f"{owner}/{unique('card')}"
    api.create_repo(repo)
    with pytest.raises(ValueError, match="license"):
        api.upload_file(path_or_fileobj=b"---\nlicense: not-a-license\n---\n# x\n", path_in_repo="README.md",
                        repo_id=repo)
    with pytest.warns(UserWarning, match="no YAML metadata"):
        api.upload_file(path_or_fileobj=b"# just text\n", path_in_repo="README.md", repo_id=repo)
