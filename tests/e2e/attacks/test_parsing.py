"""Hostile input to the Hub API's parsers (issue #19): each attack, run against a live daemon, gets a
clean refusal (or a bounded answer), and /healthz keeps answering quickly all the while."""

from __future__ import annotations

import base64
import http.client
import json
import os
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pygit2
import pytest

from tests.e2e.rawhttp import bearer, request
from tests.support import unique

# /healthz answers in about a millisecond; the bound leaves room for a busy 2-core CI machine.
HEALTHZ_BOUND = 0.5


class HealthProbe:
    """GET /healthz every 20 ms on a thread while the block runs; ``worst`` is its slowest answer."""

    def __init__(self, url: str):
        self.url = url
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()

    def __enter__(self) -> HealthProbe:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _probe(self) -> None:
        started = time.monotonic()
        try:
            reply = request(self.url, "GET", "/healthz", timeout=30)
            if reply.status != 200:
                self.failures.append(f"status {reply.status}")
        except OSError as exc:
            self.failures.append(repr(exc))
        self.latencies.append(time.monotonic() - started)

    def _run(self) -> None:
        while True:
            self._probe()
            if self._stop.wait(0.02):
                return

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)
        self._probe()  # and once more after the attack: the daemon still answers

    @property
    def worst(self) -> float:
        return max(self.latencies, default=0.0)

    def check(self) -> None:
        assert not self.failures, self.failures[:3]
        assert len(self.latencies) >= 2, "the probe hardly ran"
        assert self.worst < HEALTHZ_BOUND, f"/healthz took {self.worst:.3f} s during the attack"


def _json(reply) -> dict:
    return json.loads(reply.body)


def _ndjson(*items: dict) -> bytes:
    return b"".join(json.dumps(i).encode() + b"\n" for i in items)


def _header(summary: str = "attack") -> dict:
    return {"key": "header", "value": {"summary": summary, "description": ""}}


def _file(path: str, data: bytes) -> dict:
    return {"key": "file", "value": {"content": base64.b64encode(data).decode(), "path": path, "encoding": "base64"}}


def _loose_objects(repo: Path) -> set[str]:
    """Every object file under objects/ (quarantines and packs left out)."""
    found = set()
    for sub in (repo / "objects").iterdir():
        if len(sub.name) == 2 and sub.is_dir():
            found |= {sub.name + f.name for f in sub.iterdir()}
    return found


@pytest.fixture
def owner(daemon):
    user, token = daemon.user()
    return user, token


# -- YAML ---------------------------------------------------------------------------------------------
def test_regression_validate_yaml_cannot_freeze_the_daemon(daemon):
    """1 MB of YAML to the anonymous /api/validate-yaml blocked the event loop for 15 s (4 MB: 68 s)."""
    mapping = "".join(f"key{i}:\n  - name: value {i}\n    tags: [a, b, c]\n" for i in range(20000))
    with HealthProbe(daemon.url) as probe:
        started = time.monotonic()
        big = request(daemon.url, "POST", "/api/validate-yaml", body=json.dumps(
            {"content": f"---\n{mapping}---\n# card\n"}).encode(), headers={"Content-Type": "application/json"})
        took = time.monotonic() - started
        huge = request(daemon.url, "POST", "/api/validate-yaml", body=b"x" * (5 * 1024 * 1024),
                       headers={"Content-Type": "application/json"})
    assert big.status == 400 and "larger than" in _json(big)["errors"][0]["message"]
    assert took < 5
    assert huge.status == 413 and _json(huge)["errors"]
    probe.check()
    card = {"content": "---\nlicense: mit\ntags: [a]\n---\n# fine\n"}
    ok = request(daemon.url, "POST", "/api/validate-yaml", body=json.dumps(card).encode(),
                 headers={"Content-Type": "application/json"})
    assert ok.status == 200 and _json(ok) == {}


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [" + ", ".join([f"*{p}"] * 9) + "]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))


