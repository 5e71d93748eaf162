"""Mirrors between gitd instances, with Git LFS: a model mirrored by hub repository id, a
dataset through the Hub file API (a hub that offers no git), a push mirror, the faults
(an LFS server that sends wrong bytes), and the HTTP API's access rules."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import urllib.request
from pathlib import Path

import aiohttp
from aiohttp import web

from tests.aio_server import AioServer
from tests.e2e.hook_helpers import wait_for
from tests.e2e.mirror_helpers import api, mirror_daemon, status, wait_sync
from tests.lfs_support import LfsClient, lfs_git, lfs_work
from tests.mirror_support import Upstream
from tests.support import Daemon, Git, unique


def fetch(url: str, token: str) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=60) as resp:
        return resp.read()


def lfs_files(daemon: Daemon) -> list[Path]:
    return [p for p in (daemon.data / "lfs" / "objects").rglob("*") if p.is_file()]


def push_lfs_repo(git: Git, src: Daemon, repo: str, token: str, path: Path, files: dict[str, bytes], *,
                  repo_type: str = "model") -> Path:
    lfs_git(git)
    work = lfs_work(git, path, files)
    git("push", "-q", src.repo_url(repo, token=token, repo_type=repo_type), "main", cwd=work)
    return work


def test_a_model_with_lfs_files_is_mirrored_from_another_gitd_by_repo_id(make_daemon, git, tmp_path, monkeypatch):
    src = make_daemon()
    owner, src_token = src.user()
    source = src.repo(owner, private=True)
    weights = {"a.bin": os.urandom(1 << 20), "b.bin": os.urandom(1 << 20), "README.md": b"# model\n"}
    push_lfs_repo(git, src, source, src_token, tmp_path / "w", weights)

    d = mirror_daemon(make_daemon)
    user, token = d.user()
    monkeypatch.setenv("SOURCE_TOKEN", src_token)
    copy = f"{user}/{unique('copy')}"
    code, out, _ = d.cli("mirror", "add", copy, "--from-hub", src.url, "--repo-id", source,
                         "--token-env", "SOURCE_TOKEN")
    assert code == 0 and src_token not in out
    pull = wait_sync(d, copy, token)
    assert pull["last_error"] is None, pull
    assert pull["source"] == {"hub": src.url, "repo_id": source, "mode": "git"}
    assert pull["last_result"]["lfs_objects"] == 2
    for name, data in weights.items():
        assert fetch(f"{d.url}/{copy}/resolve/main/{name}", token) == data
    # A second mirror of the same model: the objects are downloaded again (the only proof
    # that the remote really has them) but stored once.
    again = f"{user}/{unique('copy')}"
    d.cli("mirror", "add", again, "--from-hub", src.url, "--repo-id", source, "--token-env", "SOURCE_TOKEN")
    assert wait_sync(d, again, token)["last_error"] is None
    assert len(lfs_files(d)) == 2
    assert src_token not in d.log() and src_token not in json.dumps(status(d, copy, token))


class GitlessHub:
    """A reverse proxy in front of a gitd that serves its Hub API but no git and no LFS
    batch API: a hub that only offers the file API."""

    HIDDEN = ("/info/refs", "/git-upload-pack", "/git-receive-pack", "/info/lfs")

    def __init__(self, target: str):
        self.target = target
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.forward)
        self.server = AioServer(app)
        self.requests: list[str] = []

    async def forward(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path)
        if any(h in request.path for h in self.HIDDEN):
            return web.Response(status=404, text="no git here")
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "accept", "range")}
        async with aiohttp.ClientSession(auto_decompress=False) as session, session.request(
                request.method, self.target + request.path_qs, headers=headers, data=await request.read(),
                allow_redirects=False) as upstream:
            out = web.StreamResponse(status=upstream.status)
            for key in ("Content-Type", "Link", "Content-Length", "Location", "X-Repo-Commit"):
                if key in upstream.headers:
                    link = upstream.headers[key].replace(self.target, self.server.url)
                    out.headers[key] = link
            await out.prepare(request)
            async for chunk in upstream.content.iter_chunked(1 << 16):
                await out.write(chunk)
            await out.write_eof()
            return out


def test_a_hub_without_git_is_mirrored_through_its_file_api(make_daemon, git, tmp_path, monkeypatch):
    src = make_daemon()
    owner, src_token = src.user()
    source = src.repo(owner, repo_type="dataset")
    data = {"train.bin": os.urandom(300_000), "README.md": b"# data\n", "sub/notes.txt": b"notes\n"}
    work = push_lfs_repo(git, src, source, src_token, tmp_path / "w", data, repo_type="dataset")
    hub = GitlessHub(src.url)
    hub.server.start()
    try:
        d = mirror_daemon(make_daemon, **{"plugins.mirror.interval": 0})
        user, token = d.user()
        monkeypatch.setenv("SOURCE_TOKEN", src_token)
        copy = f"{user}/{unique('data')}"
        d.cli("mirror", "add", copy, "--type", "dataset", "--from-hub", hub.server.url, "--repo-id", source,
              "--token-env", "SOURCE_TOKEN")
        pull = wait_sync(d, copy, token, repo_type="dataset")
        assert pull["last_error"] is None, pull
        assert pull["source"]["mode"] == "api"
        assert pull["last_result"]["lfs_objects"] == 1 and pull["last_result"]["files"] == 3
        for name, content in data.items():
            assert fetch(f"{d.url}/datasets/{copy}/resolve/main/{name}", token) == content
        commit = json.loads(fetch(f"{d.url}/api/datasets/{copy}/commits/main", token))[0]
        upstream_head = git.out("rev-parse", "HEAD", cwd=work)
        assert f"Upstream-Commit: {upstream_head}" in commit["message"]
        assert not any("info/refs" in p for p in hub.requests[1:])  # asked once, to find out
        # One file changes upstream: only it is downloaded.
        git.commit(work, {"README.md": "# data, v2\n"})
        git("push", "-q", src.repo_url(source, token=src_token, repo_type="dataset"), "main", cwd=work)
        d.cli("mirror", "sync", copy, "--type", "dataset")
        pull = wait_sync(d, copy, token, after=pull["last_attempt"], repo_type="dataset")
        assert pull["last_error"] is None and pull["last_result"]["files"] == 1
        assert pull["last_result"]["lfs_objects"] == 0
        assert fetch(f"{d.url}/datasets/{copy}/resolve/main/README.md", token) == b"# data, v2\n"
    finally:
        hub.server.stop()


class WrongBytesLfs:
    """An LFS server that answers the batch API and then serves bytes of the right size
    with one byte changed (until ``honest`` is set)."""

    def __init__(self, objects: dict[str, bytes]):
        self.objects = objects
        self.honest = False
        self.downloads: list[str] = []
        app = web.Application()
        app.router.add_post("/info/lfs/objects/batch", self.batch)
        app.router.add_get("/objects/{oid}", self.download)
        self.server = AioServer(app)

    async def batch(self, request: web.Request) -> web.Response:
        body = await request.json()
        answer = [{"oid": o["oid"], "size": o["size"], "actions": {"download": {
            "href": f"{self.server.url}/objects/{o['oid']}"}}} for o in body["objects"]]
        return web.json_response({"transfer": "basic", "objects": answer}, content_type="application/vnd.git-lfs+json")

    async def download(self, request: web.Request) -> web.Response:
        oid = request.match_info["oid"]
        self.downloads.append(oid)
        data = self.objects[oid]
        return web.Response(body=data if self.honest else bytes([data[0] ^ 1]) + data[1:])


def test_an_lfs_server_sending_wrong_bytes_is_refused_and_nothing_is_stored(make_daemon, git, tmp_path):
    weights = os.urandom(200_000)
    oid = hashlib.sha256(weights).hexdigest()
    up = Upstream(git, tmp_path)
    up.commit({}, lfs={"model.bin": weights}, store_lfs=False)
    lfs = WrongBytesLfs({oid: weights})
    lfs.server.start()
    try:
        d = mirror_daemon(make_daemon, **{"plugins.mirror.retry_min": "1h"})
        user, token = d.user()
        repo = f"{user}/{unique('m')}"
        d.cli("mirror", "add", repo, up.url, "--lfs-url", f"{lfs.server.url}/info/lfs")
        pull = wait_sync(d, repo, token)
        assert "could not be fetched, so nothing was published" in pull["last_error"]
        assert "rejected" in pull["last_error"] and oid in pull["last_error"]
        assert git.out("--git-dir", str(d.repo_path(repo)), "for-each-ref") == ""
        assert lfs_files(d) == [] and list((d.data / "lfs" / "tmp").iterdir()) == []
        lfs.honest = True
        d.cli("mirror", "sync", repo)
        pull = wait_sync(d, repo, token, after=pull["last_attempt"])
        assert pull["last_error"] is None
        assert fetch(f"{d.url}/{repo}/resolve/main/model.bin", token) == weights
        # A later sync that brings no new LFS object asks the LFS server for nothing.
        asked = len(lfs.downloads)
        up.commit({"notes.txt": "more\n"})
        d.cli("mirror", "sync", repo)
        pull = wait_sync(d, repo, token, after=pull["last_attempt"])
        assert pull["last_error"] is None and len(lfs.downloads) == asked
    finally:
        lfs.server.stop()


def test_pushes_are_mirrored_to_another_gitd_with_their_lfs_objects(make_daemon, git, tmp_path, monkeypatch):
    b = make_daemon()
    b_user, b_token = b.user()
    target = b.repo(b_user)
    d = mirror_daemon(make_daemon)
    user, token = d.user()
    repo = d.repo(user)
    monkeypatch.setenv("TARGET_TOKEN", b_token)
    code, out, _ = d.cli("mirror", "add", repo, b.repo_url(target), "--push", "--token-env", "TARGET_TOKEN")
    assert code == 0 and "push mirror" in out
    weights = os.urandom(500_000)
    work = push_lfs_repo(git, d, repo, token, tmp_path / "w", {"w.bin": weights, "README.md": b"hi\n"})
    head = git.out("rev-parse", "HEAD", cwd=work)
    wait_for(lambda: head in git.out("ls-remote", b.repo_url(target, token=b_token)), timeout=60,
             what="the push mirror")
    assert LfsClient(b, target, b_token).download(hashlib.sha256(weights).hexdigest(), len(weights)) == weights
    # The job records its result after the push: the refs may be visible on the target first.
    wait_for(lambda: "lfs_objects" in (status(d, repo, token)["push"][0].get("last_result") or {}), timeout=60,
             what="the push mirror's recorded result")
    pushed = status(d, repo, token)["push"][0]
    assert pushed["last_error"] is None and pushed["last_result"]["lfs_objects"] == 1
    assert b_token not in d.log()


def test_only_repository_admins_manage_mirrors_through_the_api(make_daemon, git, tmp_path):
    d = mirror_daemon(make_daemon, **{"plugins.mirror.allow_local_networks": True, "plugins.mirror.interval": 0})
    owner, token = d.user()
    _reader, reader_token = d.user()
    repo = d.repo(owner)
    up = Upstream(git, tmp_path)
    body = {"url": f"http://127.0.0.1:9/{unique('x')}.git", "credentials": {"token": "hidden-value-123"}}
    assert api(d, "PUT", f"/api/models/{repo}/mirror", reader_token, body)[0] == 403
    assert api(d, "PUT", f"/api/models/{repo}/mirror", None, body)[0] == 401
    code, answer = api(d, "PUT", f"/api/models/{repo}/mirror", token, {"url": up.url})
    assert code == 400 and "operator" in answer["error"]  # file URLs: the server's operator only
    code, answer = api(d, "PUT", f"/api/models/{repo}/mirror", token, body)
    assert code == 201 and answer["credentials"] is True and "hidden-value" not in json.dumps(answer)
    code, seen = api(d, "GET", f"/api/models/{repo}/mirror", reader_token)
    assert code == 200 and seen["pull"]["url"] == body["url"] and "hidden-value" not in json.dumps(seen)
    assert api(d, "POST", f"/api/models/{repo}/mirror/sync", reader_token)[0] == 403
    assert api(d, "DELETE", f"/api/models/{repo}/mirror", reader_token)[0] == 403
    code, mine = api(d, "GET", "/api/plugins/mirror/mirrors", reader_token)
    assert code == 200 and [m["repo"] for m in mine] == [repo]
    assert api(d, "DELETE", f"/api/models/{repo}/mirror", token)[0] == 200
    assert status(d, repo, token)["pull"] is None


def test_bad_api_bodies_are_refused_clearly(make_daemon):
    d = mirror_daemon(make_daemon)
    owner, token = d.user()
    repo = d.repo(owner)
    for bad in ({"url": 7}, {"url": "x", "interval": -1}, {"url": "x", "refs": "refs/heads/"}, {"url": "x", "what": 1},
                ["url"], {"url": "ext::sh -c id"}, {"url": "https://h.example/x", "credentials": "token"}):
        code, answer = api(d, "PUT", f"/api/models/{repo}/mirror", token, bad)
        assert code == 400 and answer["error"], (bad, code, answer)
    assert status(d, repo, token)["pull"] is None


def test_an_ssh_remote_is_mirrored_with_a_key_its_lfs_objects_and_a_pinned_host_key(make_daemon, git, tmp_path):
    from tests.e2e.sshclient import SSHUsers

    src = make_daemon()
    name, src_token, client = SSHUsers(src, tmp_path)()
    source = src.repo(name, private=True)
    weights = os.urandom(300_000)
    push_lfs_repo(git, src, source, src_token, tmp_path / "w", {"w.bin": weights, "README.md": b"over ssh\n"})
    d = mirror_daemon(make_daemon, **{"plugins.mirror.retry_min": "1h"})
    user, token = d.user()
    repo = f"{user}/{unique('ssh')}"
    code, _, _ = d.cli("mirror", "add", repo, client.url(f"{source}.git"), "--ssh-key", str(client.key))
    assert code == 0
    pull = wait_sync(d, repo, token)
    assert pull["last_error"] is None, pull
    assert pull["last_result"]["lfs_objects"] == 1
    assert fetch(f"{d.url}/{repo}/resolve/main/w.bin", token) == weights
    private_key = client.key.read_text()
    assert private_key.split("\n")[1] not in (d.data / "gitd.db").read_bytes().decode("latin-1")
    # The host key seen first is kept; a server that shows another one is refused.
    db = sqlite3.connect(d.data / "gitd.db")
    try:
        (hosts,) = db.execute("SELECT known_hosts FROM plugin_mirror_pull").fetchone()
        assert f"[{src.ssh_host}]:{src.ssh_port} ssh-ed25519" in hosts
        other = (tmp_path / "other_host_key")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
        forged = f"[{src.ssh_host}]:{src.ssh_port} " + " ".join(other.with_suffix(".pub").read_text().split()[:2])
        with db:
            db.execute("UPDATE plugin_mirror_pull SET known_hosts = ?", [forged + "\n"])
    finally:
        db.close()
    d.cli("mirror", "sync", repo)
    pull = wait_sync(d, repo, token, after=pull["last_attempt"])
    assert "Host key verification failed" in pull["last_error"] or "REMOTE HOST IDENTIFICATION" in pull["last_error"]
