"""Git Smart HTTP details (issue 2 §4): protocol v2, Git-Protocol checks, gzip, chunked pushes
and the probe, shallow and partial clones."""

from __future__ import annotations

import gzip
import os
import re

import pytest

from tests.e2e.rawhttp import FLUSH, basic, parse_pkts, pkt, request, upload_pack_v0_request
from tests.support import unique

UPLOAD_REQ = {"Content-Type": "application/x-git-upload-pack-request"}
RECEIVE_REQ = {"Content-Type": "application/x-git-receive-pack-request"}


@pytest.fixture(scope="module")
def pushed(daemon, tmp_path_factory):
    """A public repo with three commits; returns (url path, head, work tree, token)."""
    from tests.support import Git

    tmp = tmp_path_factory.mktemp("proto")
    git = Git(tmp / "home")
    user, token = daemon.user()
    repo = daemon.repo(user)
    work = git.init_work(tmp / "w", {"a.txt": "one\n"})
    git.commit(work, {"a.txt": "two\n", "b.txt": "bee\n"})
    git.commit(work, {"a.txt": "three\n"})
    git("push", daemon.repo_url(repo, token=token), "main", cwd=work)
    return f"/{repo}.git", git.out("rev-parse", "HEAD", cwd=work), work, token


def test_fetch_uses_protocol_v2(daemon, git, pushed, tmp_path):
    path, head, _, _ = pushed
    out = git("-c", "protocol.version=2", "clone", "-q", daemon.url + path, str(tmp_path / "c"),
              env={"GIT_TRACE_PACKET": "1"})
    trace = out.stderr.decode(errors="replace")
    assert re.search(r"clone< version 2\b", trace), trace[-2000:]
    assert "command=ls-refs" in trace and "command=fetch" in trace
    assert git.out("rev-parse", "HEAD", cwd=tmp_path / "c") == head


def test_advertisement_is_v2_only_when_asked(daemon, pushed):
    path, head, _, _ = pushed
    v2 = request(daemon.url, "GET", f"{path}/info/refs?service=git-upload-pack", headers={"Git-Protocol": "version=2"})
    assert v2.status == 200
    assert v2.headers["content-type"] == "application/x-git-upload-pack-advertisement"
    assert "no-cache" in v2.headers["cache-control"]
    assert v2.body.startswith(b"000eversion 2\n") and b"ls-refs" in v2.body and b"fetch=" in v2.body

    v0 = request(daemon.url, "GET", f"{path}/info/refs?service=git-upload-pack")
    assert v0.body.startswith(b"001e# service=git-upload-pack\n0000")
    assert head.encode() in v0.body and b"version 2" not in v0.body

    # Pushes are never v2: receive-pack keeps the v0 framing whatever the client asks.
    _, token = pushed[2], pushed[3]
    rp = request(daemon.url, "GET", f"{path}/info/refs?service=git-receive-pack",
                 headers={"Git-Protocol": "version=2", **basic(token)})
    assert rp.status == 200 and rp.body.startswith(b"001f# service=git-receive-pack\n0000")


@pytest.mark.parametrize("hostile", ["version=2 --upload-pack=touch /tmp/pwned", "version=2;id", "version=2:$(id)",
                                     "version=2:../../etc", "version=2:" + "a=b:" * 80 + "c=d",
                                     "version=2,version=1"])
def test_hostile_git_protocol_header_never_reaches_git(daemon, pushed, hostile):
    path, head, _, _ = pushed
    # A valid header makes git answer in v2; a hostile one is dropped whole, so git answers v0.
    reply = request(daemon.url, "GET", f"{path}/info/refs?service=git-upload-pack", headers={"Git-Protocol": hostile})
    assert reply.status == 200
    assert reply.body.startswith(b"001e# service=git-upload-pack\n0000") and b"version 2" not in reply.body
    # Same for the RPC: a v2 command sent under a hostile header is read as v0 and refused cleanly.
    rpc = request(daemon.url, "POST", f"{path}/git-upload-pack", headers={"Git-Protocol": hostile, **UPLOAD_REQ},
                  body=pkt("command=ls-refs\n") + FLUSH)
    assert rpc.status == 400 and b"refused" in rpc.body
    good = request(daemon.url, "POST", f"{path}/git-upload-pack", headers={"Git-Protocol": "version=2", **UPLOAD_REQ},
                   body=pkt("command=ls-refs\n") + FLUSH)
    assert good.status == 200 and head.encode() in good.body


