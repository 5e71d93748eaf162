"""Gated repositories with the stock huggingface_hub 2.4 client: update_repo_settings(gated=...),
access requests (ask, list, accept, reject, cancel, grant), auth_check, and downloads refused
on every transport (resolve, git) until the gate lets the caller in."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

from tests.e2e.hook_helpers import wait_for
from tests.support import unique


def ask_access(hub, repo: str, token: str | None, *, repo_type: str = "model") -> tuple[int, dict]:
    """The Hub's gate form has no huggingface_hub call: a plain POST, as the web page sends."""
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    req = urllib.request.Request(f"{hub.url}/api/{repo_type}s/{repo}/ask-access", method="POST",
                                 data=json.dumps({"fields": {"purpose": "research"}}).encode(), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def can_download(hub, repo: str, token: str | None, tmp_path: Path) -> bool:
    try:
        hf_hub_download(repo, "w.bin", token=token or False, cache_dir=tmp_path / unique("c"))
    except GatedRepoError:
        return False
    return True


def test_a_gated_repository_lets_in_only_whom_it_accepted(hub, git, tmp_path):
    owner, token = hub.user()
    reader, reader_token = hub.user()
    other, other_token = hub.user()
    api = hub.api(token)
    repo = f"{owner}/{unique('gate')}"
    api.create_repo(repo)
    api.upload_file(path_or_fileobj=b"\x00weights", path_in_repo="w.bin", repo_id=repo)
    api.update_repo_settings(repo, gated="manual")
    assert api.model_info(repo).gated == "manual"

    # What the Hub shows of a gated repository to all stays visible; its files do not.
    r_api = hub.api(reader_token)
    assert r_api.model_info(repo).gated == "manual" and r_api.repo_exists(repo)
    assert r_api.list_repo_files(repo) == [".gitattributes", "w.bin"]  # the file list is public, as on the Hub
    assert not can_download(hub, repo, reader_token, tmp_path) and not can_download(hub, repo, None, tmp_path)
    with pytest.raises(GatedRepoError):
        r_api.auth_check(repo)
    with pytest.raises(GatedRepoError) as anon:
        hub.api().auth_check(repo)
    assert anon.value.response.status_code == 401
    clone = git("clone", "-q", hub.daemon.repo_url(repo, token=reader_token), str(tmp_path / "c1"), check=False)
    assert clone.returncode != 0
    api.auth_check(repo)  # the owner always may
    with pytest.raises(HfHubHTTPError) as exc:
        list(r_api.list_pending_access_requests(repo))  # only writers see the requests
    assert exc.value.response.status_code == 403

    # manual: the request waits until a writer accepts it.
    assert ask_access(hub, repo, reader_token)[1]["status"] == "pending"
    assert ask_access(hub, repo, None)[0] == 401
    pending = list(api.list_pending_access_requests(repo))
    assert [(r.username, r.status, r.fields) for r in pending] == [(reader, "pending", {"purpose": "research"})]
    assert not can_download(hub, repo, reader_token, tmp_path)
    api.accept_access_request(repo, reader)
    assert can_download(hub, repo, reader_token, tmp_path)
    r_api.auth_check(repo)
    git("clone", "-q", hub.daemon.repo_url(repo, token=reader_token), str(tmp_path / "c2"))
    assert [r.username for r in api.list_accepted_access_requests(repo)] == [reader]

    # Cancel (back to pending) and reject take access away again; grant lets in someone unasked.
    api.cancel_access_request(repo, reader)
    assert not can_download(hub, repo, reader_token, tmp_path)
    api.reject_access_request(repo, reader, rejection_reason="not now")
    assert [r.username for r in api.list_rejected_access_requests(repo)] == [reader]
    assert ask_access(hub, repo, reader_token)[1]["status"] == "rejected"  # asking again changes nothing
    assert not can_download(hub, repo, reader_token, tmp_path)
    with pytest.raises(HfHubHTTPError) as exc:
        api.accept_access_request(repo, other)  # never asked
    assert exc.value.response.status_code == 404
    api.grant_access(repo, other)
    assert can_download(hub, repo, other_token, tmp_path)
    with pytest.raises(HfHubHTTPError) as exc:
        api.grant_access(repo, other)
    assert exc.value.response.status_code == 400

    # auto: asking is enough. Ungating opens the files to all.
    api.update_repo_settings(repo, gated="auto")
    _late, late_token = hub.user()
    assert ask_access(hub, repo, late_token)[1]["status"] == "accepted"
    assert can_download(hub, repo, late_token, tmp_path)
    api.update_repo_settings(repo, gated=False)
    assert api.model_info(repo).gated is False
    assert can_download(hub, repo, reader_token, tmp_path) and can_download(hub, repo, None, tmp_path)
    assert ask_access(hub, repo, reader_token)[0] == 400  # not gated


def test_regression_a_private_gated_repository_is_not_found_to_non_readers(hub):
    owner, token = hub.user()
    other, other_token = hub.user()
    api = hub.api(token)
    repo = f"{owner}/{unique('pgate')}"
    api.create_repo(repo, repo_type="dataset", private=True)
    api.update_repo_settings(repo, gated="auto", repo_type="dataset")
    for caller in (hub.api(other_token), hub.api()):
        for call in (lambda c: c.auth_check(repo, repo_type="dataset"),
                     lambda c: list(c.list_pending_access_requests(repo, repo_type="dataset")),
                     lambda c: c.accept_access_request(repo, other, repo_type="dataset"),
                     lambda c: c.grant_access(repo, other, repo_type="dataset"),
                     lambda c: c.update_repo_settings(repo, gated=False, repo_type="dataset")):
            with pytest.raises(RepositoryNotFoundError):
                call(caller)
    assert ask_access(hub, repo, other_token, repo_type="dataset")[0] == 404
    assert ask_access(hub, repo, None, repo_type="dataset")[0] == 401
    assert list(api.list_pending_access_requests(repo, repo_type="dataset")) == []


def test_listings_filter_by_gate(hub):
    """list_models(gated=True|False): only gated, or only open, repositories (alone and with tag filters)."""
    owner, token = hub.user()
    api = hub.api(token)
    repo, open_repo = f"{owner}/{unique('gate')}", f"{owner}/{unique('open')}"
    card = b"---\ntags:\n- gate-test\n---\n"
    for r in (repo, open_repo):
        api.create_repo(r)
        api.upload_file(path_or_fileobj=card, path_in_repo="README.md", repo_id=r)
    api.update_repo_settings(repo, gated="auto")
    assert [m.id for m in hub.api().list_models(author=owner, gated=True)] == [repo]
    assert [m.id for m in hub.api().list_models(author=owner, gated=False)] == [open_repo]
    tagged = sorted([repo, open_repo])
    wait_for(lambda: sorted(m.id for m in hub.api().list_models(author=owner, filter="gate-test")) == tagged,
             what="both cards' tags listed")  # the metadata plugin reads cards in jobs
    assert [m.id for m in hub.api().list_models(author=owner, filter="gate-test", gated=True)] == [repo]
    with pytest.raises(HfHubHTTPError) as exc:
        list(hub.api().list_datasets(gated="sometimes"))  # type: ignore[arg-type]
    assert exc.value.response.status_code == 400
