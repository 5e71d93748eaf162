"""Histories of long-lived projects push and clone back unchanged, with every pushed object
still checked: the historical oddities of [git] fsck_ignore pass, what endangers clients
does not. With the real git client over Smart HTTP and SSH."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.sshclient import SSHUsers, stderr
from tests.old_history import build_old_history, refs_and_objects
from tests.support import Daemon, Git


def push_all(git: Git, work: Path, url: str, env: dict[str, str] | None = None):
    return git("push", url, "refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*", cwd=work, env=env,
               check=False)


@pytest.mark.parametrize("transport", ["http", "ssh"])
def test_regression_histories_with_old_object_oddities_push_and_clone_back_identical(daemon, git, tmp_path,
                                                                                      transport):
    work = tmp_path / "old"
    build_old_history(git, work)
    if transport == "http":
        user, token = daemon.user()
        repo = daemon.repo(user)
        url, env = daemon.repo_url(repo, token=token), None
    else:
        user, _, client = SSHUsers(daemon, tmp_path)()
        repo = daemon.repo(user)
        url, env = client.url(f"{repo}.git"), client.env()
    pushed = push_all(git, work, url, env)
    assert pushed.returncode == 0, stderr(pushed)

    clone = tmp_path / "clone"
    git("clone", "-q", "--mirror", url, str(clone), env=env)
    assert refs_and_objects(git, clone) == refs_and_objects(git, work)
    # The server's copy holds the very bytes pushed (an object's id is its bytes' hash).
    served = daemon.repo_path(repo)
    assert git.out("--git-dir", str(served), "for-each-ref", "--format=%(objectname) %(refname)") == \
        git.out("for-each-ref", "--format=%(objectname) %(refname)", cwd=work)


def test_the_setting_decides_which_oddities_pass(make_daemon, git, tmp_path):
    d: Daemon = make_daemon(settings={"git.fsck_ignore": ["badTimezone", "missingSpaceBeforeDate",
                                                          "zeroPaddedDate"]})
    user, token = d.user()
    work = tmp_path / "old"
    build_old_history(git, work)
    refused = push_all(git, work, d.repo_url(d.repo(user), token=token))
    assert refused.returncode != 0 and "zeroPaddedFilemode" in stderr(refused)


def test_regression_a_gitmodules_url_that_is_an_option_is_still_refused(daemon, git, tmp_path):
    user, token = daemon.user()
    repo = daemon.repo(user)
    url = daemon.repo_url(repo, token=token)
    work = git.init_work(tmp_path / "w")
    git("push", "-q", url, "main", cwd=work)
    git.commit(work, {".gitmodules": '[submodule "x"]\n\tpath = x\n\turl = --upload-pack=touch /tmp/gitd-pwned\n'},
               message="evil submodule")
    refused = git("push", url, "main", cwd=work, check=False)
    assert refused.returncode != 0 and "gitmodulesUrl" in stderr(refused)
    head = git.out("ls-remote", url, "refs/heads/main").split()[0]
    assert head != git.out("rev-parse", "HEAD", cwd=work)
    # A path component ".git" (hasDotgit) is refused the same way.
    git("rm", "-q", ".gitmodules", cwd=work)
    git("reset", "-q", "--hard", head, cwd=work)
    blob = git("hash-object", "-w", "--stdin", cwd=work, input=b"[core]\n\tfsmonitor = evil\n").stdout.decode().strip()
    dotgit = git("mktree", cwd=work, input=f"100644 blob {blob}\tconfig\n".encode()).stdout.decode().strip()
    tree = git("mktree", cwd=work, input=f"040000 tree {dotgit}\t.GIT\n".encode()).stdout.decode().strip()
    commit = git.out("commit-tree", tree, "-p", head, "-m", "dot git", cwd=work)
    refused = git("push", url, f"{commit}:refs/heads/main", cwd=work, check=False)
    assert refused.returncode != 0 and "hasDotgit" in stderr(refused)
