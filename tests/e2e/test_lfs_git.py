"""Git LFS with the real git-lfs client (Debian's 3.3.0) against a real daemon, on local
disk and on S3 (SeaweedFS). Lock and policy scenarios live in the database only, so
they run once, on the local backend."""

from __future__ import annotations

import pytest

from tests.lfs_support import MIB, LfsClient, lfs_git, lfs_work, random_bytes, sha256, sha256_file
from tests.support import unique


def test_track_push_clone_smudge_and_pull(backend, git, tmp_path):
    d = backend.daemon
    git = lfs_git(git)
    user, token = d.user()
    repo = d.repo(user)
    files = {"weights/model.bin": random_bytes(3 * MIB + 17), "tiny.bin": b"tiny\n", "README.md": b"# model\n"}
    work = lfs_work(git, tmp_path / "work", files)
    git("push", d.repo_url(repo, token=token), "main", cwd=work)

    # git holds pointers; storage holds the bytes
    assert git.out("show", "HEAD:tiny.bin", cwd=work).startswith("version https://git-lfs.github.com/spec/v1")
    for name in ("weights/model.bin", "tiny.bin"):
        assert backend.stored(sha256(files[name]))

    clone = tmp_path / "clone"
    git("clone", "-q", d.repo_url(repo, token=token), str(clone))
    for name, data in files.items():
        assert sha256_file(clone / name) == sha256(data), name

    skipped = tmp_path / "skipped"
    git("clone", "-q", d.repo_url(repo, token=token), str(skipped), env={"GIT_LFS_SKIP_SMUDGE": "1"})
    assert (skipped / "weights" / "model.bin").stat().st_size < 200  # still a pointer
    git("lfs", "pull", cwd=skipped)
    for name, data in files.items():
        assert sha256_file(skipped / name) == sha256(data), name


def test_anonymous_clone_of_public_repo_smudges_and_private_stays_closed(backend, git, tmp_path):
    d = backend.daemon
    git = lfs_git(git)
    owner, token = d.user()
    _, stranger = d.user()
    public, private = d.repo(owner), d.repo(owner, private=True)
    data = random_bytes(50_000)
    work = lfs_work(git, tmp_path / "work", {"a.bin": data})
    for repo in (public, private):
        git("push", d.repo_url(repo, token=token), "main", cwd=work)

    git("clone", "-q", d.repo_url(public), str(tmp_path / "anon"))
    assert sha256_file(tmp_path / "anon" / "a.bin") == sha256(data)

    refused = git("clone", "-q", d.repo_url(private, token=stranger), str(tmp_path / "stranger"), check=False)
    assert refused.returncode != 0 and b"not found" in refused.stderr.lower()
    # even with the oid in hand, the stranger's own credentials reach nothing
    for client in (LfsClient(d, private), LfsClient(d, private, stranger)):
        assert client.batch("download", [(sha256(data), len(data))]).status in (401, 404)


def test_push_with_pointers_to_missing_objects_is_refused_until_they_are_uploaded(local_backend, git, tmp_path):
    d = local_backend.daemon
    git = lfs_git(git)
    user, token = d.user()
    repo = d.repo(user)
    work = lfs_work(git, tmp_path / "work", {"big.bin": random_bytes(20_000), "docs/other.bin": random_bytes(10),
                                              "README.md": b"hi\n"})
    git("remote", "add", "origin", d.repo_url(repo, token=token), cwd=work)

    # --no-verify skips git-lfs's pre-push hook, so the objects never reach the server
    refused = git("push", "--no-verify", "origin", "main", cwd=work, check=False)
    assert refused.returncode != 0
    message = refused.stderr.decode()
    assert "big.bin" in message and "docs/other.bin" in message and "README.md" not in message
    assert "git lfs push" in message
    assert git("ls-remote", d.repo_url(repo, token=token)).stdout == b""

    git("lfs", "push", "--all", "origin", cwd=work)
    git("push", "--no-verify", "origin", "main", cwd=work)

    # objects another repository holds do not count for this one (tenant isolation)
    other = d.repo(user)
    refused = git("push", "--no-verify", d.repo_url(other, token=token), "main", cwd=work, check=False)
    assert refused.returncode != 0 and "big.bin" in refused.stderr.decode()
    git("push", d.repo_url(other, token=token), "main", cwd=work)  # the pre-push hook uploads first


def test_locks_with_the_real_client(local_backend, git, tmp_path):
    d = local_backend.daemon
    git = lfs_git(git)
    admin, admin_token = d.user()
    writer, writer_token = d.user()
    org = unique("org")
    d.cli("org", "create", org, "--owner", admin)
    d.cli("org", "add-member", org, writer, "--role", "write")
    repo = d.repo(org)

    mine = lfs_work(git, tmp_path / "admin", {"data.bin": random_bytes(1000), "notes.bin": random_bytes(10)})
    git("remote", "add", "origin", d.repo_url(repo, token=admin_token), cwd=mine)
    git("push", "origin", "main", cwd=mine)
    theirs = tmp_path / "writer"
    git("clone", "-q", d.repo_url(repo, token=writer_token), str(theirs))
    git("config", "lfs.locksverify", "true", cwd=theirs)

    out = git("lfs", "lock", "data.bin", cwd=mine).stdout.decode()
    assert "Locked data.bin" in out
    listed = git("lfs", "locks", cwd=theirs).stdout.decode()
    assert "data.bin" in listed and admin in listed
    taken = git("lfs", "lock", "data.bin", cwd=theirs, check=False)
    assert taken.returncode != 0 and "already" in taken.stderr.decode().lower()

    # push-time verification: the writer cannot push a change to the locked file...
    git.commit(theirs, {"data.bin": random_bytes(1000)}, message="edit locked file")
    blocked = git("push", "origin", "main", cwd=theirs, check=False)
    assert blocked.returncode != 0
    said = (blocked.stdout + blocked.stderr).decode()
    assert "Unable to push locked files" in said and "data.bin" in said

    # ...nor unlock it, with or without --force (they are not an admin of the repository)
    for args in (["data.bin"], ["--force", "data.bin"]):
        denied = git("lfs", "unlock", *args, cwd=theirs, check=False)
        assert denied.returncode != 0

    git("lfs", "unlock", "data.bin", cwd=mine)
    assert "data.bin" not in git("lfs", "locks", cwd=theirs).stdout.decode()
    git("push", "origin", "main", cwd=theirs)

    # an admin of the repository may break someone else's lock with --force
    git("lfs", "lock", "notes.bin", cwd=theirs)
    git("lfs", "unlock", "--force", "notes.bin", cwd=mine)
    assert git("lfs", "locks", cwd=mine).stdout.strip() == b""


