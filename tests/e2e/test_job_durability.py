"""Post-receive jobs survive the daemon being killed."""

from __future__ import annotations

from tests.e2e.hook_helpers import plugin_daemon, wait_for
from tests.plugin_packages import install_plugin_packages
from tests.support import Git


def test_a_job_interrupted_by_sigkill_runs_after_restart(tmp_path_factory, git: Git, tmp_path):
    site = install_plugin_packages(tmp_path_factory)
    pd = plugin_daemon(tmp_path / "d", site)
    try:
        user, token = pd.daemon.user()
        repo = pd.daemon.repo(user)
        pd.records_dir.mkdir(parents=True, exist_ok=True)
        hold = pd.records_dir / "crash.hold"
        hold.touch()
        work = git.init_work(tmp_path / "w")
        git("push", "-q", "-o", "hold=crash", pd.daemon.repo_url(repo, token=token), "main", cwd=work)

        wait_for(lambda: pd.records("hold-started-crash"), what="the job to start")
        [job] = pd.jobs(plugin="holder", repo=repo)
        assert job.state == "running" and job.attempts == 1
        # The push's other jobs run on the other worker: let them finish, so the holder is
        # the only job the crash interrupts (an interrupted job runs again: at least once).
        wait_for(lambda: all(j.state == "done" for j in pd.jobs(repo=repo) if j.plugin != "holder"),
                 what="the push's other jobs to finish")
        pd.daemon.kill()  # SIGKILL, mid-job
        assert not pd.records("hold-finished-crash")
        hold.unlink()

        pd.daemon.start()
        wait_for(lambda: pd.records("hold-finished-crash"), what="the job to run again after the restart")
        done = wait_for(lambda: [j for j in pd.jobs(plugin="holder", repo=repo) if j.state == "done"],
                        what="the job to be done")
        assert done[0].id == job.id and done[0].attempts == 2
        assert "requeued 1 job(s) interrupted by a previous shutdown" in pd.daemon.log()
        # The other plugins' jobs for that push ran exactly once, before the crash.
        [post] = wait_for(lambda: pd.records("post", repo=repo), what="the recorder's job")
        assert post["updates"][0][2] == git.out("rev-parse", "HEAD", cwd=work)
    finally:
        pd.daemon.stop()
