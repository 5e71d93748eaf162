"""Discussions and pull requests whole, with the stock huggingface_hub 2.4 client and the `hf`
CLI: any signed-in reader of a public repository opens discussions and pull requests and
comments; authors edit their comments, close, reopen and rename; only writers merge. A
private repository's discussions are 404 to everyone else on every route."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from tests.support import unique


def status_of(exc: pytest.ExceptionInfo[HfHubHTTPError]) -> int:
    return exc.value.response.status_code


def test_the_community_workflow_on_a_public_repository(hub, tmp_path):
    owner, owner_token = hub.user()
    _, reader_token = hub.user()
    _, stranger_token = hub.user()
    api, reader, stranger = hub.api(owner_token), hub.api(reader_token), hub.api(stranger_token)
    repo = f"{owner}/{unique('comm')}"
    api.create_repo(repo)
    api.upload_file(path_or_fileobj=b"v1\n", path_in_repo="f.txt", repo_id=repo)

    # A reader opens a discussion, comments, edits the comment, renames, closes and reopens it.
    d = reader.create_discussion(repo, "Question about f", description="What is in f?")
    assert d.status == "open" and not d.is_pull_request
    comment = reader.comment_discussion(repo, d.num, "first try")
    edited = reader.edit_discussion_comment(repo, d.num, comment.id, "second try")
    assert edited.content == "second try" and edited.edited
    with pytest.raises(HfHubHTTPError) as exc:
        api.edit_discussion_comment(repo, d.num, comment.id, "not yours")  # even the owner may not
    assert status_of(exc) == 403
    with pytest.raises(HfHubHTTPError) as exc:
        stranger.change_discussion_status(repo, d.num, "closed")
    assert status_of(exc) == 403
    with pytest.raises(HfHubHTTPError) as exc:
        stranger.rename_discussion(repo, d.num, "hijacked")
    assert status_of(exc) == 403
    assert reader.rename_discussion(repo, d.num, "About f.txt").new_title == "About f.txt"
    assert reader.change_discussion_status(repo, d.num, "closed", comment="answered").new_status == "closed"
    assert api.change_discussion_status(repo, d.num, "open").new_status == "open"  # writers may too
    hidden = api.hide_discussion_comment(repo, d.num, comment.id)
    assert hidden.hidden and hidden.content == ""
    details = api.get_discussion_details(repo, d.num)
    assert details.title == "About f.txt" and details.status == "open"
    assert [e.type for e in details.events] == ["comment", "comment", "title-change", "comment",
                                                "status-change", "status-change"]
    assert details.events[0].content == "What is in f?" and details.events[3].content == "answered"
    with pytest.raises(HfHubHTTPError) as exc:
        api.merge_pull_request(repo, d.num)  # a discussion is not a pull request
    assert status_of(exc) == 400

    # A reader proposes a change: a pull request with a commit, then more commits on refs/pr/N.
    pr = reader.create_commit(repo, operations=[CommitOperationAdd("f.txt", b"v2\n")],
                              commit_message="Update f", create_pr=True)
    num = pr.pr_num
    reader.upload_file(path_or_fileobj=b"new\n", path_in_repo="g.txt", repo_id=repo, revision=pr.pr_revision)
    with pytest.raises(HfHubHTTPError) as exc:
        stranger.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo, revision=pr.pr_revision)
    assert status_of(exc) == 403
    with pytest.raises(HfHubHTTPError) as exc:
        reader.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo)  # main stays the writers'
    assert status_of(exc) == 403
    with pytest.raises(HfHubHTTPError) as exc:
        reader.merge_pull_request(repo, num)
    assert status_of(exc) == 403
    assert "+new" in api.get_discussion_details(repo, num).diff
    api.merge_pull_request(repo, num, comment="thanks!")
    merged = api.get_discussion_details(repo, num)
    assert merged.status == "merged" and merged.merge_commit_oid == api.model_info(repo).sha
    assert api.list_repo_files(repo) == [".gitattributes", "f.txt", "g.txt"]
    assert Path(hf_hub_download(repo, "f.txt", cache_dir=tmp_path)).read_bytes() == b"v2\n"
    with pytest.raises(HfHubHTTPError) as exc:
        api.change_discussion_status(repo, num, "open")
    assert status_of(exc) == 400
    assert [(x.num, x.status) for x in api.get_repo_discussions(repo)] == [(num, "merged"), (d.num, "open")]
    assert [x.num for x in api.get_repo_discussions(repo, discussion_status="closed")] == [num]

    # An empty pull request from create_pull_request, closed by its author.
    empty = reader.create_pull_request(repo, "Nothing yet")
    with pytest.raises(HfHubHTTPError) as exc:
        api.merge_pull_request(repo, empty.num)
    assert status_of(exc) == 400 and "no changes" in str(exc.value)
    reader.change_discussion_status(repo, empty.num, "closed")

    # Read-only tokens and anonymous callers read but do not post.
    _, read_only = hub.daemon.user(scope="read")
    with pytest.raises(HfHubHTTPError) as exc:
        hub.api(read_only).comment_discussion(repo, d.num, "hello")
    assert status_of(exc) == 403
    with pytest.raises(HfHubHTTPError) as exc:
        hub.api().create_discussion(repo, "anonymous")
    assert status_of(exc) == 401
    assert hub.api().get_discussion_details(repo, d.num).num == d.num


def test_regression_a_private_repositorys_discussions_are_not_found_to_non_readers(hub):
    owner, token = hub.user()
    _, other_token = hub.user()
    api = hub.api(token)
    repo = f"{owner}/{unique('pdisc')}"
    api.create_repo(repo, repo_type="dataset", private=True)
    d = api.create_discussion(repo, "Internal", repo_type="dataset")
    pr = api.create_commit(repo, repo_type="dataset", operations=[CommitOperationAdd("a.txt", b"a")],
                           commit_message="add", create_pr=True)
    comment = api.comment_discussion(repo, d.num, "note", repo_type="dataset")
    for caller in (hub.api(other_token), hub.api()):
        calls = [
            lambda c: list(c.get_repo_discussions(repo, repo_type="dataset")),
            lambda c: c.get_discussion_details(repo, d.num, repo_type="dataset"),
            lambda c: c.create_discussion(repo, "Let me in", repo_type="dataset"),
            lambda c: c.comment_discussion(repo, d.num, "hi", repo_type="dataset"),
            lambda c: c.edit_discussion_comment(repo, d.num, comment.id, "x", repo_type="dataset"),
            lambda c: c.hide_discussion_comment(repo, d.num, comment.id, repo_type="dataset"),
            lambda c: c.change_discussion_status(repo, d.num, "closed", repo_type="dataset"),
            lambda c: c.rename_discussion(repo, d.num, "renamed", repo_type="dataset"),
            lambda c: c.merge_pull_request(repo, pr.pr_num, repo_type="dataset"),
            lambda c: c.create_commit(repo, repo_type="dataset", operations=[CommitOperationAdd("b", b"b")],
                                         commit_message="sneak", create_pr=True),
        ]
        for i, call in enumerate(calls):
            with pytest.raises(RepositoryNotFoundError):
                call(caller)
                pytest.fail(f"call {i} succeeded")
    assert api.get_discussion_details(repo, d.num, repo_type="dataset").status == "open"
    assert [x.num for x in api.get_repo_discussions(repo, repo_type="dataset")] == [pr.pr_num, d.num]


def hf(hub, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_TOKEN": token, "HF_HOME": str(hub.home),
           "HF_HUB_DISABLE_XET": "1", "NO_COLOR": "1"}
    env.pop("HF_HUB_DISABLE_IMPLICIT_TOKEN", None)
    done = subprocess.run([str(Path(sys.executable).parent / "hf"), *args], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


def test_the_hf_cli_discussions_commands(hub):
    owner, token = hub.user()
    api = hub.api(token)
    repo = f"{owner}/{unique('cli')}"
    api.create_repo(repo, repo_type="dataset")
    api.upload_file(path_or_fileobj=b"a\n", path_in_repo="a.txt", repo_id=repo, repo_type="dataset")
    t = ("--type", "dataset")
    hf(hub, token, "discussions", "create", repo, "--title", "A question", "--body", "why?", *t)
    pr = api.create_commit(repo, repo_type="dataset", operations=[CommitOperationAdd("b.txt", b"b\n")],
                           commit_message="add b", create_pr=True)
    hf(hub, token, "discussions", "comment", repo, "1", "--body", "because", *t)
    info = json.loads(hf(hub, token, "discussions", "info", repo, "1", "--format", "json", *t).stdout)
    comment_id = next(e["id"] for e in info["events"] if e.get("content") == "because" or
                      e.get("data", {}).get("latest", {}).get("raw") == "because")
    hf(hub, token, "discussions", "edit", repo, "1", comment_id, "--body", "because!", *t)
    hf(hub, token, "discussions", "rename", repo, "1", "A better question", *t)
    hf(hub, token, "discussions", "close", repo, "1", "--yes", *t)
    hf(hub, token, "discussions", "reopen", repo, "1", "--yes", *t)
    assert "+b" in hf(hub, token, "discussions", "diff", repo, str(pr.pr_num), *t).stdout
    hf(hub, token, "discussions", "merge", repo, str(pr.pr_num), "--yes", *t)
    listed = hf(hub, token, "discussions", "list", repo, "--status", "all", "--format", "json", *t).stdout
    assert sorted((x["num"], x["status"]) for x in json.loads(listed)) == [(1, "open"), (pr.pr_num, "merged")]
    details = api.get_discussion_details(repo, 1, repo_type="dataset")
    assert details.title == "A better question"
    assert [e.content for e in details.events if e.type == "comment"] == ["why?", "because!"]
    assert api.list_repo_files(repo, repo_type="dataset") == [".gitattributes", "a.txt", "b.txt"]
