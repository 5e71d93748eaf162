"""The native REST API under /api/v1, and its OpenAPI document."""

from __future__ import annotations

import base64
import http.client
import io
import json
import uuid
from urllib.parse import quote, urlsplit

import asyncssh
import pytest

from tests.support import unique


class Client:
    def __init__(self, url: str, token: str | None = None):
        self.url = url
        self.token = token

    def __call__(self, method: str, path: str, body: object = None, *, raw: bytes | None = None,
                 content_type: str = "application/json") -> tuple[int, object]:
        parts = urlsplit(self.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = content_type
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
            ctype = resp.headers.get("Content-Type", "")
            return resp.status, json.loads(payload) if ctype.startswith("application/json") else payload
        finally:
            conn.close()


def test_repo_crud_and_files(daemon):
    user, token = daemon.user()
    api = Client(daemon.url, token)
    status, created = api("POST", "/api/v1/models", {"name": "n1", "private": True, "description": "d"})
    # 200, as CSGHub answers (csghub-sdk takes any other status for a failure); with a first commit
    assert status == 200 and created["msg"] == "OK" and created["data"]["private"] is True
    assert api("POST", "/api/v1/models", {"name": "n1"})[0] == 409
    status, got = api("GET", f"/api/v1/models/{user}/n1")
    assert status == 200 and got["data"]["description"] == "d" and len(got["data"]["head"]) == 40
    assert Client(daemon.url)("GET", f"/api/v1/models/{user}/n1")[0] == 401  # private: hidden

    status, done = api("POST", f"/api/v1/models/{user}/n1/commit/main", {"message": "first", "files": [
        {"path": "a/b.txt", "action": "create", "content": base64.b64encode(b"hello").decode()},
        {"path": "c.txt", "action": "create", "content": base64.b64encode(b"c").decode()}]})
    assert status == 200 and len(done["data"]["commit"]) == 40
    status, tree = api("GET", f"/api/v1/models/{user}/n1/tree/main/?recursive=true")
    assert [(i["path"], i["type"]) for i in tree["data"]["items"]] == [
        (".gitattributes", "file"), ("a", "dir"), ("a/b.txt", "file"), ("c.txt", "file")]
    assert api("GET", f"/api/v1/models/{user}/n1/raw/main/a/b.txt") == (200, b"hello")
    status, blob = api("GET", f"/api/v1/models/{user}/n1/blob/main/a/b.txt")
    assert base64.b64decode(blob["data"]["content"]) == b"hello" and blob["data"]["size"] == 5
    status, err = api("GET", f"/api/v1/models/{user}/n1/raw/main/zzz")
    assert status == 404 and err["code"] == "EntryNotFound" and err["data"] is None

    status, branches = api("GET", f"/api/v1/models/{user}/n1/branches")
    assert [b["name"] for b in branches["data"]] == ["main"]
    assert api("GET", f"/api/v1/models/{user}/n1/tags")[1]["data"] == []
    status, commits = api("GET", f"/api/v1/models/{user}/n1/commits/main")
    assert [c["message"].strip() for c in commits["data"]] == ["first", "initial commit"]

    status, updated = api("PATCH", f"/api/v1/models/{user}/n1", {"private": False, "description": "new"})
    assert updated["data"]["private"] is False and updated["data"]["description"] == "new"
    status, listed = Client(daemon.url)("GET", f"/api/v1/models?namespace={user}")
    assert [r["path"] for r in listed["data"]["items"]] == [f"{user}/n1"]
    assert api("DELETE", f"/api/v1/models/{user}/n1")[0] == 200
    assert api("GET", f"/api/v1/models/{user}/n1")[0] == 404


def test_regression_a_commit_message_with_a_lone_surrogate_is_a_bad_request(daemon):
    """JSON can carry "\\ud800"; pygit2 could not encode it into the commit (a 500)."""
    user, token = daemon.user()
    api = Client(daemon.url, token)
    assert api("POST", "/api/v1/models", {"name": "sur"})[0] == 200
    file = {"path": "a.txt", "action": "create", "content": base64.b64encode(b"a").decode()}
    status, err = api("POST", f"/api/v1/models/{user}/sur/commit/main", raw=json.dumps(
        {"message": "fix \ud800", "files": [file]}).encode())
    assert status == 400 and "valid Unicode text" in err["msg"]
    assert api("POST", f"/api/v1/models/{user}/sur/commit/main", {"message": "fix", "files": [file]})[0] == 200


def test_csghub_sdk_routes(daemon):
    user, token = daemon.user()
    api = Client(daemon.url, token)
    api("POST", "/api/v1/datasets", {"namespace": user, "name": "csg", "nickname": "c", "default_branch": "main",
                                     "private": False, "license": "apache-2.0"})
    boundary = uuid.uuid4().hex
    form = io.BytesIO()
    for name, value, filename in (("file", b"col\n1\n", "x.csv"), ("file_path", b"data/x.csv", None),
                                  ("branch", b"main", None), ("message", b"upload x", None)):
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        form.write(f"--{boundary}\r\nContent-Disposition: {disp}\r\n\r\n".encode() + value + b"\r\n")
    form.write(f"--{boundary}--\r\n".encode())
    status, up = api("POST", f"/api/v1/datasets/{user}/csg/upload_file", raw=form.getvalue(),
                     content_type=f"multipart/form-data; boundary={boundary}")
    assert status == 200 and up["msg"] == "OK"
    status, pre = api("POST", f"/api/v1/datasets/{user}/csg/preupload/main",
                      {"files": [{"path": "data/x.csv", "size": 6}, {"path": "new.bin", "size": 9}]})
    assert [(f["path"], f["uploadMode"], bool(f["oid"])) for f in pre["data"]["files"]] == [
        ("data/x.csv", "regular", True), ("new.bin", "regular", False)]
    status, branches = api("GET", f"/api/v1/datasets/{user}/csg/branches")
    assert branches == {"msg": "OK", "data": [{"name": "main", "commit": {"id": up["data"]["commit"]},
                                              "ref": "refs/heads/main"}]}
    api("POST", f"/api/v1/datasets/{user}/csg/commit/main",
        {"message": "rm", "files": [{"path": "data/x.csv", "action": "delete"}]})
    status, tree = api("GET", f"/api/v1/datasets/{user}/csg/tree/main/")
    assert [i["path"] for i in tree["data"]["items"]] == [".gitattributes"]


def test_tokens_and_ssh_keys(daemon):
    user, token = daemon.user()
    api = Client(daemon.url, token)
    status, made = api("POST", "/api/v1/user/tokens", {"name": "ci", "scope": "read"})
    assert status == 201 and made["data"]["token"].startswith("gitd_")
    reader = Client(daemon.url, made["data"]["token"])
    assert reader("GET", "/api/v1/user")[1]["data"]["name"] == user
    assert reader("POST", "/api/v1/user/tokens", {"name": "escalate"})[0] == 403
    names = [t["name"] for t in api("GET", "/api/v1/user/tokens")[1]["data"]]
    assert "ci" in names and all("token" not in t for t in api("GET", "/api/v1/user/tokens")[1]["data"])
    assert api("DELETE", "/api/v1/user/tokens/ci")[0] == 200
    assert reader("GET", "/api/v1/user")[0] == 401

    key = asyncssh.generate_private_key("ssh-ed25519", comment="laptop")
    line = key.export_public_key().decode().strip()
    status, added = api("POST", "/api/v1/user/ssh_keys", {"key": line})
    assert status == 201 and added["data"]["fingerprint"] == key.get_fingerprint("sha256")
    assert added["data"]["title"] == "laptop"
    assert api("POST", "/api/v1/user/ssh_keys", {"key": line})[0] == 409
    _, other = daemon.user()
    assert Client(daemon.url, other)("POST", "/api/v1/user/ssh_keys", {"key": line})[0] == 409
    assert api("POST", "/api/v1/user/ssh_keys", {"key": "ssh-rsa not-a-key"})[0] == 400
    assert [k["fingerprint"] for k in api("GET", "/api/v1/user/ssh_keys")[1]["data"]] == [added["data"]["fingerprint"]]
    assert api("DELETE", f"/api/v1/user/ssh_keys/{quote(added['data']['fingerprint'], safe='')}")[0] == 200
    assert api("GET", "/api/v1/user/ssh_keys")[1]["data"] == []


def test_org_members(daemon):
    admin, admin_token = daemon.user()
    member, member_token = daemon.user()
    outsider, outsider_token = daemon.user()
    org = unique("org")
    daemon.cli("org", "create", org, "--owner", admin)
    api = Client(daemon.url, admin_token)
    assert api("PUT", f"/api/v1/orgs/{org}/members/{member}", {"role": "write"})[0] == 200
    _status, members = Client(daemon.url, member_token)("GET", f"/api/v1/orgs/{org}/members")
    assert {m["name"]: m["role"] for m in members["data"]} == {admin: "admin", member: "write"}
    assert Client(daemon.url, member_token)("PUT", f"/api/v1/orgs/{org}/members/{outsider}", {})[0] == 403
    assert Client(daemon.url, outsider_token)("GET", f"/api/v1/orgs/{org}/members")[0] == 404
    # a write member can create repositories in the organisation
    assert Client(daemon.url, member_token)("POST", "/api/v1/models", {"namespace": org, "name": "m"})[0] == 200
    assert api("DELETE", f"/api/v1/orgs/{org}/members/{member}")[0] == 200
    assert api("DELETE", f"/api/v1/orgs/{org}/members/{admin}")[0] == 400  # the last admin stays


def test_openapi_describes_the_routes(daemon):
    status, doc = Client(daemon.url)("GET", "/api/v1/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    paths = doc["paths"]
    for path, method in [("/api/v1/{types}", "post"), ("/api/v1/{types}/{ns}/{name}", "delete"),
                         ("/api/v1/{types}/{ns}/{name}/tree/{rev}/{path}", "get"),
                         ("/api/v1/user/ssh_keys", "post"), ("/api/v1/orgs/{org}/members/{user}", "put"),
                         ("/api/v1/{types}/{ns}/{name}/commit/{rev}", "post")]:
        assert method in paths[path], (path, method)
    # every documented operation answers (no 404/405 for a route the document names)
    user, token = daemon.user()
    api = Client(daemon.url, token)
    api("POST", "/api/v1/models", {"name": "doc"})
    fill = {"types": "models", "ns": user, "name": "doc", "rev": "main", "path": "", "org": "nobody",
            "user": user, "token": "none", "key": "none", "id": "1"}
    for path, ops in paths.items():
        for method in ops:
            if method != "get":
                continue
            status, _ = api("GET", path.format(**fill))
            assert status != 405 and (status != 404 or "{" in path), (path, status)


@pytest.mark.parametrize("path", ["/api/v1/user/tokens", "/api/v1/user/ssh_keys"])
def test_account_routes_need_a_user(daemon, path):
    status, body = Client(daemon.url)("GET", path)
    assert status == 401 and body["data"] is None
