"""The Git LFS HTTP API spoken by hand against a real daemon: batch shapes and errors,
streaming uploads that are verified, Range downloads, access and tenant isolation."""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest

from tests.lfs_support import LFS_JSON, MIB, LfsClient, http, random_bytes, sha256
from tests.support import tampered

ZERO = "0" * 64


def object_url(client: LfsClient, oid: str) -> str:
    return f"{client.base}/objects/{oid}"


def test_batch_upload_verify_and_download_shapes(backend):
    d = backend.daemon
    user, token = d.user()
    repo = d.repo(user)
    client = LfsClient(d, repo, token)
    data = random_bytes(70_000)
    oid = sha256(data)

    answer = client.batch("upload", [(oid, len(data))], ref=None)  # no "transfers", null ref
    assert answer.status == 200 and answer.headers["Content-Type"].startswith(LFS_JSON)
    body = answer.json()
    assert body["transfer"] == "basic" and body["hash_algo"] == "sha256"
    obj = body["objects"][0]
    assert obj["oid"] == oid and obj["size"] == len(data) and obj["authenticated"] is True
    upload, verify = obj["actions"]["upload"], obj["actions"]["verify"]
    assert upload["href"].startswith(f"{client.base}/objects/{oid}/{len(data)}?token=")
    assert upload["header"]["Content-Type"] == "application/octet-stream"
    assert upload["header"]["Authorization"].startswith("Bearer gitds.")
    assert upload["expires_in"] == verify["expires_in"] == 3600
    assert verify["header"]["Authorization"].startswith("Bearer gitds.")

    assert http("PUT", upload["href"], data, upload["header"]).status == 200
    done = http("POST", verify["href"], json.dumps({"oid": oid, "size": len(data)}).encode(), verify["header"])
    assert done.status == 200
    assert backend.read(oid) == data

    again = client.batch("upload", [(oid, len(data))], transfers=["basic"], ref={"name": "refs/heads/main"})
    assert again.json()["objects"] == [{"oid": oid, "size": len(data)}]  # already held: no actions

    download = client.download_action(oid, len(data))
    if backend.kind == "s3":  # presigned, on the public endpoint, with no Authorization header
        assert urlsplit(download["href"]).netloc == backend.seaweed.endpoint
        assert "Authorization" not in download.get("header", {})
    else:
        assert download["href"].startswith(f"{object_url(client, oid)}?token=")
    assert download["expires_in"] == 3600
    assert http("GET", download["href"], headers=download.get("header", {})).body == data
    # the daemon streams it on every backend, too
    assert http("GET", object_url(client, oid), headers=client.auth()).body == data


def test_tampered_put_is_rejected_and_nothing_is_stored(backend):
    d = backend.daemon
    user, token = d.user()
    client = LfsClient(d, d.repo(user), token)
    data = random_bytes(9000)
    oid = sha256(data)
    action = client.batch("upload", [(oid, len(data))]).json()["objects"][0]["actions"]["upload"]

    for sent in (tampered(data), data + b"more"):
        refused = http("PUT", action["href"], sent, action["header"])
        assert refused.status == 422 and refused.headers["Content-Type"].startswith(LFS_JSON)
        assert oid in refused.json()["message"]
    assert not backend.stored(oid) and backend.leftovers() == []
    assert client.batch("download", [(oid, len(data))]).json()["objects"][0]["error"]["code"] == 404
    assert client.post("verify", {"oid": oid, "size": len(data)}).status == 404

    assert client.upload(data).status == 200
    assert backend.read(oid) == data


