"""The resolve fast path caches repository, token and branch lookups; every change must be seen by the
very next request, whoever made it (the daemon itself, the gitd command in another process, a git push)."""

from __future__ import annotations

import time
from http.client import HTTPConnection
from urllib.parse import urlsplit

from gitd.hub.gitread import RACY_NS
from tests.support import unique


def head(url: str, path: str, token: str | None = None) -> tuple[int, dict[str, str]]:
    conn = HTTPConnection("127.0.0.1", urlsplit(url).port, timeout=30)
    try:
        conn.request("HEAD", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        resp = conn.getresponse()
        resp.read()
        return resp.status, dict(resp.headers)
    finally:
        conn.close()


def cached_commit(url: str, path: str) -> str:
    """X-Repo-Commit once the ref file is old enough for the ref cache to keep it (see RACY_NS),
    so that the next change is only seen if the cache is told about it."""
    time.sleep(RACY_NS / 1e9 * 2)
    commits = {head(url, path)[1]["X-Repo-Commit"] for _ in range(3)}
    assert len(commits) == 1
    return commits.pop()


def test_regression_cached_lookups_see_every_change_at_once(hub, daemon, git, tmp_path):
    user, token = hub.user()
    api = hub.api(token)
    repo_id = api.create_repo(f"{user}/{unique('fast')}").repo_id
    first = api.upload_file(path_or_fileobj=b"one\n", path_in_repo="f.txt", repo_id=repo_id).oid
    path = f"/{repo_id}/resolve/main/f.txt"
    for _ in range(3):  # warm every cache
        assert head(hub.url, path)[0] == 200 and head(hub.url, path, token)[0] == 200

    api.update_repo_settings(repo_id, private=True)  # written by the daemon itself
    status, headers = head(hub.url, path)
    assert status == 401 and headers["X-Error-Code"] == "RepoNotFound"
    daemon.cli("repo", "set", repo_id, "--public")  # written by another process
    assert head(hub.url, path)[0] == 200

    name = unique("tok")
    _, extra, _ = daemon.cli("token", "create", user, "--name", name)
    assert head(hub.url, path, extra.strip())[0] == 200
    daemon.cli("token", "revoke", user, name)
    status, headers = head(hub.url, path, extra.strip())
    assert status == 401

    assert cached_commit(hub.url, path) == first
    second = api.upload_file(path_or_fileobj=b"two\n", path_in_repo="f.txt", repo_id=repo_id).oid
    assert head(hub.url, path)[1]["X-Repo-Commit"] == second
    work = tmp_path / "w"
    git("clone", "-q", daemon.repo_url(repo_id, token=token), str(work))
    assert cached_commit(hub.url, path) == second
    third = git.commit(work, {"f.txt": b"three\n"})
    git("push", "-q", "origin", "main", cwd=work)
    assert head(hub.url, path)[1]["X-Repo-Commit"] == third
    dev = f"/{repo_id}/resolve/dev/f.txt"
    assert head(hub.url, dev)[1]["X-Error-Code"] == "RevisionNotFound"
    git("push", "-q", "origin", f"{first}:refs/heads/dev", cwd=work)
    assert head(hub.url, dev)[1]["X-Repo-Commit"] == first
    assert cached_commit(hub.url, dev) == first
    git("push", "-q", "origin", ":dev", cwd=work)
    assert head(hub.url, dev)[1]["X-Error-Code"] == "RevisionNotFound"


def test_regression_org_membership_changes_are_seen_at_once(daemon):
    """Org roles are cached per request path too: removing a member locks them out on the next request."""
    owner, _ = daemon.user()
    member, token = daemon.user()
    org = unique("org")
    daemon.cli("org", "create", org, "--owner", owner)
    full = daemon.repo(org, private=True)
    path = f"/{full}/resolve/main/README.md"
    assert head(daemon.url, path, token)[1]["X-Error-Code"] == "RepoNotFound"
    daemon.cli("org", "add-member", org, member, "--role", "read")
    assert head(daemon.url, path, token)[1]["X-Error-Code"] != "RepoNotFound"  # readable; the repo is empty
    for _ in range(3):
        head(daemon.url, path, token)
    daemon.cli("org", "remove-member", org, member)
    status, headers = head(daemon.url, path, token)
    assert status == 404 and headers["X-Error-Code"] == "RepoNotFound"


def test_regression_pushes_are_seen_at_once_with_hooks_off(make_daemon, git, tmp_path):
    """With hooks off no post-receive call reaches the daemon; the git runner itself tells the
    ref cache that refs may have moved, before the pusher hears back."""
    d = make_daemon({"hooks.enabled": False})
    user, token = d.user()
    full = d.repo(user)
    work = tmp_path / "w"
    git("init", "-q", "-b", "main", str(work))
    git("remote", "add", "origin", d.repo_url(full, token=token), cwd=work)
    path = f"/{full}/resolve/main/f.txt"
    for i in range(4):
        sha = git.commit(work, {"f.txt": f"{i}\n".encode()})
        git("push", "-q", "origin", "main", cwd=work)
        assert head(d.url, path)[1]["X-Repo-Commit"] == sha
        assert cached_commit(d.url, path) == sha
