"""Git LFS over SSH with the real clients: git-lfs-authenticate's token, and git-lfs 3.3.0
falling back to it from the pure-SSH protocol while that is off, for locks and for an LFS
push and clone over an ssh:// remote."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.e2e.sshclient import SSHUsers, stderr
from tests.lfs_support import MIB, Backend, lfs_git, lfs_work, random_bytes, sha256, sha256_file


@pytest.fixture
def ssh_user(daemon, tmp_path) -> SSHUsers:
    return SSHUsers(daemon, tmp_path)


def test_git_lfs_authenticate_hands_out_a_token_for_one_repo_and_operation(daemon, git, ssh_user, tmp_path):
    user, _, client = ssh_user()
    repo, other = daemon.repo(user, private=True), daemon.repo(user, private=True)
    work = git.init_work(tmp_path / "w")
    for name in (repo, other):
        git("push", client.url(name), "main", cwd=work, env=client.env())

    def authenticate(path: str, operation: str) -> dict:
        proc = client.run("git-lfs-authenticate", path, operation)
        assert proc.returncode == 0, stderr(proc)
        return json.loads(proc.stdout)

    down = authenticate(f"/{repo}.git", "download")
    assert set(down) == {"href", "header", "expires_in"}
    assert down["href"] == f"{daemon.url}/{repo}.git/info/lfs"
    assert isinstance(down["expires_in"], int) and down["expires_in"] == 3600
    assert down["header"]["Authorization"].startswith("Bearer ")
    assert authenticate(repo, "download")["href"] == down["href"]  # unquoted, relative form

    def with_token(auth: dict, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return git("-c", f"http.extraHeader=Authorization: {auth['header']['Authorization']}", *args,
                   cwd=cwd, check=False)

    head = git.out("rev-parse", "HEAD", cwd=work)
    assert head in with_token(down, "ls-remote", daemon.repo_url(repo)).stdout.decode()
    elsewhere = with_token(down, "ls-remote", daemon.repo_url(other))
    assert elsewhere.returncode != 0 and b"not found" in elsewhere.stderr.lower()
    git.commit(work, {"n": "1"})
    refused = with_token(down, "push", daemon.repo_url(repo), "main", cwd=work)
    assert refused.returncode != 0 and b"write access" in refused.stderr
    up = authenticate(f"/{repo}.git", "upload")
    assert with_token(up, "push", daemon.repo_url(repo), "main", cwd=work).returncode == 0

    dataset = daemon.repo(user, repo_type="dataset")
    assert authenticate(f"/datasets/{dataset}.git", "upload")["href"] == f"{daemon.url}/datasets/{dataset}.git/info/lfs"

    _, _, stranger = ssh_user()
    proc = stranger.run("git-lfs-authenticate", repo, "download")
    assert proc.returncode == 1 and b"gitd: repository not found" in proc.stderr and proc.stdout == b""


def test_git_lfs_falls_back_from_pure_ssh_to_git_lfs_authenticate(daemon, git, ssh_user, tmp_path, have_tool):
    have_tool("git-lfs")
    user, _, client = ssh_user()
    repo = daemon.repo(user)
    work = git.init_work(tmp_path / "w")
    git("push", client.url(f"{repo}.git"), "main", cwd=work, env=client.env())
    git("remote", "add", "origin", client.url(f"{repo}.git"), cwd=work)
    proc = git("lfs", "locks", cwd=work, check=False, env={**client.env(), "GIT_TRACE": "1"})
    trace = stderr(proc)
    assert f"git-lfs-transfer /{repo}.git download" in trace
    assert "pure SSH protocol connection failed" in trace
    assert f"git-lfs-authenticate /{repo}.git download" in trace
    assert f"HTTP: GET {daemon.url}/{repo}.git/info/lfs/locks" in trace


def test_lfs_push_and_clone_over_ssh_through_git_lfs_authenticate(daemon, git, ssh_user, tmp_path, have_tool):
    """git-lfs 3.3.0 over an ssh:// remote: the pure-SSH attempt fails, git-lfs-authenticate's
    token then carries the objects over HTTP, and the push itself goes over SSH."""
    have_tool("git-lfs")
    git = lfs_git(git)
    owner, _, client = ssh_user()
    _, _, stranger = ssh_user()
    repo = daemon.repo(owner, private=True)
    files = {"weights/model.bin": random_bytes(2 * MIB + 5), "README.md": b"# card\n"}
    work = lfs_work(git, tmp_path / "work", files)
    push = git("push", client.url(f"{repo}.git"), "main", cwd=work, env={**client.env(), "GIT_TRACE": "1"})
    assert f"git-lfs-authenticate /{repo}.git upload" in stderr(push)
    assert Backend("local", daemon).stored(sha256(files["weights/model.bin"]))

    clone = tmp_path / "clone"
    git("clone", "-q", client.url(repo), str(clone), env=client.env())
    for name, data in files.items():
        assert sha256_file(clone / name) == sha256(data), name
    refused = git("clone", "-q", stranger.url(repo), str(tmp_path / "stranger"), check=False, env=stranger.env())
    assert refused.returncode != 0 and "repository not found" in stderr(refused)