def test_gzip_request_body_is_decompressed_exactly_once(daemon, pushed):
    path, head, _, _ = pushed
    plain = upload_pack_v0_request([head])
    packed = gzip.compress(plain)
    assert packed != plain
    reply = request(daemon.url, "POST", f"{path}/git-upload-pack", body=packed,
                    headers={**UPLOAD_REQ, "Content-Encoding": "gzip"})
    assert reply.status == 200, reply.body
    assert reply.headers["content-type"] == "application/x-git-upload-pack-result"
    pkts = parse_pkts(reply.body)
    assert pkts[0] == b"NAK\n"
    assert any(p and p[:1] == b"\x01" and b"PACK" in p for p in pkts)  # side-band 1 carries the pack
    same = request(daemon.url, "POST", f"{path}/git-upload-pack", body=plain, headers=UPLOAD_REQ)
    assert same.status == 200 and parse_pkts(same.body)[0] == b"NAK\n"

    # Decompressing twice would turn a gzip of a gzip into the plain request; it must not.
    twice = request(daemon.url, "POST", f"{path}/git-upload-pack", body=gzip.compress(packed),
                    headers={**UPLOAD_REQ, "Content-Encoding": "gzip"})
    assert twice.status == 400
    broken = request(daemon.url, "POST", f"{path}/git-upload-pack", body=b"\x1f\x8b\x08\x00garbage" * 10,
                     headers={**UPLOAD_REQ, "Content-Encoding": "gzip"})
    assert broken.status == 400


def test_real_client_gzips_big_negotiations(daemon, git, tmp_path):
    """git gzips fetch requests over 1 KiB: many wanted refs make one."""
    user, token = daemon.user()
    repo = daemon.repo(user)
    work = git.init_work(tmp_path / "w")
    for i in range(40):
        git.commit(work, {f"f{i}": str(i)}, message=f"c{i}")
        git("branch", f"branch-{i:02d}", cwd=work)
    git("push", daemon.repo_url(repo, token=token), "--all", cwd=work)
    out = git("-c", "protocol.version=0", "clone", "-q", "--mirror", daemon.repo_url(repo), str(tmp_path / "m"),
              env={"GIT_TRACE_CURL": "1", "GIT_TRACE_CURL_NO_DATA": "1"})
    trace = out.stderr.decode(errors="replace")
    assert "Content-Encoding: gzip" in trace
    assert len(git.out("for-each-ref", cwd=tmp_path / "m").splitlines()) == 41


def test_big_push_goes_chunked_after_the_probe(daemon, git, tmp_path):
    user, token = daemon.user()
    repo = daemon.repo(user)
    blob = os.urandom(3 * 1024 * 1024)  # > http.postBuffer (1 MiB), < the 10 MiB policy limit
    work = git.init_work(tmp_path / "w", {"weights.bin": blob})
    out = git("push", daemon.repo_url(repo, token=token), "main", cwd=work,
              env={"GIT_TRACE_CURL": "1", "GIT_TRACE_CURL_NO_DATA": "1"})
    trace = out.stderr.decode(errors="replace")
    posts = [m.start() for m in re.finditer(r"Send header: POST /\S+/git-receive-pack", trace)]
    assert len(posts) == 2, "a probe POST, then the real one"
    assert "Send header: Content-Length: 4\n" in trace[posts[0]:posts[1]]  # the probe: "0000"
    assert "Send header: Transfer-Encoding: chunked" in trace[posts[1]:]
    clone = tmp_path / "c"
    git("clone", "-q", daemon.repo_url(repo), str(clone))
    assert (clone / "weights.bin").read_bytes() == blob


def test_probe_post_is_answered_with_an_empty_200(daemon, pushed):
    path, _, _, token = pushed
    for service, auth in (("receive-pack", basic(token)), ("upload-pack", {})):
        reply = request(daemon.url, "POST", f"{path}/git-{service}", body=FLUSH,
                        headers={"Content-Type": f"application/x-git-{service}-request", **auth})
        assert reply.status == 200, reply.body
        assert reply.headers["content-type"] == f"application/x-git-{service}-result"
        assert reply.body == b""
    # The probe is where a push without credentials learns it must authenticate.
    anon = request(daemon.url, "POST", f"{path}/git-receive-pack", body=FLUSH, headers=RECEIVE_REQ)
    assert anon.status == 401 and anon.headers["www-authenticate"].startswith("Basic")


