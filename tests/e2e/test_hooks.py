"""Receive hooks → plugins, with the real git client pushing over Smart HTTP.

The plugins are the installed test package (tests/plugins/gitd-test-plugins), found
by the daemon through their entry points; push options pick what they do.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.hook_helpers import PluginDaemon, plugin_daemon, wait_for
from tests.e2e.rawhttp import basic, pkt, request
from tests.plugin_packages import install_plugin_packages
from tests.support import Git, unique

ZERO = "0" * 40
SECRET = "crasher-internal-detail-0xC0FFEE"  # what the crasher plugin puts in its exception


@pytest.fixture(scope="module", params=["c", "python"])
def hooked(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PluginDaemon]:
    """Every test here runs with both hook programs: the compiled C one and the Python fallback."""
    site = install_plugin_packages(tmp_path_factory)
    pd = plugin_daemon(tmp_path_factory.mktemp("hooked"), site,
                       {"jobs.max_attempts": 3, "hooks.program": request.param})
    pd.program = request.param
    yield pd
    pd.daemon.stop()


def test_the_configured_hook_program_is_installed(hooked):
    for name in ("pre-receive", "post-receive"):
        head = (hooked.daemon.data / "hooks" / name).read_bytes()[:4]
        assert head == b"\x7fELF" if hooked.program == "c" else head.startswith(b"#!/")


@pytest.fixture
def pushable(hooked: PluginDaemon, git: Git, tmp_path: Path):
    """A user, a fresh repository and a work tree with one commit on main (not pushed yet)."""
    user, token = hooked.daemon.user()
    repo = hooked.daemon.repo(user)
    work = git.init_work(tmp_path / "work", {"README.md": "hello\n"})
    url = hooked.daemon.repo_url(repo, token=token)
    return user, repo, work, url


def remote_refs(git: Git, url: str) -> dict[str, str]:
    out = git.out("ls-remote", url)
    return {ref: sha for sha, ref in (line.split("\t") for line in out.splitlines())}


def test_veto_shows_the_message_and_moves_no_ref(hooked, git, pushable):
    _, repo, work, url = pushable
    git("push", "-q", url, "main", cwd=work)
    before = remote_refs(git, url)

    git.commit(work, {"a.txt": "a\n"}, message="on main")
    git("branch", "feature", cwd=work)
    git("tag", "v1", cwd=work)
    new = git.out("rev-parse", "HEAD", cwd=work)
    for atomic in ([], ["--atomic"]):
        proc = git("push", *atomic, "-o", "veto=Not today.\\nAsk the release manager.", url,
                   "main", "feature", "v1", cwd=work, check=False)
        err = proc.stderr.decode()
        assert proc.returncode != 0
        assert "remote: Not today." in err and "remote: Ask the release manager." in err
        assert "pre-receive hook declined" in err
        assert remote_refs(git, url) == before  # no ref moved, neither main nor the new ones
    # The refused objects were dropped with git's quarantine: none reached the repository.
    cat = subprocess.run(["git", "--git-dir", str(hooked.repo_path(repo)), "cat-file", "-e", new],
                         capture_output=True)
    assert cat.returncode != 0
    # And a vetoed push leaves no post-receive job behind.
    assert not [j for j in hooked.jobs(hook="gitd_post_receive") if new in str(j.payload)]


def test_plugins_see_push_options_pusher_via_and_the_quarantined_objects(hooked, git, pushable):
    user, repo, work, url = pushable
    head = git.out("rev-parse", "HEAD", cwd=work)
    git("push", "-q", "-o", "ci.skip", "-o", "note=two words", url, "main", cwd=work)

    [pre] = hooked.records("pre", repo=repo)
    assert pre["push_options"] == ["ci.skip", "note=two words"]
    assert pre["pusher"] == user and pre["via"] == "http"
    assert pre["updates"] == [["refs/heads/main", ZERO, head]]
    ns, name = repo.split("/")
    assert pre["repo"]["namespace"] == ns and pre["repo"]["name"] == name
    assert pre["repo"]["type"] == "model" and pre["repo"]["private"] is False
    assert Path(pre["repo"]["path"]) == hooked.repo_path(repo)
    # During pre-receive the commit exists only in git's quarantine, yet the plugin read
    # its message and tree through event.repository.
    assert pre["commits"][head] == {"message": "initial\n", "files": ["README.md"]}
    assert {"GIT_OBJECT_DIRECTORY", "GIT_QUARANTINE_PATH"} <= set(pre["quarantine"])

    [post] = wait_for(lambda: hooked.records("post", repo=repo), what="post-receive record")
    assert post["updates"] == pre["updates"] and post["push_options"] == pre["push_options"]
    assert post["pusher"] == user and post["via"] == "http"
    assert post["thread"].startswith("gitd-job-")  # a job, off the push's path


def test_post_receive_is_recorded_before_the_push_returns_and_runs_once(hooked, git, pushable):
    _, repo, work, url = pushable
    git("push", "-q", url, "main", cwd=work)
    # Recorded before `git push` returned: the job row exists now, whatever its state.
    assert len(hooked.jobs(plugin="recorder", hook="gitd_post_receive", repo=repo)) == 1

    second = git.commit(work, {"b.txt": "b\n"}, message="second")
    git("push", "-q", url, "main", cwd=work)
    wait_for(lambda: len(hooked.records("post", repo=repo)) == 2, what="two post-receive records")
    def both_done():
        jobs = hooked.jobs(plugin="recorder", hook="gitd_post_receive", repo=repo)
        return jobs if len(jobs) == 2 and all(j.state == "done" for j in jobs) else None

    jobs = wait_for(both_done, what="both jobs done")
    posts = hooked.records("post", repo=repo)
    assert sorted(p["updates"][0][2] for p in posts) == sorted([second, git.out("rev-parse", "HEAD~1", cwd=work)])
    # Exactly once: every job ran a single attempt, and no intent was left behind.
    assert [j.attempts for j in jobs] == [1, 1]
    assert not hooked.jobs(plugin="*", hook="gitd_post_receive", repo=repo)


def test_a_failing_job_is_retried_until_it_succeeds(hooked, git, pushable):
    _, repo, work, url = pushable
    git("push", "-q", "-o", "flaky=2", url, "main", cwd=work)

    def flaky_job():
        [job] = hooked.jobs(plugin="flaky", repo=repo)
        return job if job.state == "done" else None

    job = wait_for(flaky_job, what="the flaky job to succeed")
    assert job.attempts == 3 and job.last_error is None
    head = git.out("rev-parse", "HEAD", cwd=work)
    assert sorted(r["attempt"] for r in hooked.records(f"flaky-{job.repo_id}-{head}")) == [1, 2, 3]


def test_a_job_that_keeps_failing_is_kept_with_its_error_and_can_be_retried(hooked, git, pushable):
    _, repo, work, url = pushable
    head = git.out("rev-parse", "HEAD", cwd=work)
    git("push", "-q", "-o", "flaky=3", url, "main", cwd=work)  # max_attempts is 3

    def job(state: str):
        [found] = hooked.jobs(plugin="flaky", repo=repo)
        return found if found.state == state else None

    failed = wait_for(lambda: job("failed"), what="the job to give up")
    assert failed.attempts == 3 and "flaky failure on attempt 3" in failed.last_error
    _, listing, _ = hooked.daemon.cli("jobs", "list", "--failed")
    line = next(row for row in listing.splitlines() if row.split()[0] == str(failed.id))
    assert "failed" in line and "flaky" in line and "3/3" in line and "flaky failure on attempt 3" in line

    _, out, _ = hooked.daemon.cli("jobs", "retry", str(failed.id))
    assert f"job {failed.id} queued again" in out
    done = wait_for(lambda: job("done"), what="the retried job to succeed")
    assert done.attempts == 1 and done.last_error is None
    assert len(hooked.records(f"flaky-{done.repo_id}-{head}")) == 4
    code, _, err = hooked.daemon.cli("jobs", "retry", "999999", check=False)
    assert code == 1 and "no job 999999" in err


def test_a_plugin_bug_refuses_the_push_with_a_generic_message_and_logs_the_plugin(hooked, git, pushable):
    _, _, work, url = pushable
    proc = git("push", "-o", "crash=error", url, "main", cwd=work, check=False)
    err = proc.stderr.decode()
    assert proc.returncode != 0
    assert "remote: push refused: a server-side check failed with an internal error" in err
    assert SECRET not in err and "crasher" not in err and "Traceback" not in err
    assert "refs/heads/main" not in remote_refs(git, url)
    log = hooked.daemon.log()
    assert "plugin crasher failed in pre-receive" in log and SECRET in log


def test_regression_a_plugin_raising_systemexit_does_not_stop_the_daemon(hooked, git, pushable):
    _, _, work, url = pushable
    proc = git("push", "-o", "crash=exit", url, "main", cwd=work, check=False)
    assert proc.returncode != 0
    assert "a server-side check failed with an internal error" in proc.stderr.decode()
    assert hooked.daemon.proc.poll() is None
    git("push", "-q", url, "main", cwd=work)  # the daemon still serves pushes
    assert "refs/heads/main" in remote_refs(git, url)


def test_regression_push_straight_into_the_data_dir_is_refused(hooked, git, pushable):
    _, repo, work, url = pushable
    git("push", "-q", url, "main", cwd=work)
    before = remote_refs(git, url)
    git.commit(work, {"sneaky.txt": "x\n"}, message="sneaky")
    # A push made by hand on the server, into the bare repository in DATA: git runs the
    # same hooks (core.hooksPath is in the repository's config) and they refuse it.
    proc = git("push", str(hooked.repo_path(repo)), "main", cwd=work, check=False)
    assert proc.returncode != 0
    assert "did not come through the gitd daemon" in proc.stderr.decode()
    assert remote_refs(git, url) == before


def test_regression_the_hook_refuses_a_bogus_token(hooked):
    hook = hooked.daemon.data / "hooks" / "pre-receive"
    sock = hooked.daemon.data / "run" / "hooks.sock"
    env = {"PATH": os.environ["PATH"], "GITD_HOOK_SOCKET": str(sock)}
    line = f"{ZERO} {'1' * 40} refs/heads/main\n".encode()
    for token in ("forged-token", ""):
        proc = subprocess.run([str(hook)], input=line, capture_output=True, env={**env, "GITD_PUSH_TOKEN": token})
        assert proc.returncode == 1
        expected = "no valid push token" if token else "did not come through the gitd daemon"
        assert expected in proc.stderr.decode()


def test_the_hook_socket_is_private_and_in_the_data_dir(hooked):
    sock = Path(hooked.daemon.info["hooks"])
    assert sock == hooked.daemon.data / "run" / "hooks.sock"
    mode = sock.stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700


def test_repo_created_and_deleted_by_the_cli_reach_plugins_as_jobs(hooked):
    user, _ = hooked.daemon.user()
    name = unique("life")
    full = f"{user}/{name}"
    hooked.daemon.cli("repo", "create", full, "--type", "dataset", "--empty")
    [created] = wait_for(lambda: hooked.records("created", full_name=full), what="repo created record")
    assert created["type"] == "dataset" and created["path_exists"] is True
    assert created["thread"].startswith("gitd-job-")
    hooked.daemon.cli("repo", "delete", full, "--type", "dataset")
    [deleted] = wait_for(lambda: hooked.records("deleted", full_name=full), what="repo deleted record")
    assert deleted["id"] == created["id"] and deleted["path_exists"] is False
    jobs = [j for j in hooked.jobs(plugin="recorder") if j.repo_id == created["id"]]
    assert sorted(j.hook for j in jobs) == ["gitd_repo_created", "gitd_repo_deleted"]


def test_first_push_of_another_branch_becomes_head(hooked, git, pushable):
    _, repo, work, url = pushable
    git("branch", "-m", "main", "dev", cwd=work)
    git("push", "-q", url, "dev", cwd=work)
    symref = git.out("ls-remote", "--symref", url, "HEAD")
    assert "ref: refs/heads/dev\tHEAD" in symref
    [post] = wait_for(lambda: hooked.records("post", repo=repo), what="post-receive record")
    assert post["repo"]["default_branch"] == "dev"


def test_regression_a_push_option_with_newlines_cannot_forge_ref_lines(hooked, git, pushable):
    """A push option holding newlines (the git client refuses to send one, a hand-made
    request does not) reaches plugins verbatim, and forges no ref update in the hook call."""
    _, repo, work, url = pushable
    head = git.out("rev-parse", "HEAD", cwd=work)
    option = f"a\n\n{ZERO} {head} refs/heads/forged\n{ZERO} {head} refs/heads/forged2"
    pack = git("pack-objects", "--stdout", "--revs", cwd=work, input=f"{head}\n".encode()).stdout
    body = (pkt(f"{ZERO} {head} refs/heads/main\0report-status push-options object-format=sha1\n")
            + b"0000" + pkt(option) + b"0000" + pack)
    token = url.split("user:", 1)[1].split("@", 1)[0]  # the pusher's token, from its URL
    reply = request(hooked.daemon.url, "POST", f"/{repo}.git/git-receive-pack", body=body,
                    headers={"Content-Type": "application/x-git-receive-pack-request", **basic(token)})
    assert reply.status == 200 and b"ok refs/heads/main" in reply.body, reply.body
    [pre] = hooked.records("pre", repo=repo)
    assert pre["push_options"] == [option]
    assert pre["updates"] == [["refs/heads/main", ZERO, head]]
    [post] = wait_for(lambda: hooked.records("post", repo=repo), what="post-receive record")
    assert post["updates"] == pre["updates"] and post["push_options"] == [option]
    assert remote_refs(git, url) == {"HEAD": head, "refs/heads/main": head}
