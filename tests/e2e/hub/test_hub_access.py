"""Private repositories through huggingface_hub: hidden without the right token, with the right exceptions."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import HfFileSystem, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from tests.support import unique


@pytest.fixture(scope="module")
def private_repo(hub):
    owner, token = hub.user()
    api = hub.api(token)
    repo = f"{owner}/{unique('secret')}"
    api.create_repo(repo, private=True)
    api.upload_file(path_or_fileobj=b"classified\n", path_in_repo="secret.txt", repo_id=repo)
    return {"owner": owner, "token": token, "repo": repo}


def test_anonymous_sees_nothing(hub, private_repo, tmp_path):
    repo, anon = private_repo["repo"], hub.api(False)
    with pytest.raises(RepositoryNotFoundError):
        anon.model_info(repo)
    with pytest.raises(RepositoryNotFoundError):
        anon.list_repo_files(repo)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(repo, "secret.txt", endpoint=hub.url, token=False, cache_dir=tmp_path)
    assert anon.repo_exists(repo) is False
    assert anon.file_exists(repo, "secret.txt") is False


def test_other_user_gets_not_found_like_a_missing_repo(hub, private_repo, tmp_path):
    _, other_token = hub.user()
    other = hub.api(other_token)
    repo = private_repo["repo"]
    missing = f"{private_repo['owner']}/{unique('nope')}"
    for name in (repo, missing):
        with pytest.raises(RepositoryNotFoundError) as exc:
            other.model_info(name)
        assert exc.value.response.status_code == 404
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(repo, "secret.txt", endpoint=hub.url, token=other_token, cache_dir=tmp_path)
    with pytest.raises(RepositoryNotFoundError):
        other.upload_file(path_or_fileobj=b"x", path_in_repo="x", repo_id=repo)
    with pytest.raises(RepositoryNotFoundError):
        other.update_repo_settings(repo, private=False)
    fs = HfFileSystem(endpoint=hub.url, token=other_token, skip_instance_cache=True)
    with pytest.raises(FileNotFoundError):
        fs.ls(repo)
    assert other.repo_exists(repo) is False


def test_owner_reads_with_precise_errors(hub, private_repo, tmp_path):
    repo, token = private_repo["repo"], private_repo["token"]
    api = hub.api(token)
    path = hf_hub_download(repo, "secret.txt", endpoint=hub.url, token=token, cache_dir=tmp_path)
    assert Path(path).read_bytes() == b"classified\n"
    with pytest.raises(RevisionNotFoundError):
        api.model_info(repo, revision="ghost")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo, "secret.txt", revision="ghost", endpoint=hub.url, token=token, cache_dir=tmp_path)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo, "ghost.txt", endpoint=hub.url, token=token, cache_dir=tmp_path)
    # the missing file is remembered, pinned to the commit the server named
    sha = api.model_info(repo).sha
    assert (tmp_path / f"models--{repo.replace('/', '--')}" / ".no_exist" / sha / "ghost.txt").exists()


def test_read_token_cannot_write(hub, daemon, private_repo):
    _, read_token, _ = daemon.cli("token", "create", private_repo["owner"], "--scope", "read", "--name", unique("r"))
    reader = hub.api(read_token.strip())
    assert reader.list_repo_files(private_repo["repo"]) == [".gitattributes", "secret.txt"]
    assert reader.whoami()["auth"]["accessToken"]["role"] == "read"
    with pytest.raises(HfHubHTTPError) as exc:
        reader.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=private_repo["repo"])
    assert exc.value.response.status_code == 403


def test_regression_private_repos_never_listed_to_others(hub, private_repo):
    owner = private_repo["owner"]
    assert [m.id for m in hub.api(private_repo["token"]).list_models(author=owner)] == [private_repo["repo"]]
    assert list(hub.api(False).list_models(author=owner)) == []
    _, other_token = hub.user()
    assert list(hub.api(other_token).list_models(search=private_repo["repo"].split("/")[1])) == []


def test_bad_token_is_refused(hub, private_repo):
    with pytest.raises(HfHubHTTPError) as exc:
        hub.api("gitd_not-a-real-token").model_info(private_repo["repo"])
    assert exc.value.response.status_code == 401
