"""Auth and access over Smart HTTP (issue 2 §5), with the real git client where it can say it."""

from __future__ import annotations

import pytest

from tests.e2e.rawhttp import FLUSH, basic, bearer, request
from tests.support import unique, with_token


def _push(daemon, git, work, repo, token=None, **kw):
    url = daemon.repo_url(repo, token=token) if token else daemon.repo_url(repo)
    return git("push", url, "HEAD:refs/heads/main", cwd=work, check=False, **kw)


def _clone(daemon, git, repo, dest, token=None):
    url = daemon.repo_url(repo, token=token) if token else daemon.repo_url(repo)
    return git("clone", "-q", url, str(dest), check=False)


@pytest.fixture
def private_repo(daemon, git, tmp_path):
    owner, token = daemon.user()
    repo = daemon.repo(owner, private=True)
    work = git.init_work(tmp_path / "seed", {"secret.txt": "top secret\n"})
    assert _push(daemon, git, work, repo, token).returncode == 0
    return repo, owner, token, work


def test_basic_auth_takes_any_username_and_the_token_as_password(daemon, private_repo):
    repo, _, token, _ = private_repo
    target = f"/{repo}.git/info/refs?service=git-upload-pack"
    for user in ("anyone", "git", "x" * 50, ""):
        assert request(daemon.url, "GET", target, headers=basic(token, user)).status == 200, user
    # The token as the user name with an empty password works too (some tools send it so).
    assert request(daemon.url, "GET", target, headers=basic("", token)).status == 200
    assert request(daemon.url, "GET", target, headers=basic(token + "x")).status == 401


def test_bearer_token_for_clone_and_push(daemon, git, private_repo, tmp_path):
    repo, _, token, _ = private_repo
    header = ["-c", f"http.extraHeader=Authorization: Bearer {token}"]
    clone = tmp_path / "c"
    git(*header, "clone", "-q", daemon.repo_url(repo), str(clone))
    assert (clone / "secret.txt").read_text() == "top secret\n"
    new = git.commit(clone, {"more.txt": "x"})
    git(*header, "push", "-q", "origin", "main", cwd=clone)
    assert new in git.out("ls-remote", daemon.repo_url(repo, token=token))
    target = f"/{repo}.git/info/refs?service=git-receive-pack"
    assert request(daemon.url, "GET", target, headers=bearer(token)).status == 200
    assert request(daemon.url, "GET", target, headers=bearer("gitd_not-a-token")).status == 401
    assert request(daemon.url, "GET", target, headers={"Authorization": "Digest abc"}).status == 401


def test_anonymous_users_read_public_repos_but_cannot_push(daemon, git, tmp_path):
    owner, token = daemon.user()
    repo = daemon.repo(owner)
    work = git.init_work(tmp_path / "w")
    assert _push(daemon, git, work, repo, token).returncode == 0
    assert _clone(daemon, git, repo, tmp_path / "anon").returncode == 0
    anon_push = _push(daemon, git, work, repo)
    assert anon_push.returncode != 0 and b"could not read Username" in anon_push.stderr
    reply = request(daemon.url, "GET", f"/{repo}.git/info/refs?service=git-receive-pack")
    assert reply.status == 401 and reply.headers["www-authenticate"].startswith("Basic realm=")


def test_private_repo_answers_like_a_missing_one(daemon, private_repo):
    repo, owner, _, _ = private_repo
    _, stranger = daemon.user()
    missing = f"{owner}/{unique('missing')}"
    cases = [
        ("GET", "/info/refs?service=git-upload-pack", None, {}),
        ("GET", "/info/refs?service=git-receive-pack", None, {}),
        ("POST", "/git-upload-pack", FLUSH, {"Content-Type": "application/x-git-upload-pack-request"}),
        ("POST", "/git-receive-pack", FLUSH, {"Content-Type": "application/x-git-receive-pack-request"}),
    ]
    for method, tail, body, headers in cases:
        for who, auth, status in (("anonymous", {}, 401), ("stranger", basic(stranger), 404)):
            seen = []
            for name in (repo, missing):
                reply = request(daemon.url, method, f"/{name}.git{tail}", body=body, headers={**headers, **auth})
                seen.append((reply.status, reply.body, reply.headers.get("www-authenticate"),
                             reply.headers.get("content-type")))
            assert seen[0] == seen[1], (who, method, tail, seen)
            assert seen[0][0] == status, (who, method, tail, seen)
            if status == 401:
                assert seen[0][2] == 'Basic realm="gitd", charset="UTF-8"'