def test_chunked_request_bodies_from_any_client(daemon, pushed):
    path, head, _, _ = pushed
    body = upload_pack_v0_request([head])
    reply = request(daemon.url, "POST", f"{path}/git-upload-pack", headers=UPLOAD_REQ,
                    body=iter([body[:7], body[7:30], body[30:]]))
    assert reply.status == 200 and parse_pkts(reply.body)[0] == b"NAK\n"


def test_shallow_clone_then_unshallow(daemon, git, pushed, tmp_path):
    path, head, _, _ = pushed
    clone = tmp_path / "shallow"
    git("clone", "-q", "--depth", "1", daemon.url + path, str(clone))
    assert git.out("rev-list", "--count", "HEAD", cwd=clone) == "1"
    assert (clone / ".git" / "shallow").read_text().strip() == head
    git("fetch", "-q", "--unshallow", cwd=clone)
    assert git.out("rev-list", "--count", "HEAD", cwd=clone) == "3"
    git("fsck", "--strict", cwd=clone)


def test_partial_clone_fetches_missing_blobs_lazily(daemon, git, pushed, tmp_path):
    path, _, _, _ = pushed
    clone = tmp_path / "partial"
    git("clone", "-q", "--filter=blob:none", daemon.url + path, str(clone))
    assert git.out("config", "remote.origin.partialclonefilter", cwd=clone) == "blob:none"
    missing = [ln for ln in git.out("rev-list", "--objects", "--all", "--missing=print", cwd=clone).splitlines()
               if ln.startswith("?")]
    assert missing, "older blobs stay on the server"
    assert (clone / "a.txt").read_text() == "three\n"
    # Reading an old version fetches its blob on demand.
    assert git.out("show", "HEAD~2:a.txt", cwd=clone) == "one"
    still = [ln for ln in git.out("rev-list", "--objects", "--all", "--missing=print", cwd=clone).splitlines()
             if ln.startswith("?")]
    assert len(still) == len(missing) - 1


def test_upload_archive_and_dumb_http_are_not_served(daemon, pushed):
    path, _, _, _ = pushed
    for query in ("", "?service=git-upload-archive", "?service=nonsense"):
        assert request(daemon.url, "GET", f"{path}/info/refs{query}").status == 403
    assert request(daemon.url, "GET", f"{path}/HEAD").status == 404
    assert request(daemon.url, "GET", f"{path}/objects/info/packs").status == 404
    assert request(daemon.url, "POST", f"/{unique('x')}/y/git-upload-archive", body=FLUSH).status == 404


def test_v2_capabilities_follow_the_repository_config(daemon, git, pushed):
    """The v2 advertisement is answered from memory after the first time; a config change
    must still show at once."""
    path, _, _, _ = pushed
    target = f"{path}/info/refs?service=git-upload-pack"
    v2 = {"Git-Protocol": "version=2"}
    first = request(daemon.url, "GET", target, headers=v2).body
    assert request(daemon.url, "GET", target, headers=v2).body == first
    assert b"ls-refs=unborn\n" in first
    bare = daemon.repo_path(path.strip("/").removesuffix(".git"))
    git("--git-dir", str(bare), "config", "lsrefs.unborn", "ignore")
    try:
        changed = request(daemon.url, "GET", target, headers=v2).body
        assert b"ls-refs\n" in changed and b"ls-refs=unborn" not in changed
    finally:
        git("--git-dir", str(bare), "config", "--unset", "lsrefs.unborn")
    assert request(daemon.url, "GET", target, headers=v2).body == first


def test_empty_repository_clones_and_takes_a_first_push(daemon, git, tmp_path):
    user, token = daemon.user()
    repo = daemon.repo(user, repo_type="space")
    clone = tmp_path / "empty"
    out = git("clone", daemon.repo_url(repo, token=token, repo_type="space"), str(clone))
    assert b"empty repository" in out.stderr
    git.commit(clone, {"app.py": "print('hi')\n"})
    git("push", "-q", "origin", "HEAD:main", cwd=clone)
    assert git.out("ls-remote", "--symref", daemon.repo_url(repo, repo_type="space"), "HEAD").startswith(
        "ref: refs/heads/main\tHEAD")
