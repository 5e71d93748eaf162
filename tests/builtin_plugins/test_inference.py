"""The inference plugin in-process (gitd's harness): what creating an endpoint refuses, the
CSGHub run-instance routes it answers, its commands, and the engine's stop-string decoding.
Engines run end to end in tests/e2e/inference."""

from __future__ import annotations

import pytest
from gitd_plugins.inference import InferencePlugin
from gitd_plugins.inference.server import Decoded

from tests.tiny_model import train_tokenizer

COMMIT = "0" * 40


def harness(gitd_harness):
    return gitd_harness(InferencePlugin, name="inference", settings={"sleep_time": 0})


@pytest.mark.parametrize(("body", "status", "message"), [
    ({}, 400, '"model": "NS/NAME"'),
    ({"model": "alice/data"}, 400, "is a dataset repository, not a model"),
    ({"model": "alice/nothing"}, 404, "not found"),
    ({"model": "alice/card-only"}, 400, "no config.json"),
    ({"model": "alice/no-weights"}, 400, "no safetensors weights"),
    ({"model": "alice/secret"}, 404, "not found"),  # bob may not read it: as if it did not exist
    ({"model": "bob/tiny", "revision": "v9"}, 400, "has no revision 'v9'"),
    ({"model": "bob/tiny", "engine": "vllm"}, 400, "needs the kubernetes runtime"),
    ({"model": "bob/tiny", "engine": "llama"}, 400, "engine must be one of"),
    ({"model": "bob/tiny", "name": "../x"}, 400, "name: letters"),
    ({"model": "bob/tiny", "resources": {"disk": 1}}, 400, "resources may set"),
    ({"model": "bob/tiny", "rate_limit": -1}, 400, "rate_limit must be"),
    ({"model": "bob/tiny", "private": "yes"}, 400, "private must be"),
])
def test_creating_an_endpoint_refuses_bad_input(gitd_harness, body, status, message):
    h = harness(gitd_harness)
    h.repo("alice/data", type="dataset", files={"README.md": "# data\n"})
    h.repo("alice/card-only", files={"README.md": "# no model here\n"})
    h.repo("alice/no-weights", files={"config.json": "{}", "model.bin": "x"})
    h.repo("alice/secret", private=True, files={"config.json": "{}", "model.safetensors": "x"})
    h.repo("bob/tiny", files={"config.json": "{}", "model.safetensors": "x"})
    answer = h.http("POST", "/api/plugins/inference/endpoints", user="bob", json_body=body)
    assert answer.status == status, answer.body
    assert message in answer.json()["error"]
    assert h.plugin.endpoints.all() == []  # nothing was kept


def test_anonymous_callers_cannot_create_or_list(gitd_harness):
    h = harness(gitd_harness)
    assert h.http("POST", "/api/plugins/inference/endpoints", json_body={"model": "a/b"}).status == 401
    assert h.http("GET", "/api/plugins/inference/endpoints").status == 401
    assert h.http("GET", "/api/plugins/inference/endpoints/1/v1/models").status == 404  # none: not found


def add(h, repo, owner="alice", name="tiny-ep", status="stopped", private=True):
    return h.plugin.endpoints.add(name=name, owner=owner, repo_id=repo.id, repo=repo.full_name, revision="main",
                                  commit_id=COMMIT, engine="transformers", status=status, private=private)


def test_csghub_run_routes_answer_the_owners_endpoints(gitd_harness):
    h = harness(gitd_harness)
    repo = h.repo("alice/tiny", files={"config.json": "{}"})
    mine = add(h, repo, status="sleeping")
    h.user("bob")
    listed = h.http("GET", "/api/v1/user/alice/run/model", user="alice").json()["data"]
    assert [(i["deploy_id"], i["deploy_name"], i["model_id"], i["status"]) for i in listed] == [
        (mine.id, "tiny-ep", "alice/tiny", "Sleeping")]
    assert h.http("GET", "/api/v1/user/bob/run/model", user="bob").json()["data"] == []
    assert h.http("GET", "/api/v1/user/alice/run/model", user="bob").status == 403
    one = h.http("GET", f"/api/v1/models/alice/tiny/run/{mine.id}", user="alice")
    assert one.status == 200 and one.json()["data"]["commit"] == COMMIT
    assert h.http("GET", f"/api/v1/models/alice/tiny/run/{mine.id}", user="bob").status == 404  # not theirs
    assert h.http("GET", f"/api/v1/models/alice/tiny/run/{mine.id + 1}", user="alice").status == 404
    other = h.repo("alice/other", files={"config.json": "{}"})
    assert h.http("GET", f"/api/v1/models/{other.full_name}/run/{mine.id}", user="alice").status == 404
    stopped = h.http("PUT", f"/api/v1/models/alice/tiny/run/{mine.id}/stop", user="alice").json()["data"]
    assert stopped["status"] == "Stopped" and h.plugin.endpoints.get(mine.id).status == "stopped"


