"""Pull mirrors end to end, from plain git servers: a local bare repository (file URL) and
git http-backend behind nginx + fcgiwrap, with the faults: a stalling remote, a daemon
killed mid-sync, a repository of 100,000 refs. The real daemon, the real git client."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.e2e.mirror_helpers import api, mirror_daemon, refs, status, wait_sync
from tests.http_peer import HttpBackendPeer, StallingRelay, free_port
from tests.mirror_support import Upstream
from tests.support import Git, unique


@pytest.fixture
def peer(tmp_path):
    server = HttpBackendPeer(tmp_path / "peer").start()
    yield server
    server.stop()


def upstream_on_peer(git: Git, peer: HttpBackendPeer, tmp_path, files: dict[str, bytes | str]) -> tuple[str, Git]:
    """A repository on the peer, pushed to over HTTP; returns its URL and a work tree's path."""
    name = unique("up")
    peer.bare(name)
    url = f"{peer.url}/{name}.git"
    work = git.init_work(tmp_path / f"{name}-work", files)
    git("push", "-q", url, "main", cwd=work)
    return url, work


def test_a_local_bare_repository_is_mirrored_and_read_only(make_daemon, git, tmp_path):
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    d = mirror_daemon(make_daemon)
    user, token = d.user()
    repo = f"{user}/{unique('m')}"
    up = Upstream(git, tmp_path)
    up.commit({"b.txt": "on dev\n"}, branch="dev")
    d.cli("mirror", "add", repo, up.url)
    pull = wait_sync(d, repo, token)
    assert pull["last_error"] is None and pull["last_result"]["refs_changed"] == 2
    clone = tmp_path / "clone.git"
    git("clone", "-q", "--mirror", d.repo_url(repo, token=token), str(clone))
    assert refs(git, clone) == up.refs()
    # Pushes are refused with a message that says why and what to do.
    work = tmp_path / "w"
    git("clone", "-q", d.repo_url(repo, token=token), str(work))
    git.commit(work, {"x.txt": "x\n"})
    refused = git("push", "origin", "main", cwd=work, check=False)
    assert refused.returncode != 0
    assert f"remote: {repo} is a mirror of {up.url}" in refused.stderr.decode()
    # So are commits through the Hub API (huggingface_hub's upload), with the same message.
    hub = HfApi(endpoint=d.url, token=token)
    with pytest.raises(HfHubHTTPError) as refused_upload:
        hub.upload_file(repo_id=repo, path_or_fileobj=b"x\n", path_in_repo="x.txt")
    assert refused_upload.value.response.status_code == 403
    assert f"{repo} is a mirror of {up.url}" in str(refused_upload.value)
    assert hub.model_info(repo).sha == up.refs()["refs/heads/main"]
    # The Hub API's and the native API's answers carry the mirror's state.
    info = hub.model_info(repo)
    assert info.mirror["upstream"] == up.url and info.mirror["error"] is None
    code, native = api(d, "GET", f"/api/v1/models/{repo}", token)
    assert code == 200 and json.dumps(native).count(up.url) == 1 and "last_success" in json.dumps(native)
    # An incremental sync, asked for on the command line.
    new = up.commit({"c.txt": "new\n"})
    before = pull["last_attempt"]
    code, out, _ = d.cli("mirror", "sync", repo, "--wait", "60")
    assert code == 0 and "synced" in out
    pull = wait_sync(d, repo, token, after=before)
    assert pull["last_result"]["refs_changed"] == 1 and pull["last_result"]["objects"] <= 3
    git("fetch", "-q", "origin", cwd=clone)
    assert refs(git, clone)["refs/heads/main"] == new


def test_a_git_http_backend_peer_is_mirrored_incrementally(make_daemon, git, peer, tmp_path):
    d = mirror_daemon(make_daemon)
    user, token = d.user()
    repo = f"{user}/{unique('m')}"
    url, work = upstream_on_peer(git, peer, tmp_path, {f"src/{i}.py": f"x = {i}\n" * 50 for i in range(200)})
    for n in range(3):
        git.commit(work, {"log.txt": f"{n}\n"}, message=f"step {n}")
    git("tag", "v1", cwd=work)
    git("push", "-q", url, "main", "v1", cwd=work)
    code, body = api(d, "PUT", f"/api/models/{repo}/mirror", token, {"url": url})
    assert code == 404  # no such repository yet: the API mirrors into an existing one
    d.cli("repo", "create", "--empty", repo)
    code, body = api(d, "PUT", f"/api/models/{repo}/mirror", token, {"url": url, "interval": 3600})
    assert code == 400 and "local or private address" in body["error"]  # allow_local_networks is off
    d.cli("mirror", "add", repo, url)
    pull = wait_sync(d, repo, token)
    assert pull["last_error"] is None
    ls = git.out("ls-remote", d.repo_url(repo, token=token))
    assert git.out("rev-parse", "HEAD", cwd=work) in ls and "refs/tags/v1" in ls
    # One new commit on one branch: one fetch of three objects, one ref moved.
    new = git.commit(work, {"log.txt": "latest\n"}, message="latest")
    git("push", "-q", url, "main", cwd=work)
    started = time.monotonic()
    code, body = api(d, "POST", f"/api/models/{repo}/mirror/sync", token)
    assert code == 202
    pull = wait_sync(d, repo, token, after=pull["last_attempt"])
    assert time.monotonic() - started < 30
    assert pull["last_error"] is None and pull["last_result"]["refs_changed"] == 1
    assert pull["last_result"]["objects"] == 3
    assert new in git.out("ls-remote", d.repo_url(repo, token=token), "refs/heads/main")


