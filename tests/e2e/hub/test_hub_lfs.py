"""The Hub API with Git LFS, driven by the real huggingface_hub (2.4.0, HF_HUB_DISABLE_XET=1), git and
git-lfs clients: large files uploaded through the LFS batch API (basic and multipart) and committed as
pointers, downloaded streamed (local disk) or redirected to presigned storage (S3), and the same files
seen by both kinds of client."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from http.client import HTTPConnection, HTTPMessage
from pathlib import Path
from urllib.parse import urlsplit

import pygit2
import pytest
from huggingface_hub import HfApi, HfFileSystem, hf_hub_download, snapshot_download
from huggingface_hub.errors import RepositoryNotFoundError

from gitd.lfs.pointer import parse_pointer
from tests.lfs_support import (
    LFS_JSON,
    MIB,
    Backend,
    LfsClient,
    http,
    lfs_git,
    lfs_work,
    sha256,
    sha256_file,
    write_settings,
)
from tests.support import Daemon, new_daemon, unique

CHUNK = 8 * MIB


@pytest.fixture
def no_xet(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the README tells users who upload large files: HF_HUB_DISABLE_XET=1."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)


@pytest.fixture(scope="module", params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def lfs_hub(request: pytest.FixtureRequest, hub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """A daemon of its own per backend, with small thresholds: files above 1 MiB go to LFS, objects
    above 8 MiB go in 8 MiB parts. On S3, downloads are presigned (public_endpoint is set)."""
    root = tmp_path_factory.mktemp(f"hub-lfs-{request.param}")
    d = new_daemon(root, {"hub.regular_upload_max": "1MiB", "lfs.multipart_threshold": "8MiB",
                          "lfs.multipart_chunk_size": "8MiB"})
    backend = Backend("local", d)
    if request.param == "s3":
        seaweed = request.getfixturevalue("seaweed")
        bucket = seaweed.make_bucket(unique("hub-lfs").lower())
        write_settings(d.data, seaweed.gitd_settings(bucket))
        backend = Backend("s3", d, seaweed, bucket)
    d.start()
    yield backend
    d.stop()


def call(d: Daemon, method: str, path: str, headers: dict[str, str] | None = None,
         body: bytes | None = None) -> tuple[int, HTTPMessage, bytes]:
    """One request, redirects not followed."""
    conn = HTTPConnection("127.0.0.1", urlsplit(d.url).port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def pointer_in_git(d: Daemon, repo_id: str, path: str, rev: str = "main"):
    blob = pygit2.Repository(str(d.repo_path(repo_id))).revparse_single(f"{rev}:{path}")
    assert blob.size < 200, "git must hold a pointer, not the content"
    return parse_pointer(blob.data)


def patterned(size: int) -> bytes:
    """Incompressible-looking bytes, cheaply: a random MiB repeated, with a unique tail."""
    block = os.urandom(MIB)
    return (block * (size // MIB + 1))[:size - 16] + os.urandom(16)


def test_upload_in_parts_then_every_download_path(lfs_hub, no_xet, monkeypatch, tmp_path, git):
    d = lfs_hub.daemon
    user, token = d.user()
    api = HfApi(endpoint=d.url, token=token)
    repo_id = api.create_repo(f"{user}/{unique('lfs')}").repo_id
    big = os.urandom(30 * MIB + 123)
    (tmp_path / "big.bin").write_bytes(big)
    medium, small = os.urandom(2 * MIB + 5), b"small\n"

    import huggingface_hub.lfs as hf_lfs

    splits: list[tuple[int, int]] = []
    real = hf_lfs._upload_multi_part

    def observed(operation, header, chunk_size, upload_url):  # the client's own code does the upload
        splits.append((chunk_size, sum(key.isdigit() for key in header)))
        return real(operation=operation, header=header, chunk_size=chunk_size, upload_url=upload_url)

    monkeypatch.setattr(hf_lfs, "_upload_multi_part", observed)
    api.upload_file(path_or_fileobj=str(tmp_path / "big.bin"), path_in_repo="weights/big.bin", repo_id=repo_id)
    api.upload_file(path_or_fileobj=medium, path_in_repo="medium.bin", repo_id=repo_id)
    api.upload_file(path_or_fileobj=small, path_in_repo="small.txt", repo_id=repo_id)
    assert splits == [(CHUNK, 4)]  # 30 MiB in 8 MiB parts; medium went in one basic PUT
    for data in (big, medium):
        assert lfs_hub.stored(sha256(data))
    pointer = pointer_in_git(d, repo_id, "weights/big.bin")
    assert (pointer.oid, pointer.size) == (sha256(big), len(big))
    assert pointer_in_git(d, repo_id, "medium.bin").oid == sha256(medium)
    assert pygit2.Repository(str(d.repo_path(repo_id))).revparse_single("main:small.txt").data == small

    # metadata: real sizes, lfs blocks, never xetHash
    info = api.model_info(repo_id, files_metadata=True)
    siblings = {s.rfilename: s for s in info.siblings}
    assert siblings["weights/big.bin"].size == len(big) and siblings["weights/big.bin"].lfs.sha256 == sha256(big)
    assert 0 < siblings["weights/big.bin"].lfs.pointer_size < 200 and siblings["small.txt"].lfs is None
    tree = {f.path: f for f in api.list_repo_tree(repo_id, recursive=True)}
    assert tree["medium.bin"].size == len(medium) and tree["medium.bin"].lfs.sha256 == sha256(medium)
    status, _, body = call(d, "GET", f"/api/models/{repo_id}/tree/main?recursive=true",
                           {"Authorization": f"Bearer {token}"})
    assert status == 200 and "xetHash" not in body.decode()

    # downloads: hf_hub_download, snapshot_download, HfFileSystem ranged reads
    got = hf_hub_download(repo_id, "weights/big.bin", endpoint=d.url, token=token, cache_dir=tmp_path / "c")
    assert sha256_file(Path(got)) == sha256(big)
    snap = Path(snapshot_download(repo_id, endpoint=d.url, token=token, cache_dir=tmp_path / "s"))
    assert sha256_file(snap / "weights" / "big.bin") == sha256(big)
    assert (snap / "medium.bin").read_bytes() == medium and (snap / "small.txt").read_bytes() == small
    fs = HfFileSystem(endpoint=d.url, token=token)
    assert fs.info(f"{repo_id}/weights/big.bin")["size"] == len(big)
    with fs.open(f"{repo_id}/weights/big.bin", "rb", block_size=MIB) as f:
        f.seek(17 * MIB + 3)
        assert f.read(5000) == big[17 * MIB + 3:17 * MIB + 5003]
        f.seek(len(big) - 100)
        assert f.read() == big[-100:]

    # the wire: HEAD metadata, and on S3 the redirect itself carries it (the client stops there)
    auth = {"Authorization": f"Bearer {token}"}
    status, headers, _ = call(d, "HEAD", f"/{repo_id}/resolve/main/medium.bin", auth)
    commit = api.model_info(repo_id).sha
    assert headers["X-Repo-Commit"] == commit
    assert headers["X-Linked-Etag"] == f'"{sha256(medium)}"' and headers["X-Linked-Size"] == str(len(medium))
    if lfs_hub.kind == "s3":
        assert status == 302 and headers["Location"].startswith(lfs_hub.seaweed.url + "/")
        assert not [h for h in headers if h.lower().startswith("x-xet")]
        ranged = http("GET", headers["Location"], headers={"Range": "bytes=5-14"})
        assert ranged.status == 206 and ranged.body == medium[5:15]
    else:
        assert status == 200 and headers["Content-Length"] == str(len(medium))
        status, headers, body = call(d, "GET", f"/{repo_id}/resolve/{commit}/medium.bin",
                                     {**auth, "Range": "bytes=5-14"})
        assert status == 206 and body == medium[5:15] and headers["Content-Range"] == f"bytes 5-14/{len(medium)}"
        status, headers, _ = call(d, "GET", f"/{repo_id}/resolve/main/medium.bin",
                                  {**auth, "Range": f"bytes={len(medium)}-"})
        assert status == 416 and headers["Content-Range"] == f"bytes */{len(medium)}"

    # the same files through git: clone without smudging, then git lfs pull
    git = lfs_git(git)
    clone = tmp_path / "clone"
    git("clone", "-q", d.repo_url(repo_id, token=token), str(clone), env={"GIT_LFS_SKIP_SMUDGE": "1"})
    assert (clone / "weights" / "big.bin").stat().st_size < 200
    git("lfs", "pull", cwd=clone)
    assert sha256_file(clone / "weights" / "big.bin") == sha256(big)
    assert (clone / "medium.bin").read_bytes() == medium


def test_git_lfs_push_then_hub_download(lfs_hub, tmp_path, git):
    d = lfs_hub.daemon
    git = lfs_git(git)
    user, token = d.user()
    repo_id = d.repo(user)
    files = {"model.bin": os.urandom(3 * MIB + 1), "README.md": b"# pushed with git\n"}
    work = lfs_work(git, tmp_path / "work", files)
    git("push", d.repo_url(repo_id, token=token), "main", cwd=work)

    got = hf_hub_download(repo_id, "model.bin", endpoint=d.url, token=token, cache_dir=tmp_path / "c")
    assert sha256_file(Path(got)) == sha256(files["model.bin"])
    sibling = {s.rfilename: s for s in HfApi(endpoint=d.url, token=token).model_info(
        repo_id, files_metadata=True).siblings}["model.bin"]
    assert sibling.size == len(files["model.bin"]) and sibling.lfs.sha256 == sha256(files["model.bin"])


def test_private_lfs_content_needs_the_right_token(lfs_hub, no_xet, tmp_path):
    d = lfs_hub.daemon
    owner, token = d.user()
    _, stranger = d.user()
    api = HfApi(endpoint=d.url, token=token)
    repo_id = api.create_repo(f"{owner}/{unique('secret')}", private=True).repo_id
    data = os.urandom(2 * MIB)
    api.upload_file(path_or_fileobj=data, path_in_repo="secret.bin", repo_id=repo_id)

    for who in (False, stranger):
        with pytest.raises(RepositoryNotFoundError):
            hf_hub_download(repo_id, "secret.bin", endpoint=d.url, token=who, cache_dir=tmp_path / "x")
        headers = {"Authorization": f"Bearer {who}"} if who else {}
        status, answer, _ = call(d, "HEAD", f"/{repo_id}/resolve/main/secret.bin", headers)
        assert status in (401, 404) and answer["X-Error-Code"] == "RepoNotFound" and "Location" not in answer
        assert LfsClient(d, repo_id, who or None).batch("download", [(sha256(data), len(data))]).status in (401, 404)
    got = hf_hub_download(repo_id, "secret.bin", endpoint=d.url, token=token, cache_dir=tmp_path / "ok")
    assert Path(got).read_bytes() == data


def test_a_readers_pull_request_uploads_a_large_file_in_parts(lfs_hub, no_xet, tmp_path):
    """A public repository's reader opens a pull request with a file above the multipart threshold:
    the part and completion links handed out for it serve that reader (gitd.hub.pr_uploads)."""
    d = lfs_hub.daemon
    owner, token = d.user()
    _, reader_token = d.user()
    repo_id = HfApi(endpoint=d.url, token=token).create_repo(f"{owner}/{unique('prparts')}").repo_id
    reader = HfApi(endpoint=d.url, token=reader_token)
    data = os.urandom(CHUNK + MIB)
    pr = reader.upload_file(path_or_fileobj=data, path_in_repo="big.bin", repo_id=repo_id, create_pr=True)
    got = hf_hub_download(repo_id, "big.bin", revision=f"refs/pr/{pr.pr_num}", endpoint=d.url, token=False,
                          cache_dir=tmp_path)
    assert Path(got).read_bytes() == data
    assert pointer_in_git(d, repo_id, "big.bin", f"refs/pr/{pr.pr_num}").oid == sha256(data)


def _multipart_actions(client: LfsClient, data: bytes) -> dict:
    answer = client.batch("upload", [(sha256(data), len(data))], transfers=["basic", "multipart"])
    assert answer.status == 200, answer.body
    return answer.json()["objects"][0]["actions"]


def _parts(actions: dict) -> list[str]:
    header = actions["upload"]["header"]
    return [header[k] for k in sorted((k for k in header if k.isdigit()), key=int)]


def _complete(actions: dict, oid: str, etags: list[str | None]):
    parts = [{"partNumber": n, "etag": e} for n, e in enumerate(etags, 1) if e is not None]
    return http("POST", actions["upload"]["href"], json.dumps({"oid": oid, "parts": parts}).encode(),
                {"Content-Type": LFS_JSON, "Accept": LFS_JSON})


def test_tampered_multipart_upload_stores_nothing(lfs_hub):
    d = lfs_hub.daemon
    user, token = d.user()
    repo_id = d.repo(user)
    client = LfsClient(d, repo_id, token)
    data = os.urandom(2 * CHUNK + 1000)
    oid = sha256(data)
    pieces = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)]

    # wrong content in one part: every part answers an ETag, the completion is refused
    actions = _multipart_actions(client, data)
    assert actions["upload"]["header"]["chunk_size"] == str(CHUNK) and len(_parts(actions)) == 3
    etags = []
    for url, piece in zip(_parts(actions), [pieces[0], b"\0" * CHUNK, pieces[2]], strict=True):
        put = http("PUT", url, piece)  # no Authorization: the URL carries the credential
        assert put.status == 200 and put.headers["ETag"]
        etags.append(put.headers["ETag"])
    refused = _complete(actions, oid, etags)
    assert refused.status == 422 and refused.headers["X-Error-Code"] == "ObjectMismatch"
    assert not lfs_hub.stored(oid) and lfs_hub.leftovers() == []

    # a missing part, a part of the wrong size, a forged link
    actions = _multipart_actions(client, data)
    urls = _parts(actions)
    assert http("PUT", urls[1], pieces[1][:-1]).status == 422
    assert http("PUT", urls[1].replace("token=", "token=x"), pieces[1]).status == 401
    etags = [http("PUT", urls[0], pieces[0]).headers["ETag"], None, http("PUT", urls[2], pieces[2]).headers["ETag"]]
    refused = _complete(actions, oid, etags)
    assert refused.status == 422 and "part 2" in refused.json()["error"]
    assert not lfs_hub.stored(oid) and lfs_hub.leftovers() == []
    assert client.batch("download", [(oid, len(data))]).json()["objects"][0]["error"]["code"] == 404

    # done right, parts out of order: stored, linked, verified
    actions = _multipart_actions(client, data)
    urls = _parts(actions)
    etags = [""] * 3
    for i in (2, 0, 1):
        etags[i] = http("PUT", urls[i], pieces[i]).headers["ETag"]
    assert _complete(actions, oid, etags).status == 200
    verify = actions["verify"]
    assert http("POST", verify["href"], json.dumps({"oid": oid, "size": len(data)}).encode(),
                {**client.auth(), "Content-Type": LFS_JSON}).status == 200
    assert lfs_hub.stored(oid) and client.download(oid, len(data)) == data

    # an upload abandoned half-way is removed by gc
    other = os.urandom(CHUNK + 10)
    actions = _multipart_actions(client, other)
    assert http("PUT", _parts(actions)[0], other[:CHUNK]).status == 200
    assert lfs_hub.leftovers() != []
    d.cli("lfs", "gc", "--grace", "0")
    assert lfs_hub.leftovers() == []


def test_lfs_file_lines_need_an_object_the_repo_holds(hub, daemon):
    user, token = hub.user()
    api = hub.api(token)
    repo_id = api.create_repo(f"{user}/{unique('ptr')}").repo_id
    other_owner, other_token = hub.user()
    other = daemon.repo(other_owner)
    data = os.urandom(50_000)
    assert LfsClient(daemon, other, other_token).upload(data).status == 200  # held by another repository only
    mine = os.urandom(40_000)
    assert LfsClient(daemon, repo_id, token).upload(mine).status == 200

    def commit(value: dict) -> tuple[int, HTTPMessage, bytes]:
        lines = [{"key": "header", "value": {"summary": "add"}}, {"key": "lfsFile", "value": value}]
        return call(daemon, "POST", f"/api/models/{repo_id}/commit/main",
                    {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"},
                    "\n".join(json.dumps(x) for x in lines).encode())

    for oid, code in ((sha256(b"never uploaded"), "LfsObjectNotFound"), (sha256(data), "LfsObjectNotFound")):
        status, headers, body = commit({"path": "w.bin", "algo": "sha256", "oid": oid, "size": 50_000})
        assert status == 400 and headers["X-Error-Code"] == code and "HF_HUB_DISABLE_XET" in json.loads(body)["error"]
    status, headers, _ = commit({"path": "w.bin", "algo": "sha256", "oid": sha256(mine), "size": 39_999})
    assert status == 400 and headers["X-Error-Code"] == "LfsSizeMismatch"
    first = api.model_info(repo_id).sha
    assert [b.target_commit for b in api.list_repo_refs(repo_id).branches] == [first]  # nothing was committed
    status, _, body = commit({"path": "w.bin", "algo": "sha256", "oid": sha256(mine), "size": 40_000})
    assert status == 200
    assert pointer_in_git(daemon, repo_id, "w.bin").oid == sha256(mine)


def test_200mb_upload_file_and_folder_round_trip(hub, daemon, no_xet, tmp_path):
    user, token = hub.user()
    api = hub.api(token)
    repo_id = api.create_repo(f"{user}/{unique('big')}").repo_id
    folder = tmp_path / "folder"
    folder.mkdir()
    big = patterned(200 * 1000 * 1000)
    (folder / "model.safetensors").write_bytes(big)
    (folder / "config.json").write_text('{"hidden": 8}\n')
    oid = sha256(big)
    del big
    api.upload_folder(folder_path=folder, repo_id=repo_id, commit_message="weights")
    api.upload_file(path_or_fileobj=str(folder / "model.safetensors"), path_in_repo="copy/model.safetensors",
                    repo_id=repo_id)  # already held: the batch answers without actions, only the commit is sent
    for path in ("model.safetensors", "copy/model.safetensors"):
        pointer = pointer_in_git(daemon, repo_id, path)
        assert (pointer.oid, pointer.size) == (oid, 200 * 1000 * 1000)
    assert pygit2.Repository(str(daemon.repo_path(repo_id))).revparse_single("main:config.json").size == 14
    got = hf_hub_download(repo_id, "model.safetensors", endpoint=hub.url, token=token, cache_dir=tmp_path / "c")
    assert sha256_file(Path(got)) == oid
