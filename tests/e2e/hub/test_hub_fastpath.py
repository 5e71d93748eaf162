"""The resolve fast path caches repository, token and branch lookups; every change must be seen by the
very next request, whoever made it (the daemon itself, the gitd command in another process, a git push)."""

from __future__ import annotations

from http.client import HTTPConnection
from urllib.parse import urlsplit

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

    assert head(hub.url, path)[1]["X-Repo-Commit"] == first
    second = api.upload_file(path_or_fileobj=b"two\n", path_in_repo="f.txt", repo_id=repo_id).oid
    assert head(hub.url, path)[1]["X-Repo-Commit"] == second
    work = tmp_path / "w"
    git("clone", "-q", daemon.repo_url(repo_id, token=token), str(work))
    third = git.commit(work, {"f.txt": b"three\n"})
    git("push", "-q", "origin", "main", cwd=work)
    assert head(hub.url, path)[1]["X-Repo-Commit"] == third
    dev = f"/{repo_id}/resolve/dev/f.txt"
    assert head(hub.url, dev)[1]["X-Error-Code"] == "RevisionNotFound"
    git("push", "-q", "origin", f"{first}:refs/heads/dev", cwd=work)
    assert head(hub.url, dev)[1]["X-Repo-Commit"] == first
    git("push", "-q", "origin", ":dev", cwd=work)
    assert head(hub.url, dev)[1]["X-Error-Code"] == "RevisionNotFound"
