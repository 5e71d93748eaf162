"""Bad input and concurrency (issue 2 §6): every case gets a clean answer, loses nothing, and
the daemon keeps serving."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.rawhttp import FLUSH, basic, parse_pkts, pkt, request, send_and_hang_up, upload_pack_v0_request
from tests.support import unique

UPLOAD_REQ = {"Content-Type": "application/x-git-upload-pack-request"}
RECEIVE_REQ = {"Content-Type": "application/x-git-receive-pack-request"}
ZERO = "0" * 40


@pytest.fixture
def served(daemon, git, tmp_path):
    """A public repo with one pushed commit: (full name, token, work tree, head, bare path)."""
    owner, token = daemon.user()
    repo = daemon.repo(owner)
    work = git.init_work(tmp_path / "w", {"README.md": unique("content") + "\n"})
    git("push", daemon.repo_url(repo, token=token), "main", cwd=work)
    head = git.out("rev-parse", "HEAD", cwd=work)
    return repo, token, work, head, daemon.repo_path(repo)


def _still_serving(daemon, git, repo: str, head: str) -> None:
    assert request(daemon.url, "GET", "/healthz").status == 200
    assert head in git.out("ls-remote", daemon.repo_url(repo))


@pytest.mark.parametrize(
    "body",
    [b"zzzz", b"ffffgarbage", b"0009hello" + FLUSH, b"0032want " + b"0" * 40 + b"\n", b"\x00\x01\x02\x03" * 300,
     b"", b"00", b"0004", b"0003", os.urandom(4096), b"0005x" * 1000],
    ids=["letters", "huge-length", "not-a-want", "cut-want", "binary", "empty", "two-bytes", "empty-pkt",
         "bad-length", "random", "many-bytes"],
)
def test_malformed_upload_pack_bodies_get_a_clean_400(daemon, git, served, body):
    repo, _, _, head, _ = served
    reply = request(daemon.url, "POST", f"/{repo}.git/git-upload-pack", body=body, headers=UPLOAD_REQ)
    if reply.status == 200:  # git could parse enough to answer with its own in-band error
        assert parse_pkts(reply.body)[0].startswith(b"ERR "), reply
    else:
        assert reply.status == 400, reply
        assert reply.headers["content-type"].startswith("text/plain")
        assert reply.body.startswith((b"malformed request", b"git upload-pack refused the request"))
    assert str(daemon.data).encode() not in reply.body  # no server paths in messages
    _still_serving(daemon, git, repo, head)


def test_malformed_receive_pack_bodies_get_a_clean_400_and_change_nothing(daemon, git, served):
    repo, token, _, head, _ = served
    for body in (b"zzzz", b"0050" + b"x" * 76, b"00ff" + os.urandom(251), pkt(f"{ZERO} {head}\n") + FLUSH + b"PACK"):
        reply = request(daemon.url, "POST", f"/{repo}.git/git-receive-pack", body=body,
                        headers={**RECEIVE_REQ, **basic(token)})
        assert reply.status in (200, 400), reply
        if reply.status == 200:  # git read the commands, then reports the failure in-band
            assert b"unpack " in reply.body and b"unpack ok" not in reply.body
    assert git.out("ls-remote", daemon.repo_url(repo)).split() == [head, "HEAD", head, "refs/heads/main"]
    _still_serving(daemon, git, repo, head)


def test_wrong_content_type_and_method(daemon, served):
    repo, _, _, head, _ = served
    body = upload_pack_v0_request([head])
    assert request(daemon.url, "POST", f"/{repo}.git/git-upload-pack", body=body,
                   headers={"Content-Type": "text/plain"}).status == 415
    reply = request(daemon.url, "GET", f"/{repo}.git/git-upload-pack")
    assert reply.status == 405 and "POST" in reply.headers["allow"]


# -- names that try to leave the data directory --------------------------------------------------
TRICKS = [
    "/../outside.git/info/refs?service=git-upload-pack",
    "/%2e%2e/outside.git/info/refs?service=git-upload-pack",
    "/%2E%2E/%2E%2E/outside/info/refs?service=git-upload-pack",
    "/{user}/..%2f..%2f..%2foutside.git/info/refs?service=git-upload-pack",
    "/{user}/%2e%2e%2f%2e%2e%2foutside/info/refs?service=git-upload-pack",
    "/{user}/../../outside.git/info/refs?service=git-upload-pack",
    "/datasets/../../outside.git/info/refs?service=git-upload-pack",
    "/{user}/%2e%2e/info/refs?service=git-upload-pack",
    "/{user}/.git/info/refs?service=git-upload-pack",
    "//{outside}/info/refs?service=git-upload-pack",
    "/{outside_escaped}/info/refs?service=git-upload-pack",
    "/%2F{outside_rel}/x/info/refs?service=git-upload-pack",
    "/{user}/~root/info/refs?service=git-upload-pack",
    "/{user}/caf%C3%A9/info/refs?service=git-upload-pack",
    "/{user}/%EF%BC%8E%EF%BC%8E/info/refs?service=git-upload-pack",
    "/{user}/%E2%80%AEtxt.git/info/refs?service=git-upload-pack",
    "/{user}/%C0%AE%C0%AE/info/refs?service=git-upload-pack",
    "/{user}/a%00b/info/refs?service=git-upload-pack",
    "/{user}/r%0A/info/refs?service=git-upload-pack",
    "/{user}/%5C..%5Coutside/info/refs?service=git-upload-pack",
    "/{user}/..%5C..%5Coutside/info/refs?service=git-upload-pack",
    "/{user}/outside.git.git/info/refs?service=git-upload-pack",
    "/{user}/%252e%252e/info/refs?service=git-upload-pack",
]


@pytest.fixture
def outside(daemon, git, tmp_path):
    """A real git repository next to the data directory, where a path escape would land."""
    sentinel = daemon.data.parent / f"outside-{unique('s')}.git"
    work = git.init_work(tmp_path / "sentinel", {"secret": "outside the data dir\n"})
    git("clone", "-q", "--bare", str(work), str(sentinel))
    link = daemon.data.parent / "outside.git"
    if not link.exists():
        link.symlink_to(sentinel)
    head = git.out("rev-parse", "HEAD", cwd=work)
    # Age every file's access time: relatime updates it on the next read, so a read shows.
    for p in sentinel.rglob("*"):
        st = p.stat()
        os.utime(p, (st.st_mtime - 1000, st.st_mtime))
    yield sentinel, head
    shutil.rmtree(sentinel)
    link.unlink(missing_ok=True)


def _tree_state(root: Path, skip: tuple[Path, ...]) -> dict[str, tuple[int, int, float]]:
    """mtime, size and (for files: listing a directory here changes its own) access time."""
    state = {}
    for p in root.rglob("*"):
        if any(p == s or s in p.parents for s in skip):
            continue
        st = p.lstat()
        state[str(p)] = (st.st_mtime_ns, st.st_size, st.st_atime if p.is_file() else 0.0)
    return state


def test_path_tricks_get_400_or_404_and_never_touch_the_filesystem_outside(daemon, git, served, outside):
    repo, token, _, head, _ = served
    sentinel, sentinel_head = outside
    user = repo.split("/")[0]
    skip = (daemon.data, daemon.log_path)
    before = _tree_state(daemon.data.parent, skip)
    repos_before = sorted((daemon.data / "repos").rglob("*"))
    for trick in TRICKS:
        target = trick.format(user=user, outside=str(sentinel).lstrip("/"),
                              outside_escaped=str(sentinel).replace("/", "%2F"),
                              outside_rel=str(sentinel).lstrip("/").replace("/", "%2F"))
        for method, path, body, headers in (
            ("GET", target, None, {}),
            ("POST", target.replace("/info/refs?service=git-upload-pack", "/git-upload-pack"),
             upload_pack_v0_request([sentinel_head]), UPLOAD_REQ),
            ("POST", target.replace("/info/refs?service=git-upload-pack", "/git-receive-pack"), FLUSH,
             {**RECEIVE_REQ, **basic(token)}),
        ):
            reply = request(daemon.url, method, path, body=body, headers={**headers, **basic(token)})
            assert reply.status in (400, 404), (method, path, reply.status)
            assert sentinel_head.encode() not in reply.body
    assert _tree_state(daemon.data.parent, skip) == before, "something outside the data dir was touched"
    assert sorted((daemon.data / "repos").rglob("*")) == repos_before
    _still_serving(daemon, git, repo, head)


# -- pushes cut off mid-stream ------------------------------------------------------------------
def _push_body(git, work: Path, old: str, new: str) -> bytes:
    revs = f"{new}\n" + (f"^{old}\n" if old != ZERO else "")
    pack = git("pack-objects", "--revs", "--stdout", cwd=work, input=revs.encode()).stdout
    assert pack.startswith(b"PACK")
    return pkt(f"{old} {new} refs/heads/main\0report-status side-band-64k agent=gitd-test\n") + FLUSH + pack


def _no_quarantine_left(bare: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = list((bare / "objects").glob("incoming-*")) + list((bare / "objects" / "pack").glob("tmp_*"))
        if not left:
            return
        time.sleep(0.1)
    raise AssertionError(f"quarantine left behind: {left}")


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_push_cut_off_mid_stream_changes_nothing(daemon, git, served, framing):
    repo, token, work, head, bare = served
    new = git.commit(work, {"weights.bin": os.urandom(2 * 1024 * 1024)}, message="big")
    body = _push_body(git, work, head, new)
    cut = body[: len(body) // 2]
    auth = basic(token)["Authorization"]
    start = (f"POST /{repo}.git/git-receive-pack HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n"
             f"Content-Type: application/x-git-receive-pack-request\r\n")
    if framing == "content-length":
        raw = (start + f"Content-Length: {len(body)}\r\n\r\n").encode() + cut
    else:
        raw = (start + "Transfer-Encoding: chunked\r\n\r\n").encode() + b"%x\r\n" % len(cut) + cut + b"\r\n"
    answer = send_and_hang_up(daemon.url, raw, b"")
    assert b"ok refs/heads/main" not in answer

    _no_quarantine_left(bare)
    assert git.out("--git-dir", str(bare), "rev-parse", "refs/heads/main") == head
    fsck = git("--git-dir", str(bare), "fsck", "--full", "--strict", "--no-dangling", check=False)
    assert fsck.returncode == 0, fsck.stderr
    assert git("--git-dir", str(bare), "cat-file", "-e", new, check=False).returncode != 0
    _still_serving(daemon, git, repo, head)

    # The same body, whole, is a valid push: the cut really was the only problem.
    whole = request(daemon.url, "POST", f"/{repo}.git/git-receive-pack", body=body, headers={**RECEIVE_REQ,
                                                                                              **basic(token)})
    assert whole.status == 200 and b"ok refs/heads/main" in whole.body
    assert git.out("--git-dir", str(bare), "rev-parse", "refs/heads/main") == new


# -- concurrency --------------------------------------------------------------------------------
REJECTED = re.compile(
    rb"! \[rejected\] +\S+ -> main \((fetch first|non-fast-forward)\)"
    rb"|! \[remote rejected\] +\S+ -> main \((failed to update ref|cannot lock ref[^)]*|failed to lock)\)"
)


def test_eight_concurrent_pushes_to_one_branch(daemon, git, served, tmp_path):
    repo, token, work, _, bare = served
    url = daemon.repo_url(repo, token=token)
    clones = []
    for i in range(8):
        clone = tmp_path / f"c{i}"
        git("clone", "-q", str(work), str(clone))
        git("remote", "set-url", "origin", url, cwd=clone)
        clones.append((clone, git.commit(clone, {f"from-{i}.txt": f"{i}\n"}, message=f"push {i}")))

    results: dict[int, subprocess.CompletedProcess] = {}
    gate = threading.Barrier(8)

    def push(i: int) -> None:
        gate.wait()
        results[i] = git("push", "origin", "HEAD:main", cwd=clones[i][0], check=False)

    threads = [threading.Thread(target=push, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)

    winners = [i for i, r in results.items() if r.returncode == 0]
    for r in results.values():
        if r.returncode != 0:
            assert REJECTED.search(r.stderr), r.stderr.decode(errors="replace")
    # All eight started from the same base, so exactly one can land.
    assert len(winners) == 1, {i: r.stderr[-300:] for i, r in results.items()}
    main = git.out("--git-dir", str(bare), "rev-parse", "refs/heads/main")
    assert main == clones[winners[0]][1]
    git("--git-dir", str(bare), "fsck", "--full", "--strict", "--no-dangling")
    _no_quarantine_left(bare)

    # The others rebase and retry, all at once again, until every commit has landed.
    def retry(i: int) -> None:
        clone = clones[i][0]
        for _ in range(30):
            git("pull", "-q", "--rebase", "origin", "main", cwd=clone)
            if git("push", "-q", "origin", "HEAD:main", cwd=clone, check=False).returncode == 0:
                return
        raise AssertionError(f"pusher {i} never landed")

    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            retry(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(8) if i not in winners]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    assert git.out("--git-dir", str(bare), "rev-list", "--count", "refs/heads/main") == "9"
    files = git.out("--git-dir", str(bare), "ls-tree", "--name-only", "refs/heads/main").split()
    assert sorted(f for f in files if f.startswith("from-")) == sorted(f"from-{i}.txt" for i in range(8))
    git("--git-dir", str(bare), "fsck", "--full", "--strict", "--no-dangling")


def _git_processes_for(bare: Path) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if str(bare).encode() in cmdline:
            found.append(int(proc.name))
    return found


def test_client_gone_mid_clone_stops_git_and_the_daemon_keeps_serving(daemon, git, served, tmp_path):
    repo, token, work, _, bare = served
    for i in range(3):
        (work / f"big{i}.bin").write_bytes(os.urandom(4 * 1024 * 1024))
    git("add", ".", cwd=work)
    git("commit", "-qm", "big", cwd=work)
    git("-c", "pack.window=0", "push", "-q", daemon.repo_url(repo, token=token), "main", cwd=work)
    head = git.out("rev-parse", "HEAD", cwd=work)

    body = upload_pack_v0_request([head])
    head_bytes = (f"POST /{repo}.git/git-upload-pack HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
                  "Content-Type: application/x-git-upload-pack-request\r\n\r\n").encode()
    parts = daemon.url.split("//")[1].split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.settimeout(30)
    sock.connect((parts[0], int(parts[1])))
    sock.sendall(head_bytes + body)
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    deadline = time.monotonic() + 10
    while not _git_processes_for(bare) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _git_processes_for(bare), "git upload-pack should be busy sending the pack"
    sock.close()  # the client goes away mid-pack

    deadline = time.monotonic() + 15
    while _git_processes_for(bare) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _git_processes_for(bare), "git kept running for a client that is gone"
    _still_serving(daemon, git, repo, head)