def test_a_remote_that_stalls_mid_pack_times_out_and_publishes_nothing(make_daemon, git, peer, tmp_path):
    d = mirror_daemon(make_daemon, **{"plugins.mirror.stall_timeout": "3s", "plugins.mirror.retry_min": "1h"})
    user, token = d.user()
    repo = f"{user}/{unique('m')}"
    url, work = upstream_on_peer(git, peer, tmp_path, {"weights.dat": os.urandom(3 << 20)})
    relay = StallingRelay(peer.port).start()
    try:
        relay.stall(after=64 * 1024)
        d.cli("mirror", "add", repo, url.replace(peer.url, relay.url))
        pull = wait_sync(d, repo, token, timeout=60)
        assert "sent nothing for 3s (stalled)" in pull["last_error"]
        assert git.out("ls-remote", d.repo_url(repo, token=token)) == ""
        relay.release()
        d.cli("mirror", "sync", repo)
        pull = wait_sync(d, repo, token, after=pull["last_attempt"], timeout=60)
        assert pull["last_error"] is None
        assert git.out("rev-parse", "HEAD", cwd=work) in git.out("ls-remote", d.repo_url(repo, token=token))
    finally:
        relay.stop()


def test_a_daemon_killed_mid_sync_resumes_on_restart_with_nothing_half_published(make_daemon, git, peer,
                                                                                  tmp_path):
    d = mirror_daemon(make_daemon)
    user, token = d.user()
    repo = f"{user}/{unique('m')}"
    url, work = upstream_on_peer(git, peer, tmp_path, {"weights.dat": os.urandom(3 << 20), "a.txt": "a\n"})
    relay = StallingRelay(peer.port).start()
    try:
        relay.stall(after=64 * 1024)
        d.cli("mirror", "add", repo, url.replace(peer.url, relay.url))
        assert relay.held.wait(60)
        assert status(d, repo, token)["pull"]["phase"] == "fetching"
        d.kill()  # SIGKILL, mid-pack
        path = d.repo_path(repo)
        assert git.out("--git-dir", str(path), "for-each-ref") == ""  # nothing published
        relay.release()
        d.start()
        pull = wait_sync(d, repo, token, timeout=90)
        assert pull["last_error"] is None, pull
        assert git.out("--git-dir", str(path), "for-each-ref", "--format=%(objectname)") == \
            git.out("rev-parse", "HEAD", cwd=work)
        assert not (path / "mirror-staging.pid").exists() and not (path / "mirror-staging.tmp").exists()
    finally:
        relay.stop()


@pytest.mark.slow
def test_a_repository_of_100000_refs_is_mirrored(make_daemon, git, tmp_path):
    d = mirror_daemon(make_daemon)
    user, token = d.user()
    repo = f"{user}/{unique('m')}"
    up = Upstream(git, tmp_path)
    head = up.refs()["refs/heads/main"]
    lines = "".join(f"create refs/heads/b{i:06d} {head}\n" for i in range(100_000))
    git("--git-dir", str(up.bare), "update-ref", "--stdin", input=lines.encode())
    git("--git-dir", str(up.bare), "pack-refs", "--all")
    d.cli("mirror", "add", repo, up.url)
    pull = wait_sync(d, repo, token, timeout=600)
    assert pull["last_error"] is None and pull["last_result"]["refs_changed"] == 100_001
    listing = git.out("ls-remote", d.repo_url(repo, token=token)).splitlines()
    assert len([line for line in listing if "\trefs/heads/" in line]) == 100_001
    # And the next sync after one change moves one ref.
    up.commit({"x.txt": "x\n"})
    d.cli("mirror", "sync", repo)
    pull = wait_sync(d, repo, token, after=pull["last_attempt"], timeout=300)
    assert pull["last_error"] is None and pull["last_result"]["refs_changed"] == 1


def test_an_unreachable_remote_and_a_rewritten_history_are_reported_and_nothing_is_published(make_daemon, git, peer,
                                                                                           tmp_path):
    d = mirror_daemon(make_daemon, **{"plugins.mirror.retry_min": "1h"})
    user, token = d.user()
    gone = f"{user}/{unique('gone')}"
    d.cli("mirror", "add", gone, f"http://127.0.0.1:{free_port()}/nothing.git")
    pull = wait_sync(d, gone, token)
    assert pull["last_error"].startswith("fetching failed: fatal: unable to access") and pull["failures"] == 1
    assert pull["next_run"] is not None
    # A forced update upstream, refused by the mirror's flag, then followed.
    repo = f"{user}/{unique('m')}"
    url, work = upstream_on_peer(git, peer, tmp_path, {"a.txt": "a\n"})
    git.commit(work, {"b.txt": "b\n"})
    git("push", "-q", url, "main", cwd=work)
    d.cli("mirror", "add", repo, url, "--refuse-force")
    pull = wait_sync(d, repo, token)
    before = git.out("ls-remote", d.repo_url(repo, token=token), "refs/heads/main")
    git("reset", "-q", "--hard", "HEAD~1", cwd=work)
    git.commit(work, {"c.txt": "rewritten\n"})
    git("push", "-q", "--force", url, "main", cwd=work)
    d.cli("mirror", "sync", repo)
    pull = wait_sync(d, repo, token, after=pull["last_attempt"])
    assert "the upstream rewrote history of refs/heads/main" in pull["last_error"]
    assert git.out("ls-remote", d.repo_url(repo, token=token), "refs/heads/main") == before
    code, _ = api(d, "PATCH", f"/api/models/{repo}/mirror", token, {"follow_force": True})
    assert code == 200
    d.cli("mirror", "sync", repo)
    pull = wait_sync(d, repo, token, after=pull["last_attempt"])
    assert pull["last_error"] is None
    assert git.out("rev-parse", "HEAD", cwd=work) in git.out("ls-remote", d.repo_url(repo, token=token))
