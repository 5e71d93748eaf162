"""Attack: gzip bombs, bodies a few hundred KiB on the wire that inflate to gigabytes (issue 19,
finding 8). Only git's Smart HTTP requests are inflated, with a ratio and a size cap; any
other route refuses a compressed body unread (415), and no 404 inflates while draining."""

from __future__ import annotations

import threading
import zlib

from tests.e2e.attacks.tools import HealthProbe, connect, cpu_seconds, head, read_reply, rss, status
from tests.e2e.rawhttp import FLUSH, pkt

MIB = 1024 * 1024


def gzip_of(unit: bytes, size: int, prefix: bytes = b"") -> bytes:
    """gzip of ``prefix`` and ``unit`` repeated to ``size`` bytes (deflate's best ratio: about 1000 to 1)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = unit * (MIB // len(unit))
    return comp.compress(prefix) + b"".join(comp.compress(block) for _ in range(size // MIB)) + comp.flush()


def _post_all(url: str, requests: list[tuple[str, str, bytes]]) -> list[bytes]:
    replies: list[bytes] = [b""] * len(requests)

    def one(i: int, target: str, content_type: str, body: bytes) -> None:
        sock = connect(url)
        try:
            sock.sendall(head("POST", target, {"Content-Type": content_type, "Content-Encoding": "gzip",
                                               "Content-Length": str(len(body)), "Connection": "close"}) + body)
            replies[i] = read_reply(sock, 30)
        finally:
            sock.close()

    threads = [threading.Thread(target=one, args=(i, *r)) for i, r in enumerate(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return replies


def test_regression_gzip_bombs_are_not_inflated(make_daemon, git, tmp_path):
    d = make_daemon()
    user, token = d.user()
    repo = d.repo(user)
    work = git.init_work(tmp_path / "w")
    git("push", d.repo_url(repo, token=token), "main", cwd=work)
    want = git.out("rev-parse", "HEAD", cwd=work)

    zeros = gzip_of(b"\0", 256 * MIB)
    # A fetch that wants the head, then has one commit over and over: git reads it all.
    haves = gzip_of(pkt(f"have {'1' * 40}\n"), 256 * MIB, prefix=pkt(f"want {want} side-band-64k\n") + FLUSH)
    assert len(zeros) < MIB and len(haves) < MIB
    requests = ([("/no/such/route", "application/octet-stream", zeros)] * 6
                + [("/api/repos/create", "application/json", zeros)] * 6
                + [(f"/{repo}.git/git-upload-pack", "application/x-git-upload-pack-request", haves)] * 6)
    cpu_before, rss_before = cpu_seconds(d), rss(d)
    with HealthProbe(d.url) as probe:
        replies = _post_all(d.url, requests)
    cpu = cpu_seconds(d) - cpu_before
    # Inflated, these are 4.5 GiB (seconds of CPU per GiB); refused, they cost next to nothing.
    assert cpu < 3.0, f"the daemon spent {cpu:.1f} s of CPU on 18 compressed requests"
    assert rss(d) - rss_before < 100 * MIB
    probe.check()
    assert [status(r) for r in replies] == [404] * 6 + [415] * 6 + [413] * 6, [r[:80] for r in replies]
    assert b"compressed request bodies are not accepted" in replies[6]
    assert b"inflates more than 50 times" in replies[12]


def test_git_still_gets_gzipped_negotiations_and_other_encodings_are_refused(make_daemon, git, tmp_path):
    d = make_daemon()
    user, token = d.user()
    repo = d.repo(user)
    work = git.init_work(tmp_path / "w")
    for i in range(40):  # many refs: git gzips the fetch request (> 1 KiB)
        git.commit(work, {f"f{i}": str(i)}, message=f"c{i}")
        git("branch", f"b{i:02d}", cwd=work)
    git("push", d.repo_url(repo, token=token), "--all", cwd=work)
    out = git("-c", "protocol.version=0", "clone", "-q", "--mirror", d.repo_url(repo), str(tmp_path / "m"),
              env={"GIT_TRACE_CURL": "1", "GIT_TRACE_CURL_NO_DATA": "1"})
    assert "Content-Encoding: gzip" in out.stderr.decode(errors="replace")
    assert len(git.out("for-each-ref", cwd=tmp_path / "m").splitlines()) == 41

    sock = connect(d.url)
    body = zlib.compress(b"0000")
    sock.sendall(head("POST", f"/{repo}.git/git-upload-pack",
                      {"Content-Type": "application/x-git-upload-pack-request", "Content-Encoding": "deflate",
                       "Content-Length": str(len(body))}) + body)
    reply = read_reply(sock, 10)
    sock.close()
    assert status(reply) == 415 and b"deflate" in reply
