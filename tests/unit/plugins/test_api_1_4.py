"""Plugin API 1.4: read tokens minted for one repository on the caller's behalf
(``PluginRequest.repo_token``), and the process pieces plugins share."""

from __future__ import annotations

import gitd


class Minter:
    @gitd.hookimpl
    def gitd_http_routes(self) -> list:
        return [gitd.Route("GET", "/token/{ns}/{name}", self.mint)]

    def mint(self, request: gitd.PluginRequest) -> dict:
        repo = request.repository(f"{request.params['ns']}/{request.params['name']}")
        return {"token": request.repo_token(repo, ttl=60)}


def test_a_repo_token_reads_that_repository_only_and_writes_nothing(gitd_harness):
    h = gitd_harness(Minter(), name="minter")
    h.repo("alice/secret", private=True, files={"a.txt": "a"})
    h.repo("alice/other", private=True, files={"b.txt": "b"})
    h.user("bob")
    assert h.http("GET", "/api/plugins/minter/token/alice/secret").status == 401  # anonymous: sign in
    assert h.http("GET", "/api/plugins/minter/token/alice/secret", user="bob").status == 404
    token = h.http("GET", "/api/plugins/minter/token/alice/secret", user="alice").json()["token"]
    assert token.startswith("gitds.")
    bearer = {"Authorization": f"Bearer {token}"}
    assert h.http("GET", "/api/models/alice/secret", headers=bearer).status == 200
    assert h.http("GET", "/api/models/alice/secret/resolve/main/a.txt", headers=bearer).body == b"a"
    assert h.http("GET", "/api/models/alice/other", headers=bearer).status == 404
    commit = {"summary": "x", "files": [{"path": "c.txt", "content": "c", "encoding": "utf-8"}]}
    assert h.http("POST", "/api/models/alice/secret/commit/main", headers=bearer, json_body=commit).status in (401, 403)


def test_the_shared_process_pieces_are_public(tmp_path):
    assert tuple(int(n) for n in gitd.API_VERSION.split(".")) >= (1, 4)
    log = gitd.BoundedLog(tmp_path / "x.log", 4096)
    log.write(b"y" * 5000)
    log.line("done")
    assert log.tail().endswith(b"[gitd] done\n") and len(log.tail()) <= 2 * 4096
    argv = gitd.limited_argv(["python", "-V"], memory=1 << 30, cpu=0, nofile=64, nproc=0)
    assert argv[0] == "python" and argv[-2:] == ["python", "-V"]
    assert 0 < gitd.free_port() < 65536
    buckets = gitd.TokenBuckets(rate=1.0, burst=1)
    assert buckets.take("k", now=0.0) == 0.0 and buckets.take("k", now=0.0) > 0
