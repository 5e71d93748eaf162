"""Remotes, credentials and the server's own networks: URL parsing, redaction, the checks
that keep mirrors configured through the API off local networks, and where the LFS
client sends credentials."""

from __future__ import annotations

import json

import pytest
from aiohttp import web
from gitd_plugins.mirror import MirrorPlugin
from gitd_plugins.mirror.lfs import LfsClient, LfsError, LfsObject
from gitd_plugins.mirror.remote import (
    Credentials,
    check_public_host,
    git_access,
    lfs_endpoint,
    parse_remote,
    redact,
)

from gitd import PluginError
from tests.aio_server import AioServer


def test_credentials_are_taken_out_of_urls():
    remote, creds = parse_remote("https://alice:s%40cret@Hub.Example:8443/org/model.git")
    assert remote.url == "https://hub.example:8443/org/model.git" and remote.scheme == "https"
    assert creds.username == "alice" and creds.password == "s@cret"
    assert "s@cret" not in repr(creds) and "s@cret" not in repr(remote)
    assert parse_remote("git@git.example.com:team/tool.git")[0].scheme == "ssh"
    assert parse_remote("file:///srv/x.git")[0].url == "file:///srv/x.git"
    assert lfs_endpoint(parse_remote("https://h.example/org/m")[0]) == "https://h.example/org/m.git/info/lfs"
    assert lfs_endpoint(parse_remote("https://h.example/org/m.git")[0]) == "https://h.example/org/m.git/info/lfs"


@pytest.mark.parametrize("url", ["ext::sh -c id", "git://h.example/x", "-oProxyCommand=x:y", "/srv/x.git",
                                 "ssh://-oProxyCommand=id/x", "file://otherhost/x", "ssh://u:pw@h.example/x",
                                 "https://h.example/x#frag", "https://h.example/x y"])
def test_what_is_not_a_remote_is_refused(url):
    with pytest.raises(PluginError):
        parse_remote(url)


def test_urls_in_messages_lose_their_credentials_and_queries():
    text = "fatal: unable to access 'https://bob:tok@h.example/x.git?sig=abc': 403; see http://u@y/z?q=1"
    assert redact(text) == "fatal: unable to access 'https://h.example/x.git': 403; see http://y/z"


@pytest.mark.parametrize("url", ["http://127.0.0.1/x", "http://localhost/x", "https://10.1.2.3/x",
                                 "http://192.168.0.1/x", "http://169.254.169.254/latest", "http://[::1]/x",
                                 "ssh://git@127.0.0.1/x", "git@10.0.0.5:x.git", "http://0.0.0.0/x",
                                 "file:///etc/passwd"])
def test_local_and_private_hosts_are_refused_for_the_api(url):
    with pytest.raises(PluginError):
        check_public_host(url)


def test_public_addresses_pass():
    check_public_host("https://93.184.215.14/org/model.git")
    check_public_host("git@[2606:4700::1]:org/x.git")


def test_a_restricted_mirror_follows_no_git_redirect():
    remote, _ = parse_remote("https://93.184.215.14/x.git")
    with git_access(remote, Credentials(password="t"), known_hosts=None, timeout=5, restricted=True) as access:
        config = {access.env[f"GIT_CONFIG_KEY_{i}"]: access.env[f"GIT_CONFIG_VALUE_{i}"]
                  for i in range(int(access.env["GIT_CONFIG_COUNT"]))}
    assert config["http.followRedirects"] == "false"
    assert config["http.https://93.184.215.14/x.git.extraHeader"].startswith("Authorization: Basic ")


class TwoServers:
    """A: an LFS batch endpoint whose download links redirect to B; B records headers."""

    def __init__(self):
        self.seen: list[dict[str, str]] = []
        b = web.Application()
        b.router.add_get("/object", self.object)
        self.b = AioServer(b).start()
        a = web.Application()
        a.router.add_post("/info/lfs/objects/batch", self.batch)
        a.router.add_get("/redirect", self.redirect)
        self.a = AioServer(a).start()

    async def batch(self, request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"objects": [{"oid": o["oid"], "size": o["size"], "actions": {
            "download": {"href": f"{self.a.url}/redirect"}}} for o in body["objects"]]})

    async def redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(f"{self.b.url}/object")

    async def object(self, request: web.Request) -> web.Response:
        self.seen.append(dict(request.headers))
        return web.Response(body=b"data")

    def stop(self) -> None:
        self.a.stop()
        self.b.stop()


def test_credentials_never_follow_a_redirect_to_another_host():
    servers = TwoServers()
    try:
        client = LfsClient(f"{servers.a.url}/info/lfs", headers={"Authorization": "Basic c2VjcmV0"}, stall=10)
        obj = LfsObject("a" * 64, 4)
        (_obj, answer), = list(client.batch("download", [obj]))
        action = answer["actions"]["download"]
        action["header"] = {"Authorization": "Basic c2VjcmV0"}  # as a server might send
        with client.download(obj, action) as chunks:
            assert b"".join(chunks) == b"data"
        assert servers.seen and "Authorization" not in servers.seen[0]
        # A restricted client refuses links and redirects into local networks.
        guarded = LfsClient(f"{servers.a.url}/info/lfs", stall=10, guard=check_public_host)
        with pytest.raises(LfsError, match="refused"), guarded.download(obj, action):
            pass
        with pytest.raises(LfsError, match="refused"), guarded.download(obj, {"href": "http://10.0.0.1/x"}):
            pass
    finally:
        servers.stop()


def test_a_mirror_configured_through_the_api_is_checked_again_at_every_sync(gitd_harness, tmp_path):
    h = gitd_harness(MirrorPlugin, name="mirror", settings={"jitter": 0})
    h.user("alice")
    h.cli("mirror", "add", "alice/up", "http://127.0.0.1:9/x.git", "--interval", "0")
    # As if configured through the API while the host resolved to a public address.
    h.storage.execute("UPDATE {prefix}pull SET restricted = 1")
    h.run_jobs(due_only=True)
    pull = json.loads(h.cli("mirror", "status", "alice/up", "--json")[1])["pull"]
    assert "local or private address" in pull["last_error"]


def test_git_complaints_become_one_clean_line():
    from gitd_plugins.mirror.gitrun import complaint

    ssh = (b"@@@@@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nIT IS POSSIBLE THAT SOMEONE IS "
           b"DOING SOMETHING NASTY!\nHost key verification failed.\nfatal: Could not read from remote repository.\n\n"
           b"Please make sure you have the correct access rights\nand the repository exists.\n")
    assert complaint(ssh) == "Host key verification failed.; fatal: Could not read from remote repository."
    http = b"Receiving objects:  45% (1/2)\rfatal: unable to access 'https://u:p@h.example/x?sig=1': 403\n"
    assert complaint(http) == "fatal: unable to access 'https://h.example/x': 403"
    assert complaint(b"remote: Counting objects: 3\r\x1b[Kweird\x07 text\n") == "weird  text"
