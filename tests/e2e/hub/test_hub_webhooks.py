"""Webhooks with the stock huggingface_hub 2.4 client: create, get, list, update, disable and
enable, delete; deliveries of repository, content and discussion events to a real HTTP
receiver, signed, retried as durable jobs when the receiver fails; a webhook never carries
an event of a repository its owner cannot read."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from huggingface_hub import CommitOperationAdd
from huggingface_hub.errors import HfHubHTTPError

from tests.support import unique


class Receiver:
    """A loopback HTTP server that records each POST; ``fail`` answers the next N with 500."""

    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.fail = 0
        self.failed = 0
        self.cond = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer.cond:
                    if outer.fail > 0:
                        outer.fail -= 1
                        outer.failed += 1
                        self.send_response(500)
                        self.end_headers()
                        return
                    outer.got.append((dict(self.headers.items()), body))
                    outer.cond.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def payloads(self) -> list[dict]:
        with self.cond:
            return [json.loads(b) for _, b in self.got]

    def wait(self, match, timeout: float = 30.0) -> tuple[dict[str, str], dict]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for headers, body in self.got:
                    payload = json.loads(body)
                    if match(payload):
                        return headers, payload
                left = deadline - time.monotonic()
                assert left > 0, f"no matching delivery; got {[json.loads(b)['event'] for _, b in self.got]}"
                self.cond.wait(left)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def test_webhooks_deliver_signed_events_and_retry(hub, receiver):
    owner, token = hub.user()
    api = hub.api(token)
    repo = f"{owner}/{unique('wh')}"
    api.create_repo(repo)
    hook = api.create_webhook(url=receiver.url, watched=[{"type": "model", "name": repo}],
                              domains=["repo", "discussion"], secret="s3cret")
    assert api.get_webhook(hook.id) == hook and [w.id for w in api.list_webhooks()] == [hook.id]
    assert hook.watched[0].name == repo and not hook.disabled

    receiver.fail = 2  # the first two attempts fail: the job queue retries
    commit = api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo)
    # (the repository's first commit may be delivered too: its job can run after the webhook exists)
    headers, content = receiver.wait(lambda p: p["event"]["scope"] == "repo.content"
                                     and p.get("headSha") == commit.oid)
    assert receiver.failed == 2
    assert content["event"]["action"] == "update" and content["repo"]["name"] == repo
    assert content["headSha"] == commit.oid and content["updatedRefs"][0]["ref"] == "refs/heads/main"
    assert content["webhook"]["id"] == hook.id
    body = json.dumps(content, separators=(",", ":")).encode()
    assert headers["X-Webhook-Secret"] == "s3cret"
    assert headers["X-Webhook-Signature-256"] == "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()

    d = api.create_discussion(repo, "Webhook me")
    receiver.wait(lambda p: p["event"] == {"action": "create", "scope": "discussion"}
                  and p["discussion"]["num"] == d.num)
    api.comment_discussion(repo, d.num, "hello hooks")
    _, c = receiver.wait(lambda p: p["event"]["scope"] == "discussion.comment")
    assert c["comment"]["data"]["latest"]["raw"] == "hello hooks" and c["discussion"]["title"] == "Webhook me"
    api.update_repo_settings(repo, private=True)
    receiver.wait(lambda p: p["event"]["scope"] == "repo.config" and p["updatedConfig"] == {"private": True})

    # Disabled, it delivers nothing; updated, it watches what it was told.
    assert api.disable_webhook(hook.id).disabled
    quiet = api.create_commit(repo, operations=[CommitOperationAdd("quiet.txt", b"q")], commit_message="quiet")
    time.sleep(1.5)
    assert not [p for p in receiver.payloads() if p.get("headSha") == quiet.oid]
    assert not api.enable_webhook(hook.id).disabled
    other_repo = f"{owner}/{unique('wh2')}"
    api.create_repo(other_repo, repo_type="dataset")
    updated = api.update_webhook(hook.id, watched=[{"type": "dataset", "name": other_repo}], domains=["repo"])
    assert updated.domains == ["repo"] and updated.watched[0].type == "dataset"
    api.upload_file(path_or_fileobj=b"d", path_in_repo="d.txt", repo_id=other_repo, repo_type="dataset")
    receiver.wait(lambda p: p["repo"]["name"] == other_repo and p["event"]["scope"] == "repo.content")

    api.delete_webhook(hook.id)
    assert api.list_webhooks() == []
    with pytest.raises(HfHubHTTPError) as exc:
        api.get_webhook(hook.id)
    assert exc.value.response.status_code == 404


def test_regression_webhooks_never_reveal_a_private_repository(hub, receiver):
    owner, token = hub.user()
    _watcher, watcher_token = hub.user()
    api, w_api = hub.api(token), hub.api(watcher_token)
    secret_repo, open_repo = f"{owner}/{unique('hid')}", f"{owner}/{unique('pub')}"
    api.create_repo(secret_repo, private=True)
    api.create_repo(open_repo)
    # Watching a private repository one cannot read is refused as watching a missing one.
    for name in (secret_repo, f"{owner}/{unique('none')}"):
        with pytest.raises(HfHubHTTPError) as exc:
            w_api.create_webhook(url=receiver.url, watched=[{"type": "model", "name": name}])
        assert exc.value.response.status_code == 400 and "no model repository named" in str(exc.value)
    hook = w_api.create_webhook(url=receiver.url, watched=[{"type": "user", "name": owner}], domains=["repo"])
    mine = api.create_webhook(url=receiver.url, watched=[{"type": "user", "name": owner}], domains=["repo"])
    with pytest.raises(HfHubHTTPError) as exc:
        api.get_webhook(hook.id)  # another account's webhook is not found
    assert exc.value.response.status_code == 404
    with pytest.raises(HfHubHTTPError) as exc:
        api.delete_webhook(hook.id)
    assert exc.value.response.status_code == 404
    api.upload_file(path_or_fileobj=b"s", path_in_repo="s.txt", repo_id=secret_repo)
    api.upload_file(path_or_fileobj=b"p", path_in_repo="p.txt", repo_id=open_repo)
    for webhook in (hook, mine):
        for name in (open_repo, secret_repo) if webhook is mine else (open_repo,):
            receiver.wait(lambda p, n=name, w=webhook: p["repo"]["name"] == n and p["webhook"]["id"] == w.id
                          and p["event"]["scope"] == "repo.content")
    moved = f"{owner}/{unique('moved')}"
    api.move_repo(open_repo, moved)
    receiver.wait(lambda p: p["event"] == {"action": "move", "scope": "repo"} and p["movedTo"]["name"] == moved)
    api.delete_repo(moved)
    receiver.wait(lambda p: p["event"] == {"action": "delete", "scope": "repo"} and p["repo"]["name"] == moved)
    api.delete_repo(secret_repo)
    receiver.wait(lambda p: p["event"]["action"] == "delete" and p["repo"]["name"] == secret_repo)
    time.sleep(0.5)
    assert not [p for p in receiver.payloads() if p["webhook"]["id"] == hook.id and p["repo"]["name"] == secret_repo]
    _, read_only = hub.daemon.user(scope="read")
    with pytest.raises(HfHubHTTPError) as exc:
        hub.api(read_only).create_webhook(url=receiver.url, watched=[{"type": "user", "name": owner}])
    assert exc.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as exc:
        hub.api().list_webhooks()
    assert exc.value.response.status_code == 401
