"""Issue #20 §8: a push cut short while git runs post-receive (the daemon and its git
children killed) has landed, although its client reports a failure. Retrying the push
says "Everything up-to-date", and what post-receive would have done (here: pointing the
unborn HEAD of a new repository at the first branch pushed) is recovered by the daemon
after a restart, so the repository clones right."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.hook_helpers import wait_for
from tests.e2e.ops.faults import crash
from tests.e2e.sshclient import SSHClient, SSHUsers, known_hosts_for
from tests.support import Daemon, Git, new_daemon


def hold_post_receive(d: Daemon, root: Path) -> tuple[Path, Path]:
    """Make git's post-receive hook wait (before it calls the daemon) while ``hold`` exists;
    it touches ``reached`` when it gets there. Returns (hold, reached)."""
    hooks = d.data / "hooks"
    hold, reached = root / "post-receive.hold", root / "post-receive.reached"
    hold.touch()
    (hooks / "post-receive").rename(hooks / "post-receive.real")
    script = hooks / "post-receive"
    script.write_text(f"#!/bin/sh\ntouch '{reached}'\nwhile [ -e '{hold}' ]; do sleep 0.05; done\n"
                      f"exec '{hooks / 'post-receive.real'}'\n")
    script.chmod(0o700)
    return hold, reached


@pytest.mark.parametrize("transport", ["http", "ssh"])
def test_regression_a_push_killed_in_post_receive_is_up_to_date_on_retry(tmp_path, git: Git, transport):
    d = new_daemon(tmp_path / "d", {"hooks.intent_grace": 2.0})
    d.start()
    try:
        user, token, client = SSHUsers(d, tmp_path)()
        repo = d.repo(user)  # empty: HEAD names "main", which the push does not create
        path = d.repo_path(repo)
        work = git.init_work(tmp_path / "w", {"a.txt": "a\n"})
        git("branch", "-m", "main", "master", cwd=work)
        head = git.out("rev-parse", "HEAD", cwd=work)

        def url() -> str:
            return d.repo_url(repo, token=token) if transport == "http" else client.url(repo)

        def env() -> dict[str, str]:
            return {**git.env, **(client.env() if transport == "ssh" else {})}

        hold, reached = hold_post_receive(d, tmp_path)
        push = subprocess.Popen(["git", "push", url(), "master"], cwd=work, env=env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        wait_for(reached.exists, timeout=30, what="git to run post-receive")
        crash(d)  # the daemon and its git children, in post-receive
        _, err = push.communicate(timeout=60)
        hold.unlink()
        assert push.returncode != 0, err  # the client heard no answer ...
        assert (path / "refs" / "heads" / "master").read_text().strip() == head  # ... but the push landed

        d.start()
        if transport == "ssh":  # new ports after the restart
            client = SSHClient(d.ssh_host, d.ssh_port, client.key, known_hosts_for(d, tmp_path / "kh2"))
        retry = subprocess.run(["git", "push", url(), "master"], cwd=work, env=env(), capture_output=True, timeout=60)
        assert retry.returncode == 0 and b"Everything up-to-date" in retry.stderr, retry.stderr
        # The bookkeeping post-receive never did runs once the push's intent comes due.
        wait_for(lambda: (path / "HEAD").read_text().strip() == "ref: refs/heads/master", timeout=30,
                 what="HEAD to point at the pushed branch")
        clone = git("clone", d.repo_url(repo, token=token), str(tmp_path / "c"))
        assert b"nonexistent ref" not in clone.stderr
        assert (tmp_path / "c" / "a.txt").read_text() == "a\n"
        git("--git-dir", str(path), "fsck", "--full", "--strict")
    finally:
        d.stop()