def test_regression_readme_alias_bomb_leaves_the_card_out(daemon, git, owner, tmp_path):
    """354 bytes of README front matter made a 691 MB cardData answer (12 s freeze, RSS +1.3 GB)."""
    user, token = owner
    repo = daemon.repo(user, unique("bomb"))
    work = git.init_work(tmp_path / "w", {"README.md": f"---\n{BOMB}---\n# a model\n"})
    git("push", daemon.repo_url(repo, token=token), "main", cwd=work)
    with HealthProbe(daemon.url) as probe:
        info = request(daemon.url, "GET", f"/api/models/{repo}")
        checked = request(daemon.url, "POST", "/api/validate-yaml", body=json.dumps(
            {"content": f"---\n{BOMB}---\n"}).encode(), headers={"Content-Type": "application/json"})
    assert info.status == 200 and len(info.body) < 10_000
    data = _json(info)
    assert data["id"] == repo and "cardData" not in data and data["siblings"][0]["rfilename"] == "README.md"
    assert checked.status == 400 and "anchors" in _json(checked)["errors"][0]["message"]
    assert "is left out: YAML anchors" in daemon.log()
    probe.check()


# -- trees ----------------------------------------------------------------------------------------------
def _push_tree_bomb(git, daemon, repo: str, token: str, root: Path, width: int, depth: int) -> str:
    """Push a commit whose tree describes width**depth files in depth+1 objects (pushed by real git)."""
    bare = pygit2.init_repository(str(root / "bomb.git"), bare=True)
    node, mode = bare.create_blob(b"x\n"), pygit2.GIT_FILEMODE_BLOB
    for _ in range(depth):
        builder = bare.TreeBuilder()
        for i in range(width):
            builder.insert(f"d{i}", node, mode)
        node, mode = builder.write(), pygit2.GIT_FILEMODE_TREE
    sig = pygit2.Signature("t", "t@example.com", 0, 0)
    commit = str(bare.create_commit(None, sig, sig, "bomb\n", node, []))
    git("push", daemon.repo_url(repo, token=token), f"{commit}:refs/heads/main", cwd=root / "bomb.git")
    return commit


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise KeyError("VmRSS")


def test_regression_tree_bomb_answers_are_bounded(make_daemon, git, tmp_path):
    """10 objects describing 10**10 paths: an anonymous GET /api/models/{repo} grew RSS without bound."""
    d = make_daemon(settings={"hub.max_listed_files": 2000})
    user, token = d.user()
    repo = d.repo(user, unique("tree"))
    commit = _push_tree_bomb(git, d, repo, token, tmp_path, width=10, depth=10)
    before = _rss(d.proc.pid)
    with HealthProbe(d.url) as probe:
        info = request(d.url, "GET", f"/api/models/{repo}")
        first = request(d.url, "GET", f"/api/models/{repo}/tree/main?recursive=true")
        link = first.headers["link"]
        target = link[link.index(d.url) + len(d.url):link.index(">")]
        second = request(d.url, "GET", target)
        native = request(d.url, "GET", f"/api/v1/models/{repo}/tree/main?recursive=true")
        paths = request(d.url, "POST", f"/api/models/{repo}/paths-info/{commit}",
                        body=json.dumps({"paths": ["d0/d1", "d9/" * 9 + "d9"]}).encode(),
                        headers={"Content-Type": "application/json"})
    assert info.status == 200
    data = _json(info)
    assert data["siblingsTruncated"] is True and 0 < len(data["siblings"]) <= 2000
    assert data["siblings"][0]["rfilename"] == "d0/" * 9 + "d0"
    assert first.status == second.status == 200
    page1, page2 = _json(first), _json(second)
    assert len(page1) == len(page2) == 1000 and page1[-1]["path"] < page2[0]["path"]
    assert native.status == 200 and _json(native)["data"]["truncated"] is True
    assert [p["path"] for p in _json(paths)] == ["d0/d1", "d9/" * 9 + "d9"]
    assert _rss(d.proc.pid) - before < 200 * 1024 * 1024
    probe.check()


# -- gitignore --------------------------------------------------------------------------------------------
def test_regression_gitignore_redos_is_linear(daemon, owner):
    """gitIgnore "**a"*6+"b" against a 200-character path froze the event loop for minutes."""
    user, token = owner
    repo = daemon.repo(user, unique("redos"))
    body = {"files": [{"path": "a" * 200, "size": 1, "sample": ""}, {"path": "x.b", "size": 1, "sample": ""}],
            "gitIgnore": "**a" * 6 + "b\n*.b\n"}
    with HealthProbe(daemon.url) as probe:
        started = time.monotonic()
        reply = request(daemon.url, "POST", f"/api/models/{repo}/preupload/main", body=json.dumps(body).encode(),
                        headers={**bearer(token), "Content-Type": "application/json"}, timeout=60)
        took = time.monotonic() - started
        too_many = request(daemon.url, "POST", f"/api/models/{repo}/preupload/main",
                           body=json.dumps({"files": [], "gitIgnore": "*.x\n" * 2000}).encode(),
                           headers={**bearer(token), "Content-Type": "application/json"})
    assert reply.status == 200, reply
    assert {f["path"]: f["shouldIgnore"] for f in _json(reply)["files"]} == {"a" * 200: False, "x.b": True}
    assert took < 5
    assert too_many.status == 400 and b"more than 1000 patterns" in too_many.body
    probe.check()


