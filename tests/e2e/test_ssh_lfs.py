"""Git LFS over SSH with the real clients (Debian's git-lfs 3.3.0, OpenSSH, and asyncssh
for what git-lfs never sends).

* The pure-SSH protocol (``git-lfs-transfer``, on by default): push and clone on both
  storage backends, locks and the lock check before a push, access rules, forged uploads.
* With ``[ssh] lfs_transfer = false``: git-lfs falls back to ``git-lfs-authenticate``,
  whose token carries the objects over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from tests.e2e.lfs_ssh_client import TransferSession, connect
from tests.e2e.sshclient import SSHClient, SSHUsers, stderr
from tests.lfs_support import MIB, Backend, http, lfs_git, lfs_work, random_bytes, sha256, sha256_file
from tests.support import Daemon, new_daemon, unique


@pytest.fixture
def ssh_user(daemon, tmp_path) -> SSHUsers:
    return SSHUsers(daemon, tmp_path)


def lfs_ssh_bytes(d: Daemon) -> tuple[float, float]:
    """(received, sent) LFS object bytes the daemon counted for its SSH transport."""
    text = urllib.request.urlopen(f"{d.url}/metrics", timeout=10).read().decode()

    def value(name: str) -> float:
        found = re.search(rf'^{name}{{transport="ssh"}} (\S+)$', text, re.M)
        return float(found.group(1)) if found else 0.0

    return value("gitd_lfs_bytes_received_total"), value("gitd_lfs_bytes_sent_total")


def traced(client: SSHClient) -> dict[str, str]:
    return {**client.env(), "GIT_TRACE": "1"}


def assert_pure_ssh(trace: str, path: str, operation: str) -> None:
    assert f"git-lfs-transfer {path} {operation}" in trace, trace[-3000:]
    assert "pure SSH protocol connection failed" not in trace and "git-lfs-authenticate" not in trace


# -- the pure-SSH protocol with git-lfs 3.3.0 ---------------------------------------------------------------
def test_lfs_push_and_clone_over_pure_ssh(backend, git, tmp_path, have_tool):
    have_tool("git-lfs")
    d = backend.daemon
    git = lfs_git(git)
    users = SSHUsers(d, tmp_path)
    owner, _, client = users()
    _, _, stranger = users()
    repo = d.repo(owner, private=True)
    files = {"weights/model.bin": random_bytes(2 * MIB + 5), "tiny.bin": b"tiny\n", "README.md": b"# card\n"}
    lfs_sizes = len(files["weights/model.bin"]) + len(files["tiny.bin"])
    work = lfs_work(git, tmp_path / "work", files)
    git("remote", "add", "origin", client.url(f"{repo}.git"), cwd=work)

    received, sent = lfs_ssh_bytes(d)
    push = git("push", "origin", "main", cwd=work, env=traced(client))
    assert_pure_ssh(stderr(push), f"/{repo}.git", "upload")
    for name in ("weights/model.bin", "tiny.bin"):
        assert backend.stored(sha256(files[name])), name
    assert lfs_ssh_bytes(d)[0] == received + lfs_sizes

    # the repository holds them now: the batch answers noop and no byte travels again
    git("lfs", "push", "--all", "origin", cwd=work, env=client.env())
    assert lfs_ssh_bytes(d)[0] == received + lfs_sizes

    clone = tmp_path / "clone"
    cloned = git("clone", "-q", client.url(repo), str(clone), env=traced(client))
    assert_pure_ssh(stderr(cloned), f"/{repo}", "download")
    for name, data in files.items():
        assert sha256_file(clone / name) == sha256(data), name
    assert lfs_ssh_bytes(d)[1] == sent + lfs_sizes

    refused = git("clone", "-q", stranger.url(repo), str(tmp_path / "stranger"), check=False, env=stranger.env())
    assert refused.returncode != 0 and "repository not found" in stderr(refused)
    proc = stranger.run("git-lfs-transfer", f"/{repo}.git", "download")
    assert proc.returncode == 1 and b"gitd: repository not found" in proc.stderr and proc.stdout == b""


def test_forged_put_object_is_refused_and_stores_nothing(backend, tmp_path):
    """A client that sends other bytes (or another size) than the oid it names gets 422,
    and neither the object nor a temporary is left; the session goes on."""
    d = backend.daemon
    owner, _, client = SSHUsers(d, tmp_path)()
    repo = d.repo(owner)
    real, forged = random_bytes(300_000), random_bytes(300_000)
    oid = sha256(real)

    async def go() -> None:
        async with connect(client) as conn:
            session = await TransferSession.open(conn, f"/{repo}.git", "upload")
            assert session.capabilities == ["version=1", "locking"]
            bad = await session.put(forged, oid=oid)
            assert bad.status == 422 and "SHA-256" in bad.lines[0]
            short = await session.put(real[:1000], oid=oid, size=len(real))
            assert short.status == 422
            assert not backend.stored(oid) and backend.leftovers() == []
            assert (await session.request(f"verify-object {oid}", f"size={len(real)}")).status == 404
            batch = await session.request("batch", "transfer=ssh", "hash-algo=sha256", lines=[f"{oid} {len(real)}"])
            assert batch.lines == [f"{oid} {len(real)} upload"]

            # the same session then uploads the real bytes
            assert (await session.put(real)).status == 200
            assert (await session.request(f"verify-object {oid}", f"size={len(real)}")).status == 200
            assert await session.quit() == 0

            reader = await TransferSession.open(conn, f"/{repo}.git", "download")
            got = await reader.get(oid, len(real))
            assert got.status == 200 and got.arg("size") == str(len(real)) and got.data == real
            await reader.quit()

    async def hang_up_halfway() -> None:
        other = random_bytes(400_000)
        async with connect(client) as conn:
            session = await TransferSession.open(conn, f"/{repo}.git", "upload")
            wire = session.put_request(other)
            session.process.stdin.write(wire[: len(wire) // 2])
            await session.process.stdin.drain()
            for _ in range(100):  # on local disk the half-written temporary shows: hang up then
                if backend.kind != "local" or backend.leftovers():
                    break
                await asyncio.sleep(0.02)
            assert backend.kind != "local" or backend.leftovers()
        for _ in range(100):  # the daemon notices the hang-up and throws the partial object away
            if backend.leftovers() == []:
                break
            await asyncio.sleep(0.05)
        assert backend.leftovers() == [] and not backend.stored(sha256(other))

    asyncio.run(go())
    assert backend.read(oid) == real and backend.leftovers() == []
    asyncio.run(hang_up_halfway())


def test_objects_of_private_and_other_repositories_stay_out_of_reach(daemon, ssh_user):
    """Knowing an oid gets nothing: a repository serves only what was uploaded to it, and a
    private repository answers as a missing one."""
    owner, _, client = ssh_user()
    stranger, _, stranger_client = ssh_user()
    private, own = daemon.repo(owner, private=True), daemon.repo(stranger)
    secret = random_bytes(20_000)
    oid = sha256(secret)

    async def go() -> None:
        async with connect(client) as conn:
            session = await TransferSession.open(conn, f"/{private}.git", "upload")
            assert (await session.put(secret)).status == 200
            await session.quit()
        async with connect(stranger_client) as conn:
            refused = await conn.run(f"git-lfs-transfer /{private}.git download", stdin=asyncssh.DEVNULL,
                                     encoding=None, timeout=30)
            assert refused.exit_status == 1 and b"gitd: repository not found" in refused.stderr
            assert refused.stdout == b""
            session = await TransferSession.open(conn, f"/{own}.git", "download")
            # the batch still names a download (git-lfs then reports the 404 with the oid)...
            batch = await session.request("batch", "transfer=ssh", "hash-algo=sha256", lines=[f"{oid} 20000"])
            assert batch.status == 200 and batch.lines == [f"{oid} 20000 download"]
            # ...but get-object answers as for an object nobody has
            got = await session.get(oid, 20_000)
            assert got.status == 404 and got.data == b"" and "not found" in got.lines[0]
            assert (await session.get("0" * 64, 1)).lines == got.lines
            await session.quit()

    asyncio.run(go())


def test_a_missing_object_is_reported_with_its_oid_and_the_rest_is_downloaded(daemon, git, ssh_user, tmp_path):
    """git-lfs 3.3.0 has no per-object error in this protocol: the batch names a download,
    get-object answers 410 for an object storage lost, and the client reports that after
    its retries (one here, to keep the test short) while the other files arrive."""
    git = lfs_git(git)
    owner, _, client = ssh_user()
    repo = daemon.repo(owner)
    lost, kept = random_bytes(5000), random_bytes(100)
    work = lfs_work(git, tmp_path / "work", {"lost.bin": lost, "kept.bin": kept})
    git("push", client.url(repo), "main", cwd=work, env=client.env())
    Backend("local", daemon).path(sha256(lost)).unlink()

    clone = tmp_path / "clone"
    git("clone", "-q", client.url(repo), str(clone), env={**client.env(), "GIT_LFS_SKIP_SMUDGE": "1"})
    pull = git("-c", "lfs.transfer.maxretries=1", "lfs", "pull", cwd=clone, env=client.env(), check=False)
    assert pull.returncode != 0
    assert f"got status 410 when fetching OID {sha256(lost)}" in stderr(pull)
    assert "push it again" in stderr(pull)
    assert (clone / "kept.bin").read_bytes() == kept
    assert (clone / "lost.bin").read_bytes().startswith(b"version https://git-lfs.github.com/spec/v1")


def test_locks_over_pure_ssh_are_the_http_locks(daemon, git, ssh_user, tmp_path, have_tool):
    """lock, locks, unlock and the lock check before a push (3.3.0's ``list-locks``) over
    SSH, on the same lock table as the HTTP locks API."""
    have_tool("git-lfs")
    git = lfs_git(git)
    admin, admin_token, admin_ssh = ssh_user()
    writer, writer_token, writer_ssh = ssh_user()
    org = unique("org")
    daemon.cli("org", "create", org, "--owner", admin)
    daemon.cli("org", "add-member", org, writer, "--role", "write")
    repo = daemon.repo(org)
    http_locks = f"{daemon.repo_url(repo)}/info/lfs/locks"

    def http_lock_paths(token: str) -> dict[str, str]:
        reply = http("GET", http_locks, headers={"Authorization": f"Bearer {token}"})
        assert reply.status == 200, reply.body
        return {lock["path"]: lock["owner"]["name"] for lock in reply.json()["locks"]}

    mine = lfs_work(git, tmp_path / "admin", {"data.bin": random_bytes(1000), "notes.bin": random_bytes(10)})
    git("remote", "add", "origin", admin_ssh.url(f"{repo}.git"), cwd=mine)
    git("push", "origin", "main", cwd=mine, env=admin_ssh.env())
    theirs = tmp_path / "writer"
    git("clone", "-q", writer_ssh.url(f"{repo}.git"), str(theirs), env=writer_ssh.env())
    git("config", "lfs.locksverify", "true", cwd=theirs)

    locked = git("lfs", "lock", "data.bin", cwd=mine, env=traced(admin_ssh))
    assert "Locked data.bin" in locked.stdout.decode()
    assert_pure_ssh(stderr(locked), f"/{repo}.git", "upload")
    assert http_lock_paths(writer_token) == {"data.bin": admin}  # taken over SSH, seen over HTTP

    listed = git("lfs", "locks", cwd=theirs, env=traced(writer_ssh))
    assert_pure_ssh(stderr(listed), f"/{repo}.git", "download")
    assert "data.bin" in listed.stdout.decode() and admin in listed.stdout.decode()
    taken = git("lfs", "lock", "data.bin", cwd=theirs, env=writer_ssh.env(), check=False)
    assert taken.returncode != 0 and "already locked" in stderr(taken)

    # push-time verification refuses the writer's change to the admin's locked file
    git.commit(theirs, {"data.bin": random_bytes(1000)}, message="edit locked file")
    blocked = git("push", "origin", "main", cwd=theirs, env={**traced(writer_ssh), "GIT_TRACE_PACKET": "1"},
                  check=False)
    said = (blocked.stdout + blocked.stderr).decode()
    assert blocked.returncode != 0
    assert "packet 00 > list-locks" in said and "git-lfs-authenticate" not in said
    assert "Unable to push locked files" in said and f"data.bin - {admin}" in said
    for args in (["data.bin"], ["--force", "data.bin"]):
        denied = git("lfs", "unlock", *args, cwd=theirs, env=writer_ssh.env(), check=False)
        assert denied.returncode != 0 and "locked by" in stderr(denied)

    # a lock taken over HTTP shows over SSH, and blocks the admin's own lock on that path
    made = http("POST", http_locks, json.dumps({"path": "notes.bin"}).encode(),
                {"Authorization": f"Bearer {writer_token}", "Content-Type": "application/vnd.git-lfs+json"})
    assert made.status == 201, made.body
    listed = git("lfs", "locks", cwd=mine, env=admin_ssh.env()).stdout.decode()
    assert "notes.bin" in listed and writer in listed

    # git-lfs never sends --force over pure SSH: the admin is told how to break the lock
    forced = git("lfs", "unlock", "--force", "notes.bin", cwd=mine, env=admin_ssh.env(), check=False)
    assert forced.returncode != 0 and "over HTTPS" in stderr(forced)
    https = f"{daemon.repo_url(repo, token=admin_token)}/info/lfs"
    git("-c", f"lfs.url={https}", "lfs", "unlock", "--force", "notes.bin", cwd=mine)

    git("lfs", "unlock", "data.bin", cwd=mine, env=admin_ssh.env())
    assert http_lock_paths(admin_token) == {}
    git("push", "origin", "main", cwd=theirs, env=writer_ssh.env())


def test_read_only_members_download_but_cannot_upload_or_lock(daemon, git, ssh_user, tmp_path, have_tool):
    have_tool("git-lfs")
    git = lfs_git(git)
    admin, _, admin_ssh = ssh_user()
    reader, _, reader_ssh = ssh_user()
    org = unique("org")
    daemon.cli("org", "create", org, "--owner", admin)
    daemon.cli("org", "add-member", org, reader, "--role", "read")
    repo = daemon.repo(org, private=True)
    data = random_bytes(30_000)
    work = lfs_work(git, tmp_path / "admin", {"data.bin": data})
    git("push", admin_ssh.url(repo), "main", cwd=work, env=admin_ssh.env())

    clone = tmp_path / "reader"
    git("clone", "-q", reader_ssh.url(repo), str(clone), env=reader_ssh.env())
    assert (clone / "data.bin").read_bytes() == data
    git("lfs", "locks", cwd=clone, env=reader_ssh.env())

    refused = git("lfs", "lock", "data.bin", cwd=clone, env=reader_ssh.env(), check=False)
    assert refused.returncode != 0 and "write access" in stderr(refused)
    extra = random_bytes(2000)
    git.commit(clone, {"extra.bin": extra})
    pushed = git("lfs", "push", "origin", "main", cwd=clone, env=reader_ssh.env(), check=False)
    assert pushed.returncode != 0 and "write access" in stderr(pushed)
    assert not Backend("local", daemon).stored(sha256(extra))

    async def forge() -> None:  # what git-lfs would not even try
        async with connect(reader_ssh) as conn:
            session = await TransferSession.open(conn, f"/{repo}.git", "upload")
            put = await session.put(extra)
            assert put.status == 403 and "write access" in put.lines[0]
            assert (await session.request("lock", "path=data.bin")).status == 403
            await session.quit()

    asyncio.run(forge())
    assert not Backend("local", daemon).stored(sha256(extra))


# -- with [ssh] lfs_transfer = false: git-lfs-authenticate and LFS over HTTP ------------------------------------
@pytest.fixture(scope="module")
def fallback_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = new_daemon(tmp_path_factory.mktemp("fallback"), {"ssh.lfs_transfer": False})
    d.start()
    yield d
    d.stop()


def test_git_lfs_authenticate_hands_out_a_token_for_one_repo_and_operation(daemon, git, ssh_user, tmp_path):
    user, _, client = ssh_user()
    repo, other = daemon.repo(user, private=True), daemon.repo(user, private=True)
    work = git.init_work(tmp_path / "w")
    for name in (repo, other):
        git("push", client.url(name), "main", cwd=work, env=client.env())

    def authenticate(path: str, operation: str) -> dict:
        proc = client.run("git-lfs-authenticate", path, operation)
        assert proc.returncode == 0, stderr(proc)
        return json.loads(proc.stdout)

    down = authenticate(f"/{repo}.git", "download")
    assert set(down) == {"href", "header", "expires_in"}
    assert down["href"] == f"{daemon.url}/{repo}.git/info/lfs"
    assert isinstance(down["expires_in"], int) and down["expires_in"] == 3600
    assert down["header"]["Authorization"].startswith("Bearer ")
    assert authenticate(repo, "download")["href"] == down["href"]  # unquoted, relative form

    def with_token(auth: dict, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return git("-c", f"http.extraHeader=Authorization: {auth['header']['Authorization']}", *args,
                   cwd=cwd, check=False)

    head = git.out("rev-parse", "HEAD", cwd=work)
    assert head in with_token(down, "ls-remote", daemon.repo_url(repo)).stdout.decode()
    elsewhere = with_token(down, "ls-remote", daemon.repo_url(other))
    assert elsewhere.returncode != 0 and b"not found" in elsewhere.stderr.lower()
    git.commit(work, {"n": "1"})
    refused = with_token(down, "push", daemon.repo_url(repo), "main", cwd=work)
    assert refused.returncode != 0 and b"write access" in refused.stderr
    up = authenticate(f"/{repo}.git", "upload")
    assert with_token(up, "push", daemon.repo_url(repo), "main", cwd=work).returncode == 0

    dataset = daemon.repo(user, repo_type="dataset")
    assert authenticate(f"/datasets/{dataset}.git", "upload")["href"] == f"{daemon.url}/datasets/{dataset}.git/info/lfs"

    _, _, stranger = ssh_user()
    proc = stranger.run("git-lfs-authenticate", repo, "download")
    assert proc.returncode == 1 and b"gitd: repository not found" in proc.stderr and proc.stdout == b""


def test_lfs_over_git_lfs_authenticate_when_pure_ssh_is_off(fallback_daemon, git, tmp_path, have_tool):
    """git-lfs 3.3.0 over an ssh:// remote: the pure-SSH attempt fails, git-lfs-authenticate's
    token then carries the objects and the locks over HTTP, and the push itself goes over SSH."""
    have_tool("git-lfs")
    d = fallback_daemon
    git = lfs_git(git)
    users = SSHUsers(d, tmp_path)
    owner, _, client = users()
    _, _, stranger = users()
    repo = d.repo(owner, private=True)
    files = {"weights/model.bin": random_bytes(2 * MIB + 5), "README.md": b"# card\n"}
    work = lfs_work(git, tmp_path / "work", files)
    git("remote", "add", "origin", client.url(f"{repo}.git"), cwd=work)
    push = git("push", "origin", "main", cwd=work, env=traced(client))
    trace = stderr(push)
    assert f"git-lfs-transfer /{repo}.git upload" in trace and "pure SSH protocol connection failed" in trace
    assert f"git-lfs-authenticate /{repo}.git upload" in trace
    assert Backend("local", d).stored(sha256(files["weights/model.bin"]))

    locks = git("lfs", "locks", cwd=work, env=traced(client))
    assert f"git-lfs-authenticate /{repo}.git download" in stderr(locks)
    assert f"HTTP: GET {d.url}/{repo}.git/info/lfs/locks" in stderr(locks)

    clone = tmp_path / "clone"
    git("clone", "-q", client.url(repo), str(clone), env=client.env())
    for name, data in files.items():
        assert sha256_file(clone / name) == sha256(data), name
    assert lfs_ssh_bytes(d) == (0.0, 0.0)
    refused = git("clone", "-q", stranger.url(repo), str(tmp_path / "stranger"), check=False, env=stranger.env())
    assert refused.returncode != 0 and "repository not found" in stderr(refused)