def test_git_asks_anonymous_users_for_credentials_and_tells_strangers_not_found(daemon, git, private_repo,
                                                                                 tmp_path):
    repo, _, _, _ = private_repo
    _, stranger = daemon.user()
    anon = _clone(daemon, git, repo, tmp_path / "a")
    assert anon.returncode != 0 and b"could not read Username" in anon.stderr
    other = _clone(daemon, git, repo, tmp_path / "b", token=stranger)
    assert other.returncode != 0 and b"not found" in other.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_push_without_write_access_is_403(daemon, git, tmp_path):
    owner, token = daemon.user()
    _, stranger = daemon.user()
    repo = daemon.repo(owner)
    work = git.init_work(tmp_path / "w")
    assert _push(daemon, git, work, repo, token).returncode == 0
    git.commit(work, {"evil.txt": "x"})
    denied = _push(daemon, git, work, repo, stranger)
    assert denied.returncode != 0 and b"403" in denied.stderr
    reply = request(daemon.url, "GET", f"/{repo}.git/info/refs?service=git-receive-pack", headers=basic(stranger))
    assert reply.status == 403 and b"write access" in reply.body


def test_read_scoped_token_cannot_push(daemon, git, tmp_path):
    owner, write_token = daemon.user()
    _, read_token, _ = daemon.cli("token", "create", owner, "--scope", "read", "--name", unique("ro"))
    read_token = read_token.strip()
    repo = daemon.repo(owner, private=True)
    work = git.init_work(tmp_path / "w")
    assert _push(daemon, git, work, repo, write_token).returncode == 0
    assert _clone(daemon, git, repo, tmp_path / "c", token=read_token).returncode == 0
    git.commit(work, {"b": "b"})
    denied = _push(daemon, git, work, repo, read_token)
    assert denied.returncode != 0 and b"403" in denied.stderr


def test_org_roles(daemon, git, tmp_path):
    founder, founder_token = daemon.user()
    org = unique("org")
    daemon.cli("org", "create", org, "--owner", founder)
    members = {}
    for role in ("read", "write", "admin"):
        name, token = daemon.user()
        daemon.cli("org", "add-member", org, name, "--role", role)
        members[role] = token
    _, outsider = daemon.user()
    repo = daemon.repo(org, private=True, repo_type="dataset")
    url = lambda token: daemon.repo_url(repo, token=token, repo_type="dataset")  # noqa: E731
    work = git.init_work(tmp_path / "w")
    git("push", url(founder_token), "main", cwd=work)  # the org's creator is an admin member

    for role, token in members.items():
        assert git("ls-remote", url(token), check=False).returncode == 0, role
        git.commit(work, {f"{role}.txt": role})
        pushed = git("push", url(token), "main", cwd=work, check=False)
        if role == "read":
            assert pushed.returncode != 0 and b"403" in pushed.stderr
            git("reset", "-q", "--hard", "HEAD~1", cwd=work)
        else:
            assert pushed.returncode == 0, (role, pushed.stderr)
    denied = git("ls-remote", url(outsider), check=False)
    assert denied.returncode != 0 and b"not found" in denied.stderr

    # Membership changes apply to the next request.
    name, token = daemon.user()
    assert git("ls-remote", url(token), check=False).returncode != 0
    daemon.cli("org", "add-member", org, name, "--role", "read")
    assert git("ls-remote", url(token), check=False).returncode == 0
    daemon.cli("org", "remove-member", org, name)
    assert git("ls-remote", url(token), check=False).returncode != 0


def test_site_admin_may_do_anything(daemon, git, private_repo, tmp_path):
    repo, _, _, _ = private_repo
    _, admin_token = daemon.user(admin=True)
    clone = tmp_path / "c"
    assert _clone(daemon, git, repo, clone, token=admin_token).returncode == 0
    git.commit(clone, {"admin.txt": "was here"})
    assert git("push", with_token(daemon.repo_url(repo), admin_token), "main", cwd=clone,
               check=False).returncode == 0


def test_revoked_token_stops_working_at_once(daemon, git, tmp_path):
    owner, _ = daemon.user()
    name = unique("tok")
    _, token, _ = daemon.cli("token", "create", owner, "--name", name)
    token = token.strip()
    repo = daemon.repo(owner, private=True)
    assert git("ls-remote", daemon.repo_url(repo, token=token), check=False).returncode == 0
    daemon.cli("token", "revoke", owner, name)
    after = git("ls-remote", daemon.repo_url(repo, token=token), check=False)
    assert after.returncode != 0 and b"Authentication failed" in after.stderr
    reply = request(daemon.url, "GET", f"/{repo}.git/info/refs?service=git-upload-pack", headers=basic(token))
    assert reply.status == 401


def test_visibility_changes_apply_to_the_next_request(daemon, git, private_repo, tmp_path):
    repo, _, _, _ = private_repo
    assert git("ls-remote", daemon.repo_url(repo), check=False).returncode != 0
    daemon.cli("repo", "set", repo, "--public")
    assert git("ls-remote", daemon.repo_url(repo), check=False).returncode == 0
    daemon.cli("repo", "set", repo, "--private")
    assert git("ls-remote", daemon.repo_url(repo), check=False).returncode != 0