def _send_partial_put(href: str, headers: dict[str, str], total: int, partial: bytes) -> socket.socket:
    url = urlsplit(href)
    head = [f"PUT {url.path}?{url.query} HTTP/1.1", f"Host: {url.netloc}", f"Content-Length: {total}",
            *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    sock = socket.create_connection((url.hostname, url.port))
    sock.sendall("\r\n".join(head).encode() + partial)
    return sock


def _wait_for(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_interrupted_upload_leaves_nothing_half_stored(backend):
    d = backend.daemon
    user, token = d.user()
    client = LfsClient(d, d.repo(user), token)
    data = random_bytes(12 * MIB)
    oid = sha256(data)
    action = client.batch("upload", [(oid, len(data))]).json()["objects"][0]["actions"]["upload"]

    sock = _send_partial_put(action["href"], action["header"], len(data), data[: 9 * MIB])
    try:
        assert _wait_for(lambda: backend.leftovers() != []), "the upload never started"
    finally:
        sock.close()  # the client vanishes mid-body
    assert _wait_for(lambda: backend.leftovers() == []), backend.leftovers()
    assert not backend.stored(oid)
    assert "actions" in client.batch("upload", [(oid, len(data))]).json()["objects"][0]
    assert client.upload(data).status == 200
    assert client.download(oid, len(data)) == data


def test_private_repo_objects_are_unreachable_without_access(backend):
    d = backend.daemon
    owner, token = d.user()
    _, stranger = d.user()
    repo = d.repo(owner, private=True)
    data = random_bytes(3000)
    oid = sha256(data)
    assert LfsClient(d, repo, token).upload(data).status == 200

    anonymous = LfsClient(d, repo)
    reply = anonymous.batch("download", [(oid, len(data))])
    assert reply.status == 401 and reply.headers["Content-Type"].startswith(LFS_JSON)
    assert reply.headers["LFS-Authenticate"].startswith("Basic") and "message" in reply.json()
    assert http("GET", object_url(anonymous, oid)).status == 401

    other = LfsClient(d, repo, stranger)
    reply = other.batch("download", [(oid, len(data))])
    assert reply.status == 404 and "objects" not in reply.json()
    assert http("GET", object_url(other, oid), headers=other.auth()).status == 404
    assert other.batch("upload", [(oid, len(data))]).status == 404
    missing = LfsClient(d, f"{owner}/does-not-exist", stranger).batch("download", [(oid, len(data))])
    assert missing.status == 404 and missing.json() == reply.json()


def test_regression_cross_repo_oid_guessing_gets_404_and_linking_needs_the_bytes(backend):
    d = backend.daemon
    alice, alice_token = d.user()
    mallory, mallory_token = d.user()
    secret = random_bytes(20_000)
    oid = sha256(secret)
    assert LfsClient(d, d.repo(alice, private=True), alice_token).upload(secret).status == 200
    own = LfsClient(d, d.repo(mallory), mallory_token)

    answer = own.batch("download", [(oid, len(secret))]).json()["objects"][0]
    assert answer["error"]["code"] == 404 and "actions" not in answer
    assert http("GET", object_url(own, oid), headers=own.auth()).status == 404
    assert own.post("verify", {"oid": oid, "size": len(secret)}).status == 404

    upload = own.batch("upload", [(oid, len(secret))]).json()["objects"][0]
    assert "upload" in upload["actions"]  # the server already has it, but mallory must prove it
    assert own.upload(secret, send=bytes(len(secret))).status == 422
    assert own.batch("download", [(oid, len(secret))]).json()["objects"][0]["error"]["code"] == 404

    assert own.upload(secret).status == 200  # whoever has the bytes may link them
    assert own.download(oid, len(secret)) == secret


def test_regression_href_token_is_bound_to_its_repository_object_and_operation(backend):
    d = backend.daemon
    user, token = d.user()
    first, second = LfsClient(d, d.repo(user, private=True), token), LfsClient(d, d.repo(user), token)
    one, two = random_bytes(100), random_bytes(200)
    for client, data in ((first, one), (second, two)):
        assert client.upload(data).status == 200
    action = first.batch("upload", [(sha256(random_bytes(10)), 10)]).json()["objects"][0]["actions"]
    query = urlsplit(action["upload"]["href"]).query

    def with_query(url: str, new_query: str) -> str:
        return urlunsplit(urlsplit(url)._replace(query=new_query))

    # an upload token from `first`, used without headers: other object, other repo, other operation
    assert http("GET", with_query(object_url(first, sha256(one)), query)).status == 401
    assert http("GET", with_query(object_url(second, sha256(two)), query)).status == 401
    assert http("PUT", with_query(f"{second.base}/objects/{sha256(two)}/200", query), two).status == 401
    forged = parse_qs(query)["token"][0][:-4] + "AAAA"
    assert http("GET", with_query(object_url(first, sha256(one)), urlencode({"token": forged}))).status == 401


def test_range_requests(backend):
    d = backend.daemon
    user, token = d.user()
    client = LfsClient(d, d.repo(user), token)
    data = random_bytes(100_000)
    assert client.upload(data).status == 200
    url, auth = object_url(client, sha256(data)), client.auth()

    whole = http("GET", url, headers=auth)
    assert whole.status == 200 and whole.headers["Accept-Ranges"] == "bytes" and whole.body == data
    assert int(whole.headers["Content-Length"]) == len(data)
    for spec, start, end in (("bytes=10-19", 10, 20), ("bytes=-5", len(data) - 5, len(data)),
                             ("bytes=99990-", 99990, len(data)), ("bytes=5-999999", 5, len(data))):
        part = http("GET", url, headers={**auth, "Range": spec})
        assert part.status == 206, spec
        assert part.body == data[start:end], spec
        assert part.headers["Content-Range"] == f"bytes {start}-{end - 1}/{len(data)}", spec
    for spec in ("bytes=100000-", "bytes=200000-300000"):
        refused = http("GET", url, headers={**auth, "Range": spec})
        assert refused.status == 416 and refused.headers["Content-Range"] == f"bytes */{len(data)}", spec
    head = http("HEAD", url, headers=auth)
    assert head.status == 200 and head.body == b"" and int(head.headers["Content-Length"]) == len(data)


def test_batch_request_and_object_errors(local_backend, make_daemon):
    d = local_backend.daemon
    user, token = d.user()
    repo = d.repo(user)
    client = LfsClient(d, repo, token)
    known = random_bytes(500)
    assert client.upload(known).status == 200

    def whole(reply, status):
        assert reply.status == status, reply.body
        assert reply.headers["Content-Type"].startswith(LFS_JSON) and "message" in reply.json()

    whole(client.post("objects/batch", b"{not json"), 400)
    whole(client.batch("delete", []), 422)
    whole(client.batch("upload", [], transfers=["tus"]), 422)
    whole(client.post("objects/batch", {"operation": "download", "objects": "nope"}), 422)
    whole(client.batch("download", [(ZERO, 1)] * 1001), 413)

    objects = client.batch("upload", [("XYZ", 1), (ZERO, -1), {"oid": ZERO}, (sha256(known), 500)]).json()["objects"]
    assert [o["error"]["code"] for o in objects[:3]] == [422, 422, 422]
    assert objects[3] == {"oid": sha256(known), "size": 500}
    objects = client.batch("download", [(sha256(known), 500), (ZERO, 5), (sha256(known), 7)]).json()["objects"]
    assert "download" in objects[0]["actions"]
    assert objects[1]["error"]["code"] == 404 and objects[2]["error"]["code"] == 422
    objects = client.batch("download", [(sha256(known), 500)], hash_algo="sha512").json()["objects"]
    assert objects[0]["error"]["code"] == 409

    org = d.cli("org", "create", (org_name := f"o{sha256(known)[:8]}"), "--owner", user) and org_name
    reader, reader_token = d.user()
    d.cli("org", "add-member", org, reader, "--role", "read")
    org_repo = d.repo(org)
    reading = LfsClient(d, org_repo, reader_token)
    whole(reading.batch("upload", [(sha256(known), 500)]), 403)
    assert reading.batch("download", [(sha256(known), 500)]).status == 200

    small = make_daemon(settings={"lfs.max_object_size": "1MiB"})
    owner, owner_token = small.user()
    limited = LfsClient(small, small.repo(owner), owner_token)
    too_big = limited.batch("upload", [(ZERO, 2 * MIB)]).json()["objects"][0]
    assert too_big["error"]["code"] == 422 and "1.0 MiB" in too_big["error"]["message"]
    assert http("PUT", f"{limited.base}/objects/{ZERO}/{2 * MIB}", b"x", limited.auth()).status == 422


def test_huggingface_style_put_without_headers_then_verify_with_bearer(local_backend):
    d = local_backend.daemon
    user, token = d.user()
    client = LfsClient(d, d.repo(user), token)
    data = random_bytes(5000)
    actions = client.batch("upload", [(sha256(data), len(data))],
                           transfers=["basic", "multipart"]).json()["objects"][0]["actions"]
    assert http("PUT", actions["upload"]["href"], data).status == 200  # only the href's own token
    verified = http("POST", actions["verify"]["href"], json.dumps({"oid": sha256(data), "size": 5000}).encode(),
                    {**client.auth(), "Content-Type": LFS_JSON})
    assert verified.status == 200


@pytest.mark.s3
def test_direct_uploads_to_s3_are_rehashed_before_they_count(make_daemon, seaweed, git, tmp_path):
    from tests.lfs_support import lfs_git, lfs_work, sha256_file, write_settings

    d = make_daemon(start=False)
    write_settings(d.data, seaweed.gitd_settings(seaweed.make_bucket("gitd-direct"), direct=True))
    d.start()
    user, token = d.user()
    repo = d.repo(user)
    client = LfsClient(d, repo, token)
    data = random_bytes(40_000)
    oid = sha256(data)

    actions = client.batch("upload", [(oid, len(data))]).json()["objects"][0]["actions"]
    upload, verify = actions["upload"], actions["verify"]
    assert urlsplit(upload["href"]).netloc == seaweed.endpoint
    assert upload["header"] == {"Content-Type": "application/octet-stream"}
    assert verify["href"].startswith(f"{client.base}/verify?token=")
    assert http("PUT", upload["href"], tampered(data), upload["header"]).status == 200  # S3 takes anything
    body = json.dumps({"oid": oid, "size": len(data)}).encode()
    refused = http("POST", verify["href"], body, verify["header"])
    assert refused.status == 422 and "sha256" in refused.json()["message"]
    assert client.batch("download", [(oid, len(data))]).json()["objects"][0]["error"]["code"] == 404
    assert client.upload(data).status == 200
    assert client.download(oid, len(data)) == data

    git = lfs_git(git)
    files = {"model.bin": random_bytes(2 * MIB), "b.bin": b"bee\n"}
    work = lfs_work(git, tmp_path / "work", files)
    git("push", d.repo_url(repo, token=token), "main", cwd=work)
    git("clone", "-q", d.repo_url(repo, token=token), str(tmp_path / "clone"))
    for name, content in files.items():
        assert sha256_file(tmp_path / "clone" / name) == sha256(content)


def test_locks_api(local_backend):
    d = local_backend.daemon
    admin, admin_token = d.user()
    writer, writer_token = d.user()
    reader, reader_token = d.user()
    org = f"locks{admin}"
    d.cli("org", "create", org, "--owner", admin)
    d.cli("org", "add-member", org, writer, "--role", "write")
    d.cli("org", "add-member", org, reader, "--role", "read")
    repo = d.repo(org)
    mine, theirs, ro = (LfsClient(d, repo, t) for t in (admin_token, writer_token, reader_token))

    created = mine.post("locks", {"path": "./models//a.bin", "ref": {"name": "refs/heads/main"}})
    assert created.status == 201
    lock = created.json()["lock"]
    assert lock["path"] == "models/a.bin" and lock["owner"] == {"name": admin} and isinstance(lock["id"], str)
    assert lock["locked_at"].endswith("Z")
    conflict = theirs.post("locks", {"path": "models/a.bin"})
    assert conflict.status == 409 and conflict.json()["lock"] == lock and admin in conflict.json()["message"]
    assert mine.post("locks", {"path": "../etc/passwd"}).status == 422
    assert ro.post("locks", {"path": "b.bin"}).status == 403
    assert LfsClient(d, repo).post("locks", {"path": "b.bin"}).status == 401
    second = theirs.post("locks", {"path": "b.bin"}).json()["lock"]

    listed = http("GET", f"{ro.base}/locks", headers=ro.auth()).json()
    assert [x["path"] for x in listed["locks"]] == ["models/a.bin", "b.bin"] and "next_cursor" not in listed
    page = http("GET", f"{ro.base}/locks?limit=1", headers=ro.auth()).json()
    assert page["locks"] == [lock] and page["next_cursor"]
    rest = http("GET", f"{ro.base}/locks?limit=1&cursor={page['next_cursor']}", headers=ro.auth()).json()
    assert rest["locks"] == [second]
    by_path = http("GET", f"{ro.base}/locks?path=b.bin", headers=ro.auth()).json()
    assert by_path["locks"] == [second]
    by_id = http("GET", f"{ro.base}/locks?id={lock['id']}", headers=ro.auth()).json()
    assert by_id["locks"] == [lock]

    verified = theirs.post("locks/verify", {"ref": {"name": "refs/heads/main"}, "limit": 100}).json()
    assert verified == {"ours": [second], "theirs": [lock]}
    assert ro.post("locks/verify", {}).status == 403

    assert theirs.post(f"locks/{lock['id']}/unlock", {}).status == 403
    assert theirs.post(f"locks/{lock['id']}/unlock", {"force": True}).status == 403  # not an admin
    assert mine.post(f"locks/{second['id']}/unlock", {"force": True}).json() == {"lock": second}
    assert mine.post(f"locks/{lock['id']}/unlock", {}).json() == {"lock": lock}
    assert mine.post(f"locks/{lock['id']}/unlock", {}).status == 404
    assert http("GET", f"{ro.base}/locks", headers=ro.auth()).json() == {"locks": []}

    other = LfsClient(d, d.repo(admin), admin_token)  # locks belong to one repository
    assert other.post("locks", {"path": "models/a.bin"}).status == 201
    assert http("GET", f"{mine.base}/locks", headers=mine.auth()).json() == {"locks": []}


def test_regression_oid_path_tricks_never_reach_the_filesystem(local_backend):
    d = local_backend.daemon
    user, token = d.user()
    client = LfsClient(d, d.repo(user), token)
    secret = d.data / "gitd.toml"
    for oid in ("..%2F..%2F..%2Fgitd.toml", "%2e%2e", "A" * 64, ZERO + "0"):
        reply = http("GET", f"{client.base}/objects/{oid}", headers=client.auth())
        assert reply.status == 404 and b"[server]" not in reply.body, oid
        reply = http("PUT", f"{client.base}/objects/{oid}/4", b"evil", client.auth())
        assert reply.status in (404, 422), oid
    assert "evil" not in secret.read_text()
    assert client.batch("download", [("../../gitd.toml", 1)]).json()["objects"][0]["error"]["code"] == 422