def test_a_private_endpoint_is_its_owners_and_a_stopped_one_does_not_wake(gitd_harness):
    h = harness(gitd_harness)
    repo = h.repo("alice/tiny", files={"config.json": "{}"})
    private = add(h, repo)
    public = add(h, repo, name="open", private=False)
    h.user("bob")
    base = "/api/plugins/inference/endpoints"
    assert h.http("GET", f"{base}/{private.id}/v1/models").status == 401
    assert h.http("GET", f"{base}/{private.id}/v1/models", user="bob").status == 404
    answer = h.http("GET", f"{base}/{private.id}/v1/models", user="alice")
    assert answer.status == 503 and answer.json()["error"]["code"] == "stopped"
    assert h.http("GET", f"{base}/{public.id}/v1/models").status == 503  # anyone reaches it; it is stopped
    assert h.http("GET", f"{base}/{private.id}", user="bob").status == 404
    assert h.http("GET", f"{base}/{private.id}", user="alice").json()["status"] == "stopped"
    assert [e["name"] for e in h.http("GET", base, user="alice").json()] == ["tiny-ep", "open"]
    assert h.http("DELETE", f"{base}/{public.id}", user="bob").status == 404
    assert h.http("DELETE", f"{base}/{public.id}", user="alice").status == 204
    assert h.plugin.endpoints.get(public.id) is None


def test_commands(gitd_harness):
    h = harness(gitd_harness)
    repo = h.repo("alice/tiny", files={"config.json": "{}", "model.safetensors": "x"})
    h.repo("alice/hidden", private=True, files={"config.json": "{}", "model.safetensors": "x"})
    endpoint = add(h, repo, status="failed")
    h.plugin.endpoints.set(endpoint.id, reason="the model does not load")
    code, out = h.cli("endpoints", "list")
    assert code == 0 and f"{endpoint.id}\talice/tiny-ep\talice/tiny@{COMMIT[:12]}\ttransformers\tfailed" in out
    code, out = h.cli("endpoints", "status", str(endpoint.id))
    assert "reason: the model does not load" in out
    code, out = h.cli("endpoints", "create", "alice/tiny", "--name", "from-cli")
    assert code == 0 and "start queued" in out
    created = h.plugin.endpoints.by_name("alice", "from-cli")
    assert created.commit_id == h.view(repo).head() and created.private and created.token is None
    assert h.cli("endpoints", "create", "alice/hidden")[0] != 0  # private: its token is minted through the API
    assert h.cli("endpoints", "stop", "999")[0] != 0


def test_stop_strings_are_cut_even_across_tokens():
    tok = train_tokenizer()
    ids = tok("the model serve the request", add_special_tokens=False)["input_ids"]

    def run(stops):
        d = Decoded(tok, stops)
        out = ""
        for token in ids:
            out += d.add(token)
            if d.stopped:
                break
        return out + d.flush(), d.stopped

    assert run([]) == ("the model serve the request", False)
    assert run(["serve"]) == ("the model ", True)
    assert run(["odel se"]) == ("the m", True)  # a stop string spanning tokens
    assert run(["nowhere"]) == ("the model serve the request", False)
    eos = Decoded(tok, [])
    assert eos.add(tok.eos_token_id) == "" and eos.eos


def test_endpoints_follow_their_model_renamed_and_go_with_it_deleted(gitd_harness):
    h = harness(gitd_harness)
    repo = h.repo("alice/tiny", files={"config.json": "{}"})
    endpoint = add(h, repo)
    h.rename(repo, "renamed")
    h.run_jobs()
    assert h.plugin.endpoints.get(endpoint.id).repo == "alice/renamed"
    h.delete(h.plugin.context.find_repo("alice/renamed", "model"))
    h.run_jobs()
    assert h.plugin.endpoints.get(endpoint.id) is None


def test_incremental_decoding_adds_up_to_the_whole_text():
    import random

    tok = train_tokenizer()
    rng = random.Random(7)
    special = set(tok.all_special_ids)
    half = tok.convert_tokens_to_ids("Ã")  # the first byte of "é" alone: a character left split at the end
    ids = [i for i in (rng.randrange(len(tok)) for _ in range(400)) if i not in special] + [half]
    assert tok.decode([half]) == "\ufffd"
    d = Decoded(tok, [])
    pieces = "".join(d.add(i) for i in ids) + d.flush()
    assert pieces == tok.decode(ids, skip_special_tokens=True)