def test_fsck_reports_a_corrupt_and_a_missing_object_and_a_new_push_repairs_them(backend, tmp_path):
    d = backend.daemon
    user, token = d.user()
    repo = d.repo(user)
    client = LfsClient(d, repo, token)
    good, bad, gone = random_bytes(4000), random_bytes(5000), random_bytes(6000)
    for data in (good, bad, gone):
        assert client.upload(data).status == 200
    backend.overwrite(sha256(bad), b"flipped bits" + bad[12:])
    if backend.kind == "local":
        backend.path(sha256(gone)).unlink()
    else:
        backend.seaweed.client().remove_object(backend.bucket, backend.key(sha256(gone)))

    code, out, err = d.cli("lfs", "fsck", check=False)
    assert code == 1, out
    assert f"corrupt {sha256(bad)}" in out and f"missing {sha256(gone)}" in out
    assert sha256(good) not in out
    assert "missing or corrupt" in err

    answer = client.batch("download", [(sha256(bad), 5000), (sha256(good), 4000)]).json()["objects"]
    assert answer[0]["error"]["code"] == 410 and "actions" in answer[1]

    # the lost objects ask to be uploaded again, and the upload restores them
    upload = client.batch("upload", [(sha256(bad), 5000), (sha256(gone), 6000)]).json()["objects"]
    assert all("upload" in obj["actions"] for obj in upload)
    for data in (bad, gone):
        assert client.upload(data).status == 200
        assert client.download(sha256(data), len(data)) == data
        assert backend.read(sha256(data)) == data
    code, out, _ = d.cli("lfs", "fsck", check=False)
    assert sha256(bad) not in out and sha256(gone) not in out


def test_gc_deletes_only_unreferenced_objects_past_the_grace(backend):
    d = backend.daemon
    user, token = d.user()
    doomed, keeper = d.repo(user), d.repo(user)
    only_doomed, shared = random_bytes(3000), random_bytes(3500)
    for repo, blobs in ((doomed, (only_doomed, shared)), (keeper, (shared,))):
        for data in blobs:
            assert LfsClient(d, repo, token).upload(data).status == 200
    d.cli("repo", "delete", doomed)

    _, out, _ = d.cli("lfs", "gc", "--grace", "24h")
    assert sha256(only_doomed) not in out and backend.stored(sha256(only_doomed))

    _, out, _ = d.cli("lfs", "gc", "--grace", "0", "--dry-run")
    assert f"would delete {sha256(only_doomed)}" in out and backend.stored(sha256(only_doomed))

    _, out, _ = d.cli("lfs", "gc", "--grace", "0")
    assert f"deleted {sha256(only_doomed)}" in out and sha256(shared) not in out
    assert not backend.stored(sha256(only_doomed))
    assert backend.stored(sha256(shared))
    assert LfsClient(d, keeper, token).download(sha256(shared), 3500) == shared

    code, _, err = d.cli("lfs", "gc", "--grace", "soon", check=False)
    assert code != 0 and "duration" in err


@pytest.mark.parametrize("suffix", [".git", ""])
def test_lfs_endpoint_answers_with_and_without_dot_git(local_backend, suffix):
    d = local_backend.daemon
    user, token = d.user()
    repo = d.repo(user, repo_type="dataset")
    data = random_bytes(100)
    client = LfsClient(d, repo, token, suffix=suffix, repo_type="dataset")
    assert client.upload(data).status == 200
    assert client.download(sha256(data), 100) == data


def test_hub_api_serves_the_file_behind_a_pointer(backend, git, tmp_path):
    """The Hub API (resolve, with Range) shows an LFS file the repository holds as itself: streamed
    by the daemon, or (S3 with a public endpoint) through a redirect to a presigned URL that itself
    carries the file's metadata."""
    from http.client import HTTPConnection
    from urllib.parse import urlsplit

    from tests.lfs_support import http

    d = backend.daemon
    git = lfs_git(git)
    user, token = d.user()
    repo = d.repo(user)
    data = random_bytes(300_000)
    work = lfs_work(git, tmp_path / "work", {"weights.bin": data})
    git("push", d.repo_url(repo, token=token), "main", cwd=work)

    url = f"{d.url}/{repo}/resolve/main/weights.bin"
    whole = http("GET", url)  # redirects followed
    assert whole.status == 200 and whole.body == data
    conn = HTTPConnection("127.0.0.1", urlsplit(d.url).port, timeout=30)
    conn.request("HEAD", urlsplit(url).path)
    head = conn.getresponse()
    conn.close()
    assert head.status == (302 if backend.kind == "s3" else 200)
    assert head.headers["X-Linked-Size"] == str(len(data)) and sha256(data) in head.headers["X-Linked-Etag"]
    part = http("GET", url, headers={"Range": "bytes=1000-1999"})
    assert part.status == 206 and part.body == data[1000:2000]
