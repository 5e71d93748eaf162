"""The built-in policy plugin, against real git pushes."""

from __future__ import annotations

import os

from tests.support import Git


def remote_head(git: Git, url: str, ref: str = "refs/heads/main") -> str | None:
    for line in git.out("ls-remote", url).splitlines():
        sha, name = line.split("\t")
        if name == ref:
            return sha
    return None


def test_an_oversized_blob_is_refused_with_the_file_named_and_git_lfs_track(daemon, git, tmp_path):
    # The shared daemon runs the shipped defaults: a 10 MiB limit.
    user, token = daemon.user()
    url = daemon.repo_url(daemon.repo(user), token=token)
    work = git.init_work(tmp_path / "w", {"README.md": "hi\n"})
    git("push", "-q", url, "main", cwd=work)
    before = remote_head(git, url)
    git.commit(work, {"models/weights.bin": os.urandom(10 * 1024 * 1024 + 1), "ok.txt": "small\n"})
    proc = git("push", url, "main", cwd=work, check=False)
    err = proc.stderr.decode()
    assert proc.returncode != 0
    assert "remote: push refused: 1 file(s) exceed the 10.0 MiB limit" in err
    assert "remote:   models/weights.bin (10.0 MiB)" in err
    assert 'remote:   git lfs track "models/weights.bin"' in err
    assert remote_head(git, url) == before


def test_the_default_branch_refuses_force_push_and_deletion_but_other_branches_do_not(daemon, git, tmp_path):
    user, token = daemon.user()
    url = daemon.repo_url(daemon.repo(user), token=token)
    work = git.init_work(tmp_path / "w")
    git.commit(work, {"b.txt": "b\n"}, message="second")
    git("push", "-q", url, "main", "main:topic", cwd=work)
    pushed = remote_head(git, url)

    git("reset", "-q", "--hard", "HEAD~1", cwd=work)
    git.commit(work, {"c.txt": "c\n"}, message="rewritten")
    proc = git("push", "--force", url, "main", cwd=work, check=False)
    assert proc.returncode != 0
    assert "remote: push refused: force-pushing to the default branch main is not allowed." in proc.stderr.decode()
    assert remote_head(git, url) == pushed

    proc = git("push", url, ":main", cwd=work, check=False)
    assert proc.returncode != 0
    assert "remote: push refused: main is the default branch and cannot be deleted." in proc.stderr.decode()
    assert remote_head(git, url) == pushed

    git("push", "-q", "--force", url, "main:topic", cwd=work)  # other branches: anything goes
    git("push", "-q", url, ":topic", cwd=work)
    assert remote_head(git, url, "refs/heads/topic") is None
    git("pull", "-q", "--rebase", url, "main", cwd=work)  # a fast-forward is fine
    git("push", "-q", url, "main", cwd=work)
    assert remote_head(git, url) == git.out("rev-parse", "HEAD", cwd=work)


def test_policy_settings_come_from_the_config(make_daemon, git, tmp_path):
    d = make_daemon({"plugins.policy.protect_default_branch": False, "plugins.policy.max_blob_size": "2KiB"})
    user, token = d.user()
    url = d.repo_url(d.repo(user), token=token)
    work = git.init_work(tmp_path / "w")
    git("push", "-q", url, "main", cwd=work)

    git.commit(work, {"data.bin": os.urandom(3000)})
    proc = git("push", url, "main", cwd=work, check=False)
    assert proc.returncode != 0 and "exceed the 2.0 KiB limit" in proc.stderr.decode()

    git("reset", "-q", "--hard", "HEAD~1", cwd=work)
    git.commit(work, {"small.txt": "x\n"}, message="rewritten")
    git("push", "-q", url, "main", cwd=work)
    git.commit(work, {"again.txt": "y\n"})
    git("push", "-q", "--force", url, "HEAD~1:main", cwd=work)  # force-push allowed now
    assert remote_head(git, url) == git.out("rev-parse", "HEAD~1", cwd=work)
    git("push", "-q", url, "HEAD:other", cwd=work)
    git("push", "-q", url, ":main", cwd=work)  # and so is deleting the default branch
    assert remote_head(git, url) is None
