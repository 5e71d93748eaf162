"""The signed bearers the LFS batch API and ``git-lfs-authenticate`` hand out live only as
long as the credential they were minted for: revoking the API token (or removing the SSH
key) ends them and every bearer minted from them, and a bearer never mints a longer one.
With the real git and git-lfs clients and by hand."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from gitd.access.auth import SIGNED_PREFIX, _unb64
from tests.e2e.sshclient import SSHUsers, stderr
from tests.lfs_support import LfsClient, http, lfs_git, lfs_work, random_bytes, sha256
from tests.support import Daemon, Git, unique


@pytest.fixture
def ssh_user(daemon, tmp_path) -> SSHUsers:
    return SSHUsers(daemon, tmp_path)


def claims(bearer: str) -> dict:
    return json.loads(_unb64(bearer[len(SIGNED_PREFIX):].split(".")[0]))


def upload_action(client: LfsClient) -> tuple[str, dict, bytes]:
    """Ask the batch API to upload a new object: (the action's bearer, the action, the bytes)."""
    data = random_bytes(1000)
    answer = client.batch("upload", [(sha256(data), len(data))])
    assert answer.status == 200, answer.body
    action = answer.json()["objects"][0]["actions"]["upload"]
    return action["header"]["Authorization"].removeprefix("Bearer "), action, data


def push_with(git: Git, bearer: str, url: str, work: Path) -> subprocess.CompletedProcess:
    """git push (objects through git-lfs) with nothing but ``bearer`` as the credential."""
    return git("-c", f"http.extraHeader=Authorization: Bearer {bearer}", "push", "-q", url, "main", cwd=work,
               check=False)


def remote_head(git: Git, d: Daemon, repo: str, token: str) -> str:
    return git.out("ls-remote", d.repo_url(repo, token=token), "refs/heads/main").split()[0]


def test_regression_a_revoked_token_ends_its_lfs_bearers_and_their_renewals(daemon, git, tmp_path, have_tool):
    have_tool("git-lfs")
    git = lfs_git(git)
    user, _ = daemon.user()
    name = unique("laptop")
    token = daemon.cli("token", "create", user, "--name", name)[1].strip()
    repo = daemon.repo(user, private=True)
    work = lfs_work(git, tmp_path / "work", {"a.bin": random_bytes(100_000)})
    git("push", "-q", daemon.repo_url(repo, token=token), "main", cwd=work)  # git-lfs with the token

    bearer, _, _ = upload_action(LfsClient(daemon, repo, token))
    # The bearer itself at the batch API: its links live no longer than it does.
    renewed, action, data = upload_action(LfsClient(daemon, repo, bearer))
    assert claims(renewed)["exp"] <= claims(bearer)["exp"]
    assert action["expires_in"] <= claims(bearer)["exp"] - time.time() + 1
    # Until the token is revoked, the renewed bearer pushes (git and git-lfs) like the token.
    git.commit(work, {"b.bin": random_bytes(50_000)}, message="with the bearer")
    pushed = push_with(git, renewed, daemon.repo_url(repo), work)
    assert pushed.returncode == 0, stderr(pushed)
    head = git.out("rev-parse", "HEAD", cwd=work)
    assert remote_head(git, daemon, repo, token) == head

    daemon.cli("token", "revoke", user, name)

    git.commit(work, {"c.bin": random_bytes(50_000)}, message="after the revocation")
    for credential in (token, bearer, renewed):
        answer = LfsClient(daemon, repo, credential).batch("download", [(sha256(data), len(data))])
        assert answer.status == 401, (credential[:12], answer.body)
        refused = push_with(git, credential, daemon.repo_url(repo), work)
        assert refused.returncode != 0
    # A link handed out before the revocation (its own ?token=, no header) is dead as well.
    assert http("PUT", action["href"], data, {"Content-Type": "application/octet-stream"}).status == 401
    other_token = daemon.cli("token", "create", user, "--name", unique("desk"))[1].strip()
    assert remote_head(git, daemon, repo, other_token) == head  # nothing moved after the revocation


def test_regression_a_removed_ssh_key_ends_its_git_lfs_authenticate_bearer(daemon, ssh_user):
    user, token, client = ssh_user()
    repo = daemon.repo(user, private=True)
    proc = client.run("git-lfs-authenticate", f"/{repo}.git", "upload")
    assert proc.returncode == 0, stderr(proc)
    bearer = json.loads(proc.stdout)["header"]["Authorization"].removeprefix("Bearer ")
    renewed, _, data = upload_action(LfsClient(daemon, repo, bearer))
    assert claims(renewed)["exp"] <= claims(bearer)["exp"]
    assert LfsClient(daemon, repo, renewed).batch("upload", [(sha256(data), len(data))]).status == 200

    fingerprint = subprocess.run(["ssh-keygen", "-lf", str(client.key.with_suffix(".pub"))], capture_output=True,
                                 check=True, text=True).stdout.split()[1]
    daemon.cli("sshkey", "remove", user, fingerprint)

    for credential in (bearer, renewed):
        answer = LfsClient(daemon, repo, credential).batch("upload", [(sha256(data), len(data))])
        assert answer.status == 401, answer.body
    # The user's API token was never bound to the key: it still works.
    assert LfsClient(daemon, repo, token).batch("upload", [(sha256(data), len(data))]).status == 200