# -- NDJSON commits ---------------------------------------------------------------------------------------
def test_regression_ndjson_commit_is_capped_and_leaves_nothing_behind(make_daemon):
    """No total cap on the NDJSON commit (89 MB lines, four at once +850 MB), and a refused commit's blobs
    stayed behind as loose objects."""
    d = make_daemon(settings={"hub.max_inline_file": "2MiB", "hub.max_commit_size": "6MiB"})
    user, token = d.user()
    repo = d.repo(user, unique("nd"))
    auth = {**bearer(token), "Content-Type": "application/x-ndjson"}
    ok = request(d.url, "POST", f"/api/models/{repo}/commit/main", headers=auth,
                 body=_ndjson(_header("first"), _file("a.txt", b"a\n")))
    assert ok.status == 200, ok
    path = d.repo_path(repo)
    objects = _loose_objects(path)
    blob = os.urandom(1536 * 1024)
    with HealthProbe(d.url) as probe:
        # Too much in all: refused once past 6 MiB, having written blobs for the lines before.
        total = request(d.url, "POST", f"/api/models/{repo}/commit/main", headers=auth,
                        body=iter([_ndjson(_header()), *(_ndjson(_file(f"f{i}.bin", blob)) for i in range(5))]))
        # A line over max_inline_file.
        line = request(d.url, "POST", f"/api/models/{repo}/commit/main", headers=auth,
                       body=_ndjson(_header(), _file("big.bin", os.urandom(3 * 1024 * 1024))))
        # A valid blob, then a bad line.
        bad = request(d.url, "POST", f"/api/models/{repo}/commit/main", headers=auth,
                      body=_ndjson(_header(), _file("kept.bin", blob), {"key": "nonsense", "value": {}}))
    assert total.status == 413 and b"larger than 6291456 bytes" in total.body
    assert line.status == 413 and b"larger than" in line.body
    assert bad.status == 400 and b"unknown commit operation" in bad.body
    assert _loose_objects(path) == objects
    assert not list((path / "objects").glob("tmp_objdir-*"))
    probe.check()
    # The branch still takes commits, and only the good one's objects arrive.
    again = request(d.url, "POST", f"/api/models/{repo}/commit/main", headers=auth,
                    body=_ndjson(_header("second"), _file("b.bin", blob)))
    assert again.status == 200
    assert len(_loose_objects(path) - objects) == 3  # blob, tree, commit
    env = {"PATH": os.environ["PATH"], "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    checked = subprocess.run(["git", "--git-dir", str(path), "fsck", "--strict"], capture_output=True, env=env)
    assert checked.returncode == 0, checked.stderr


def test_regression_api_commits_get_the_object_checks_pushes_get(daemon, git, owner, tmp_path):
    """A .gitmodules with url = --upload-pack=... and a ../ name was accepted by the commit API (the same
    content pushed is refused), and then every later push to that branch failed."""
    user, token = owner
    repo = daemon.repo(user, unique("fsck"))
    url = daemon.repo_url(repo, token=token)
    work = git.init_work(tmp_path / "w", {"README.md": "hi\n"})
    git("push", url, "main", cwd=work)
    path = daemon.repo_path(repo)
    objects = _loose_objects(path)
    gitmodules = b'[submodule "../../x"]\n\tpath = sub\n\turl = --upload-pack=touch /tmp/gitd-pwned\n'
    reply = request(daemon.url, "POST", f"/api/models/{repo}/commit/main",
                    headers={**bearer(token), "Content-Type": "application/x-ndjson"},
                    body=_ndjson(_header(), _file(".gitmodules", gitmodules)))
    assert reply.status == 422, reply
    assert _json(reply)["error"].startswith("the commit was refused by git's object checks: ")
    assert b"gitmodules" in reply.body
    assert _loose_objects(path) == objects
    git.commit(work, {"more.txt": "1\n"})
    git("push", url, "main", cwd=work)


# -- smaller ---------------------------------------------------------------------------------------------
def test_regression_small_parsing_attacks_get_clean_400s(make_daemon, git, tmp_path):
    """paths-info with 700k paths blocked the loop 2.4 s; a 5,000-character revision, commit paths
    '.git ', '.git.', 'git~1' and a 200k-deep JSON body gave 500s; refs/heads/HEAD could be created."""
    d = make_daemon(settings={"hub.max_paths_info": 1000})
    user, token = d.user()
    repo = d.repo(user, unique("small"))
    work = git.init_work(tmp_path / "w", {"README.md": "hi\n"})
    git("push", d.repo_url(repo, token=token), "main", cwd=work)
    auth = bearer(token)
    nd = {**auth, "Content-Type": "application/x-ndjson"}
    with HealthProbe(d.url) as probe:
        paths = request(d.url, "POST", f"/api/models/{repo}/paths-info/main",
                        body=json.dumps({"paths": [f"p{i}" for i in range(700_000)]}).encode(),
                        headers={"Content-Type": "application/json"})
        some = request(d.url, "POST", f"/api/models/{repo}/paths-info/main",
                       body=json.dumps({"paths": [f"p{i}" for i in range(1001)]}).encode(),
                       headers={"Content-Type": "application/json"})
        form = request(d.url, "POST", f"/api/models/{repo}/paths-info/main",  # as huggingface_hub sends it
                       body="&".join(f"paths=p{i}" for i in range(1001)).encode(),
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
        long_rev = request(d.url, "GET", f"/api/models/{repo}/revision/{'x' * 5000}")
        dotgits = [request(d.url, "POST", f"/api/models/{repo}/commit/main", headers=nd,
                           body=_ndjson(_header(), _file(f"{name}/config", b"x"))).status
                   for name in (".git ", ".git.", "git~1", ".GIT")]
        deep = request(d.url, "POST", "/api/repos/create", body=b"[" * 200_000 + b"]" * 200_000,
                       headers={**auth, "Content-Type": "application/json"})
        head = request(d.url, "POST", f"/api/models/{repo}/branch/HEAD", body=b"{}",
                       headers={**auth, "Content-Type": "application/json"})
    assert paths.status == 413 and b"larger than" in paths.body
    assert some.status == 400 and b"at most 1000 paths" in some.body
    assert form.status == 400 and b"at most 1000 paths" in form.body
    assert long_rev.status == 400 and len(long_rev.body) < 500
    assert dotgits == [400, 400, 400, 400]
    assert deep.status == 400 and b"nested too deeply" in deep.body
    assert head.status == 400 and b"invalid branch name" in head.body
    assert "refs/heads/HEAD" not in git.out("ls-remote", d.repo_url(repo))
    assert "Traceback" not in d.log() and "x" * 500 not in d.log()
    probe.check()


def _with_host(url: str, target: str, body: dict, headers: dict[str, str], host: str) -> tuple[int, dict]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        raw = json.dumps(body).encode()
        conn.putrequest("POST", target, skip_host=True)
        for key, value in {**headers, "Host": host, "Content-Length": str(len(raw))}.items():
            conn.putheader(key, value)
        conn.endheaders(raw)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_regression_links_never_come_from_the_host_header(daemon, owner):
    """Without server.public_url, redirects and LFS links used the request's Host header."""
    user, token = owner
    name = unique("host")
    status, created = _with_host(daemon.url, "/api/repos/create", {"name": name},
                                 {**bearer(token), "Content-Type": "application/json"}, "evil.example")
    assert status == 200 and created["url"] == f"{daemon.url}/{user}/{name}"
    status, batch = _with_host(daemon.url, f"/{user}/{name}.git/info/lfs/objects/batch",
                               {"operation": "upload", "objects": [{"oid": "a" * 64, "size": 3}]},
                               {**bearer(token), "Content-Type": "application/vnd.git-lfs+json",
                                "Accept": "application/vnd.git-lfs+json"}, "evil.example")
    assert status == 200
    assert batch["objects"][0]["actions"]["upload"]["href"].startswith(daemon.url + "/")


def test_regression_access_log_leaves_out_link_credentials(make_daemon):
    """Signed link credentials (?token=...) were written to the access log."""
    d = make_daemon(settings={"server.access_log": True})
    reply = request(d.url, "GET", "/healthz?token=gitds.SECRETCLAIMS.SECRETSIG&x=1")
    assert reply.status == 200
    deadline = time.monotonic() + 5
    while "/healthz?token=REDACTED&x=1" not in d.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "/healthz?token=REDACTED&x=1" in d.log()
    assert "SECRET" not in d.log()
