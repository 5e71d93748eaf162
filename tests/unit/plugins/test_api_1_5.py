"""Plugin API 1.5: ``context.access_token``, the daemon's own token for one repository (read or
write), for a process a plugin starts with no caller behind it (a queued fine-tune job)."""

from __future__ import annotations

import base64
import json

import pytest

import gitd


class Quiet:
    def __init__(self, context: gitd.PluginContext):
        self.context = context


def test_an_access_token_reads_or_writes_its_one_repository_only(gitd_harness):
    h = gitd_harness(Quiet, name="quiet")
    secret = h.repo("alice/secret", private=True, files={"a.txt": "a"})
    h.repo("alice/other", private=True, files={"b.txt": "b"})
    lines = [{"key": "header", "value": {"summary": "x"}},
             {"key": "file", "value": {"path": "c.txt", "content": base64.b64encode(b"c").decode(),
                                       "encoding": "base64"}}]
    ndjson = "\n".join(json.dumps(line) for line in lines).encode()

    def commit(repo: str, headers: dict[str, str]) -> int:
        return h.http("POST", f"/api/models/{repo}/commit/main", body=ndjson,
                      headers={**headers, "Content-Type": "application/x-ndjson"}).status

    reader = {"Authorization": f"Bearer {h.context.access_token(secret, 'read', ttl=60)}"}
    assert h.http("GET", "/api/models/alice/secret/resolve/main/a.txt", headers=reader).body == b"a"
    assert h.http("GET", "/api/models/alice/other", headers=reader).status in (401, 404)  # no account: as anonymous
    assert commit("alice/secret", reader) in (401, 403)

    writer = {"Authorization": f"Bearer {h.context.access_token(secret, 'write', ttl=60)}"}
    assert commit("alice/secret", writer) == 200
    assert h.http("GET", "/api/models/alice/secret/resolve/main/c.txt", headers=writer).body == b"c"
    assert commit("alice/other", writer) in (401, 404)
    assert h.http("POST", "/api/repos/create", headers=writer,
                  json_body={"name": "new", "organization": "alice"}).status in (401, 403)

    with pytest.raises(ValueError, match="reads or writes"):
        h.context.access_token(secret, "admin")
    assert tuple(int(n) for n in gitd.API_VERSION.split(".")) >= (1, 5)


def test_a_gate_holds_back_people_not_the_daemons_own_process(gitd_harness):
    h = gitd_harness(Quiet, name="quiet")
    gated = h.repo("alice/gated", files={"a.txt": "a"})
    h.parts.access.gates.set_mode(gated.id, "manual")
    h.user("bob")
    path = "/api/models/alice/gated/resolve/main/a.txt"
    assert h.http("GET", path, user="bob").status in (401, 403, 404)  # not let in
    reader = {"Authorization": f"Bearer {h.context.access_token(gated, 'read', ttl=60)}"}
    assert h.http("GET", path, headers=reader).body == b"a"
