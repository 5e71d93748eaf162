"""Edges the stock huggingface_hub 2.4 client meets: ids without a namespace, X-Request-Id,
and settings the server does not keep (refused, never silently ignored; gating is
tests/e2e/hub/test_hub_gating.py)."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from tests.support import unique


def call(url: str, method: str, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request(method, path, headers=headers or {})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


@pytest.mark.parametrize("repo_type", ["model", "dataset", "space"])
def test_ids_without_a_namespace_are_not_found(hub, repo_type, tmp_path):
    _, token = hub.user()
    for api in (hub.api(token), hub.api()):
        assert api.repo_exists("gpt2", repo_type=repo_type) is False
        assert api.file_exists("gpt2", "config.json", repo_type=repo_type) is False
        assert api.revision_exists("gpt2", "main", repo_type=repo_type) is False
        with pytest.raises(RepositoryNotFoundError):
            api.repo_info("gpt2", repo_type=repo_type, revision="main")
        with pytest.raises(RepositoryNotFoundError):
            api.list_repo_refs("gpt2", repo_type=repo_type)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("gpt2", "config.json", repo_type=repo_type, cache_dir=tmp_path)
    prefix = "" if repo_type == "model" else f"{repo_type}s/"
    for method in ("GET", "HEAD", "POST"):
        for path in (f"/api/{repo_type}s/gpt2", f"/api/{repo_type}s/gpt2/revision/main",
                     f"/api/{repo_type}s/gpt2/tree/main", f"/{prefix}gpt2/resolve/main/config.json"):
            resp = call(hub.url, method, path)
            assert resp.status in (401, 404) and resp.headers["X-Error-Code"] == "RepoNotFound", (method, path)


def test_x_request_id_is_echoed(hub):
    resp = call(hub.url, "GET", "/api/models/nobody/nothing", {"X-Amzn-Trace-Id": "trace-123"})
    assert resp.status in (401, 404) and resp.headers["X-Request-Id"] == "trace-123"
    assert call(hub.url, "GET", "/healthz", {"X-Request-Id": "abc.def"}).headers["X-Request-Id"] == "abc.def"
    fresh = call(hub.url, "GET", "/healthz", {"X-Request-Id": "bad id\twith spaces"}).headers["X-Request-Id"]
    assert fresh and " " not in fresh and fresh != call(hub.url, "GET", "/healthz").headers["X-Request-Id"]
    user, token = hub.user()
    with pytest.raises(RepositoryNotFoundError) as exc:
        hub.api(token).model_info(f"{user}/{unique('none')}")
    assert exc.value.request_id  # the client quotes it


def test_unknown_settings_are_refused(hub):
    user, token = hub.user()
    api = hub.api(token)
    repo = f"{user}/{unique('g')}"
    api.create_repo(repo)
    assert api.model_info(repo).gated is False
    api.update_repo_settings(repo, gated=False, private=True)  # what it keeps still works
    assert api.model_info(repo).private is True
    # The client sends only the keys it knows; a raw request with another is refused by name.
    req = urllib.request.Request(f"{hub.url}/api/models/{repo}/settings", method="PUT",
                                 data=json.dumps({"discussionsDisabled": True}).encode(),
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as raw:
        urllib.request.urlopen(req, timeout=30)
    assert raw.value.code == 400 and b"discussionsDisabled" in raw.value.read()
    req.data = json.dumps({"gated": "sometimes"}).encode()
    with pytest.raises(urllib.error.HTTPError) as raw:
        urllib.request.urlopen(req, timeout=30)
    assert raw.value.code == 400 and b"gated must be" in raw.value.read()


def test_unsupported_create_repo_parameters_are_refused(hub):
    user, token = hub.user()
    api = hub.api(token)
    for kwargs, named in (({"repo_type": "space", "space_sdk": "gradio", "space_hardware": "t4-small"}, "hardware"),
                          ({"repo_type": "space", "space_sdk": "docker", "space_secrets": [{"key": "K", "value": "v"}]},
                           "secrets"),
                          ({"resource_group_id": "0" * 24}, "resourceGroupId")):
        repo = f"{user}/{unique('np')}"
        with pytest.raises(HfHubHTTPError) as exc:
            api.create_repo(repo, **kwargs)
        assert exc.value.response.status_code == 400 and named in str(exc.value)
        assert not api.repo_exists(repo, repo_type=kwargs.get("repo_type", "model"))


def test_unsupported_listing_filters_are_refused(hub):
    api = hub.api()
    for kwargs in ({"inference": "warm"}, {"apps": ["llama.cpp"]}):
        with pytest.raises(HfHubHTTPError) as exc:
            list(api.list_models(limit=5, **kwargs))
        assert exc.value.response.status_code == 400 and next(iter(kwargs)) in str(exc.value)
    with pytest.raises(HfHubHTTPError) as exc:
        list(api.list_models(num_parameters="min:6B", limit=5))
    assert exc.value.response.status_code == 400 and "num_parameters" in str(exc.value)
    for kwargs in ({"linked": True}, {"models": "a/b"}, {"datasets": "a/b"}):
        with pytest.raises(HfHubHTTPError) as exc:
            list(api.list_spaces(limit=5, **kwargs))
        assert exc.value.response.status_code == 400 and next(iter(kwargs)) in str(exc.value)
    assert isinstance(list(api.list_models(limit=1)), list)
    assert isinstance(list(api.list_models(limit=1, fetch_config=True)), list)  # served: the metadata plugin's


def test_unsupported_repository_info_parameters_are_refused(hub):
    """model_info(securityStatus=True) asks for a security scan gitd does not make: 400 naming it;
    files_metadata=True (blobs) is served (every sibling carries its size, blob id and LFS fields)."""
    user, token = hub.user()
    api = hub.api(token)
    repo = f"{user}/{unique('info')}"
    api.create_repo(repo)
    with pytest.raises(HfHubHTTPError) as exc:
        api.model_info(repo, securityStatus=True)
    assert exc.value.response.status_code == 400 and "securityStatus" in str(exc.value)
    assert exc.value.response.headers["X-Error-Code"] == "UnsupportedParameter"
    (sibling,) = api.model_info(repo, files_metadata=True).siblings
    assert sibling.rfilename == ".gitattributes" and sibling.size > 0 and sibling.blob_id
    # expand: the Hub's properties for the type, else 400 naming the value (on info and listings).
    for call in (lambda: api.model_info(repo, expand=["likes", "nope"]),
                 lambda: list(api.list_models(author=user, expand=["nope"])),
                 lambda: list(api.list_datasets(author=user, expand=["safetensors"]))):  # a model property
        with pytest.raises(HfHubHTTPError) as exc:
            call()
        assert exc.value.response.status_code == 400 and "not supported" in str(exc.value)
    (listed,) = api.list_models(author=user, expand=["likes", "private", "trendingScore"])
    assert listed.id == repo and listed.likes == 0 and listed.private is False and listed.trending_score is None


def test_short_commit_shas_are_revisions(hub, tmp_path):
    user, token = hub.user()
    api = hub.api(token)
    repo = f"{user}/{unique('short')}"
    api.create_repo(repo)
    api.upload_file(path_or_fileobj=b"one", path_in_repo="f.txt", repo_id=repo)
    first = api.model_info(repo).sha
    api.upload_file(path_or_fileobj=b"two", path_in_repo="f.txt", repo_id=repo)
    short = first[:7]
    assert api.model_info(repo, revision=short).sha == first
    assert Path(hf_hub_download(repo, "f.txt", revision=short, token=token, cache_dir=tmp_path)).read_bytes() == b"one"
    assert [e.path for e in api.list_repo_tree(repo, revision=short)] == [".gitattributes", "f.txt"]
    assert api.revision_exists(repo, "0000000") is False


def test_conflicts_and_misses_answer_the_hubs_status_codes(hub):
    """What huggingface_hub maps to its exceptions: 409 for an existing branch or tag (exist_ok
    relies on it), 404 RevisionNotFound/EntryNotFound for missing revisions and files (412 for a
    stale parent_commit: test_hub_client.py::test_delete_file_and_parent_commit)."""
    from huggingface_hub.errors import EntryNotFoundError, RevisionNotFoundError

    user, token = hub.user()
    api = hub.api(token)
    repo = f"{user}/{unique('codes')}"
    api.create_repo(repo)
    api.create_branch(repo, branch="b")
    api.create_tag(repo, tag="t")
    for call in (lambda: api.create_branch(repo, branch="b"), lambda: api.create_tag(repo, tag="t")):
        with pytest.raises(HfHubHTTPError) as exc:
            call()
        assert exc.value.response.status_code == 409
    api.create_branch(repo, branch="b", exist_ok=True)
    api.create_tag(repo, tag="t", exist_ok=True)
    for call in (lambda: api.model_info(repo, revision="nope"),
                 lambda: api.upload_file(path_or_fileobj=b"x", path_in_repo="x", repo_id=repo, revision="nope")):
        with pytest.raises(RevisionNotFoundError):
            call()
    with pytest.raises(EntryNotFoundError) as missing:
        api.delete_file("nope.txt", repo)
    assert "A file with this name doesn't exist" in str(missing.value)  # the client adds its hint on this text
    for call in (lambda: api.delete_branch(repo, branch="nob"), lambda: api.delete_tag(repo, tag="not")):
        with pytest.raises(RevisionNotFoundError):
            call()


def test_bad_paths_are_400_and_the_default_branch_stays(hub):
    """Paths the client lets through but a tree cannot hold: 400 (BadRequestError) naming the path,
    and nothing committed; deleting the default branch is 403."""
    from huggingface_hub import CommitOperationAdd
    from huggingface_hub.errors import BadRequestError

    user, token = hub.user()
    api = hub.api(token)
    repo = f"{user}/{unique('paths')}"
    api.create_repo(repo)
    api.upload_file(path_or_fileobj=b"x", path_in_repo="dir/x.txt", repo_id=repo)
    head = api.model_info(repo).sha
    for path in ("dir", "dir/x.txt/below", "a//b", "a/./b"):
        with pytest.raises(BadRequestError) as exc:
            api.create_commit(repo, operations=[CommitOperationAdd(path, b"y")], commit_message="bad")
        assert exc.value.response.status_code == 400 and path in str(exc.value)
    assert api.model_info(repo).sha == head
    with pytest.raises(HfHubHTTPError) as exc:
        api.delete_branch(repo, branch="main")
    assert exc.value.response.status_code == 403
    assert [b.name for b in api.list_repo_refs(repo).branches] == ["main"]
