"""The strict parts of the Hub protocol, checked on the wire: headers, ranges, error codes, links, Xet."""

from __future__ import annotations

import hashlib
import http.client
import json
import re
from urllib.parse import urlsplit

import pytest

from tests.support import unique

DATA = bytes(range(256)) * 4  # 1024 bytes
DATE_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def call(url: str, method: str = "GET", path: str = "/", headers: dict[str, str] | None = None,
         body: bytes | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def repo(hub):
    from huggingface_hub import CommitOperationAdd

    user, token = hub.user()
    api = hub.api(token)
    name = f"{user}/{unique('w')}"
    api.create_repo(name)
    api.create_commit(name, commit_message="readme", operations=[CommitOperationAdd("README.md", b"# hi\n")])
    api.create_commit(name, commit_message="data", operations=[CommitOperationAdd("bin/data.bin", DATA)])
    api.create_branch(name, branch="rel/1.0")
    return {"name": name, "token": token, "sha": api.model_info(name).sha}


def test_head_resolve_headers(hub, repo):
    status, headers, body = call(hub.url, "HEAD", f"/{repo['name']}/resolve/main/bin/data.bin",
                                 {"Accept-Encoding": "identity"})
    assert status == 200 and body == b""
    assert headers["X-Repo-Commit"] == repo["sha"]
    # *.bin is in the first commit's .gitattributes: the file went to LFS, small as it is, and its
    # ETag is the LFS oid, as the Hub answers.
    assert headers["ETag"] == headers["X-Linked-Etag"] == f'"{hashlib.sha256(DATA).hexdigest()}"'
    assert headers["Content-Length"] == "1024"
    status, headers, _ = call(hub.url, "HEAD", f"/{repo['name']}/resolve/main/README.md",
                              {"Accept-Encoding": "identity"})
    assert status == 200 and headers["ETag"] == '"{}"'.format(hashlib.sha1(b"blob 5\0# hi\n").hexdigest())
    assert not [h for h in headers if h.lower().startswith("x-xet")]
    assert "xet" not in headers.get("Link", "")


def test_ranges(hub, repo):
    path = f"/{repo['name']}/resolve/{repo['sha']}/bin/data.bin"
    status, headers, body = call(hub.url, "GET", path, {"Range": "bytes=2-5"})
    assert status == 206 and body == DATA[2:6] and headers["Content-Range"] == "bytes 2-5/1024"
    status, headers, body = call(hub.url, "GET", path, {"Range": "bytes=-3"})
    assert status == 206 and body == DATA[-3:] and headers["Content-Range"] == "bytes 1021-1023/1024"
    status, headers, body = call(hub.url, "GET", path, {"Range": "bytes=1000-"})
    assert status == 206 and body == DATA[1000:]
    status, headers, body = call(hub.url, "GET", path, {"Range": "bytes=1024-"})
    assert status == 416 and headers["Content-Range"] == "bytes */1024"
    assert headers["X-Error-Code"] == "RangeNotSatisfiable" and "error" in json.loads(body)
    status, _, body = call(hub.url, "GET", path)
    assert status == 200 and body == DATA


def test_revision_with_slash_is_one_segment(hub, repo):
    status, headers, body = call(hub.url, "GET", f"/{repo['name']}/resolve/rel%2F1.0/README.md")
    assert status == 200 and body == b"# hi\n" and headers["X-Repo-Commit"] == repo["sha"]
    status, _, body = call(hub.url, "GET", f"/api/models/{repo['name']}/revision/rel%2F1.0")
    assert status == 200 and json.loads(body)["sha"] == repo["sha"]


def test_errors_carry_codes_and_json(hub, repo):
    status, headers, body = call(hub.url, "HEAD", f"/{repo['name']}/resolve/main/nope.txt")
    assert status == 404 and headers["X-Error-Code"] == "EntryNotFound"
    assert headers["X-Repo-Commit"] == repo["sha"]
    status, headers, body = call(hub.url, "GET", f"/{repo['name']}/resolve/ghost/README.md")
    assert status == 404 and headers["X-Error-Code"] == "RevisionNotFound" and json.loads(body)["error"]
    status, headers, body = call(hub.url, "GET", f"/api/models/{repo['name']}x")
    assert status == 401 and headers["X-Error-Code"] == "RepoNotFound" and json.loads(body)["error"]
    status, headers, body = call(hub.url, "GET", f"/api/models/{repo['name']}/tree/main/README.md")
    assert status == 404 and headers["X-Error-Code"] == "EntryNotFound"
    status, headers, body = call(hub.url, "POST", f"/api/models/{repo['name']}/commit/main",
                                 {"Authorization": f"Bearer {repo['token']}", "Content-Type": "application/x-ndjson"},
                                 b"not json\n")
    assert status == 400 and headers["X-Error-Code"] == "BadRequest" and json.loads(body)["error"]


def test_info_dates_and_absolute_links(hub, repo):
    status, _, body = call(hub.url, "GET", f"/api/models/{repo['name']}")
    info = json.loads(body)
    assert DATE_RE.match(info["lastModified"]) and DATE_RE.match(info["createdAt"])
    assert "xetHash" not in body.decode()
    status, headers, body = call(hub.url, "GET", f"/api/models?author={repo['name'].split('/')[0]}&limit=1")
    assert status == 200 and [m["id"] for m in json.loads(body)] == [repo["name"]]
    assert "Link" not in headers
    status, headers, body = call(hub.url, "GET", f"/api/models/{repo['name']}/commits/main?limit=1")
    assert status == 200 and len(json.loads(body)) == 1
    link = re.match(r'^<(.+)>; rel="next"$', headers["Link"])
    assert link and link.group(1).startswith(hub.url + "/api/models/")
    status, _, body = call(hub.url, "GET", link.group(1)[len(hub.url):])
    assert status == 200 and len(json.loads(body)) == 1


def test_validate_yaml_always_answers_json(hub):
    ok = call(hub.url, "POST", "/api/validate-yaml", {"Content-Type": "application/json"},
              json.dumps({"content": "---\nlicense: mit\n---\n# x\n", "repoType": "model"}).encode())
    assert ok[0] == 200 and json.loads(ok[2]) == {}
    bad = call(hub.url, "POST", "/api/validate-yaml", {"Content-Type": "application/json"},
               json.dumps({"content": "---\nlicense: [unclosed\n---\n", "repoType": "model"}).encode())
    assert bad[0] == 400 and json.loads(bad[2])["errors"][0]["message"]
    garbage = call(hub.url, "POST", "/api/validate-yaml", {"Content-Type": "application/json"}, b"{")
    assert garbage[0] == 400 and "errors" in json.loads(garbage[2])


def test_invalid_card_is_refused_by_upload(hub, repo):
    with pytest.raises(ValueError, match="YAML"):
        hub.api(repo["token"]).upload_file(path_or_fileobj=b"---\nx: [\n---\n", path_in_repo="README.md",
                                           repo_id=repo["name"])


def test_xet_is_never_offered(hub, repo):
    status, headers, body = call(hub.url, "GET", f"/api/models/{repo['name']}/xet-write-token/main",
                                 {"Authorization": f"Bearer {repo['token']}"})
    assert status == 501 and "HF_HUB_DISABLE_XET=1" in headers["X-Error-Message"]
    assert headers["X-Error-Code"] and json.loads(body)["error"]
    status, _, body = call(hub.url, "GET", "/api/agent-harnesses")
    assert status == 200 and json.loads(body) == {"standardEnvVars": [], "harnesses": {}}
    status, _, body = call(hub.url, "POST", f"/api/models/{repo['name']}/preupload/main",
                           {"Authorization": f"Bearer {repo['token']}", "Content-Type": "application/json"},
                           json.dumps({"files": [{"path": "big.bin", "size": 5 << 30, "sample": ""},
                                                 {"path": "README.md", "size": 5, "sample": ""},
                                                 {"path": "at-limit.txt", "size": 10_000_000, "sample": ""},
                                                 {"path": "over.txt", "size": 10_000_001, "sample": ""},
                                                 {"path": "empty.bin", "size": 0, "sample": ""}]}).encode())
    files = json.loads(body)["files"]
    # [hub] regular_upload_max = 10MB: inline up to it, Git LFS above (the client must disable Xet)
    assert [f["uploadMode"] for f in files] == ["lfs", "regular", "regular", "lfs", "regular"]
    assert files[1]["oid"] == hashlib.sha1(b"blob 5\0# hi\n").hexdigest() and "oid" not in files[0]


def test_regression_commit_paths_cannot_escape(hub, repo):
    for bad in ("../x", "/etc/passwd", ".git/config", "a/./b", "sub/.git/hooks/pre-receive"):
        line = json.dumps({"key": "file", "value": {"path": bad, "content": "eA==", "encoding": "base64"}})
        body = (json.dumps({"key": "header", "value": {"summary": "x"}}) + "\n" + line + "\n").encode()
        status, headers, _ = call(hub.url, "POST", f"/api/models/{repo['name']}/commit/main",
                                  {"Authorization": f"Bearer {repo['token']}",
                                   "Content-Type": "application/x-ndjson"}, body)
        assert status == 400 and headers["X-Error-Code"] == "BadRequest", bad


@pytest.mark.parametrize("path", ["bin/", "bin//data.bin", "./README.md", "bin/../README.md", "bin%2F..%2F..",
                                  "README.md/x", ".git/config", "%00", "%C3%28"])
def test_odd_paths_are_plain_misses(hub, repo, path):
    undecodable = path in ("%00", "%C3%28")  # refused by the router before any handler runs
    for method in ("HEAD", "GET"):
        status, headers, _ = call(hub.url, method, f"/{repo['name']}/resolve/main/{path}")
        assert status == 404, (method, path, status)
        assert undecodable or headers["X-Error-Code"] == "EntryNotFound"
    if path != "bin/":  # a folder with a trailing slash lists
        status, headers, body = call(hub.url, "GET", f"/api/models/{repo['name']}/tree/main/{path}")
        assert status == 404 and (undecodable or json.loads(body)["error"]), (path, status)


def test_empty_repository_lists_as_empty(hub):
    user, token = hub.user()
    api = hub.api(token)
    name = f"{user}/{unique('empty')}"
    hub.daemon.cli("repo", "create", name, "--empty")  # (create_repo makes a first commit, as on the Hub)
    assert api.list_repo_files(name) == []
    assert api.get_paths_info(name, ["README.md"]) == []
    assert api.model_info(name).sha is None
    assert api.revision_exists(name, "main") is False
    api.upload_folder(folder_path=_folder_with_one_file(hub), repo_id=name, delete_patterns=["*.tmp"])
    assert api.list_repo_files(name) == ["one.txt"]


def _folder_with_one_file(hub):
    folder = hub.home / unique("one")
    folder.mkdir()
    (folder / "one.txt").write_text("1")
    return folder


def test_preupload_should_ignore_follows_gitignore(hub, repo):
    def modes(body: dict) -> dict[str, bool]:
        status, _, raw = call(hub.url, "POST", f"/api/models/{repo['name']}/preupload/main",
                              {"Authorization": f"Bearer {repo['token']}", "Content-Type": "application/json"},
                              json.dumps(body).encode())
        assert status == 200
        return {f["path"]: f["shouldIgnore"] for f in json.loads(raw)["files"]}

    files = [{"path": p, "size": 1, "sample": ""} for p in ("a.log", "logs/x.txt", "keep.log", "model.bin")]
    assert modes({"files": files, "gitIgnore": "*.log\n!keep.log\nlogs/\n"}) == {
        "a.log": True, "logs/x.txt": True, "keep.log": False, "model.bin": False}
    assert modes({"files": files}) == dict.fromkeys(("a.log", "logs/x.txt", "keep.log", "model.bin"), False)


def test_big_blob_is_streamed_with_ranges(hub, daemon, git, tmp_path):
    user, token = hub.user()
    name = daemon.repo(user, unique("big"))
    big = bytes(range(251)) * (9 * 1024 * 1024 // 251 + 1)  # just over 9 MiB: the streamed path
    work = git.init_work(tmp_path / "w", {"big.bin": big})
    git("push", daemon.repo_url(name, token=token), "main", cwd=work)
    status, headers, body = call(hub.url, "GET", f"/{name}/resolve/main/big.bin")
    assert status == 200 and int(headers["Content-Length"]) == len(big) and body == big
    lo, hi = 5_000_000, 5_300_123
    status, headers, body = call(hub.url, "GET", f"/{name}/resolve/main/big.bin", {"Range": f"bytes={lo}-{hi}"})
    assert status == 206 and body == big[lo:hi + 1] and headers["Content-Range"] == f"bytes {lo}-{hi}/{len(big)}"
