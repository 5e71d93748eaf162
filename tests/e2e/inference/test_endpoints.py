"""Inference endpoints on the local runtime, end to end: a tiny model made on the spot and
pushed to a live daemon, an endpoint created on it through the API, queried with the real
``openai`` client (streaming and not) through the daemon's proxy; scale to zero and wake,
access rules, rate limits, csghub-cli's inference commands, and the faults."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Daemon, new_daemon, unique
from tests.tiny_model import make_tiny_model, parameter_count, upload_directory

openai = pytest.importorskip("openai")

SETTINGS = {
    "plugins.inference.sleep_time": 0,  # one test sets its own
    "plugins.inference.start_timeout": 120,
    "plugins.inference.threads": 1,
    "plugins.inference.rate_limit": 600,
    "plugins.inference.burst": 20,
    "jobs.poll_interval": 0.1,
}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("inference")
    d = new_daemon(root, settings=SETTINGS, env={"HF_HUB_DISABLE_XET": "1"}).start()
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture(scope="module")
def owner(daemon: Daemon) -> tuple[str, str]:
    return daemon.user()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def hf(daemon: Daemon, token: str):
    from huggingface_hub import HfApi

    return HfApi(endpoint=daemon.url, token=token)


@pytest.fixture(scope="module")
def model(daemon: Daemon, owner: tuple[str, str], model_dir: Path) -> tuple[str, str]:
    """A private tiny model pushed with huggingface_hub: (ns/name, commit)."""
    repo = f"{owner[0]}/{unique('tiny')}"
    commit = upload_directory(hf(daemon, owner[1]), repo, model_dir, private=True)
    return repo, commit


@pytest.fixture(scope="module", autouse=True)
def no_xet() -> Iterator[None]:
    """gitd speaks Git LFS, not Xet (huggingface_hub reads the switch at import: set it here too)."""
    from huggingface_hub import constants

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_DISABLE_XET", "1")
        mp.setattr(constants, "HF_HUB_DISABLE_XET", True)
        yield


def call(daemon: Daemon, method: str, path: str, token: str | None = None, body: object = None) -> tuple[int, object]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(daemon.url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            raw = resp.read()
            is_json = raw and resp.headers.get_content_type() == "application/json"
            return resp.status, json.loads(raw) if is_json else raw
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw


def wait_status(daemon: Daemon, endpoint_id: int, token: str, wanted: set[str], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status, info = call(daemon, "GET", f"/api/plugins/inference/endpoints/{endpoint_id}", token)
        assert status == 200, info
        if info["status"] in wanted:
            return info
        assert time.monotonic() < deadline, info
        time.sleep(0.1)


@pytest.fixture(scope="module")
def endpoint(daemon: Daemon, owner: tuple[str, str], model: tuple[str, str]) -> dict:
    status, info = call(daemon, "POST", "/api/plugins/inference/endpoints", owner[1],
                        {"model": model[0], "name": "tiny-chat"})
    assert status == 201, info
    assert info["commit"] == model[1] and info["revision"] == "main" and info["private"] is True
    return wait_status(daemon, info["id"], owner[1], {"running", "failed"})


def client(daemon: Daemon, endpoint: dict, token: str | None):
    return openai.OpenAI(base_url=f"{daemon.url}/api/plugins/inference/endpoints/{endpoint['id']}/v1",
                         api_key=token or "none", max_retries=0, timeout=60)


def test_openai_client_chat_and_completions(daemon, owner, model, endpoint):
    assert endpoint["status"] == "running", endpoint
    assert set(endpoint["timings"]) >= {"fetch_s", "load_s", "start_s"}
    c = client(daemon, endpoint, owner[1])
    assert [m.id for m in c.models.list()] == [model[0]]

    chat = c.chat.completions.create(model=model[0], messages=[{"role": "user", "content": "hello world"}],
                                     max_tokens=8, temperature=0)
    assert chat.choices[0].message.role == "assistant"
    assert chat.usage.completion_tokens == 8 and chat.choices[0].finish_reason == "length"
    assert chat.usage.prompt_tokens > 3 and chat.usage.total_tokens == chat.usage.prompt_tokens + 8
    text = chat.choices[0].message.content
    assert text

    # Streaming gives the same greedy text, piece by piece, then the usage.
    pieces, usage, reasons = [], None, []
    for chunk in c.chat.completions.create(model=model[0], messages=[{"role": "user", "content": "hello world"}],
                                           max_tokens=8, temperature=0, stream=True,
                                           stream_options={"include_usage": True}):
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            reasons.append(choice.finish_reason)
    assert "".join(pieces) == text
    assert reasons[-1] == "length" and usage.completion_tokens == 8

    # stop cuts the text before the stop string, and the reason says so.
    plain = c.completions.create(model=model[0], prompt="the model", max_tokens=12, temperature=0).choices[0].text
    word = plain.split()[-1]
    stopped = c.completions.create(model=model[0], prompt="the model", max_tokens=12, temperature=0, stop=[word])
    assert stopped.choices[0].text == plain[:plain.find(word)] and stopped.choices[0].finish_reason == "stop"

    # Sampling with temperature and top_p answers too; max_tokens bounds the completion.
    sampled = c.completions.create(model=model[0], prompt="the model", max_tokens=5, temperature=0.8, top_p=0.9)
    assert sampled.usage.completion_tokens <= 5

    streamed = list(c.completions.create(model=model[0], prompt="the model", max_tokens=4, temperature=0,
                                         stream=True))
    assert streamed[-1].choices[0].finish_reason == "length"


def test_access_rules_and_rate_limit(daemon, owner, model, endpoint):
    # Private by default: no token is a 401, another user's token a 404 (as for none).
    status, answer = call(daemon, "GET", f"/api/plugins/inference/endpoints/{endpoint['id']}/v1/models")
    assert status == 401 and "private" in answer["error"]
    _, other = daemon.user()
    with pytest.raises(openai.NotFoundError):
        client(daemon, endpoint, other).models.list()
    status, _ = call(daemon, "GET", f"/api/plugins/inference/endpoints/{endpoint['id']}", other)
    assert status == 404
    # The engine's own port answers its daemon only (the proxy's key), but for its health.
    _, out, _ = daemon.cli("endpoints", "status", str(endpoint["id"]))
    port = next(line.split(": ")[1] for line in out.splitlines() if line.startswith("port: "))
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=30)
    assert refused.value.code == 401
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=owner[1], max_retries=0).models.list()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=30) as ok:
        assert json.loads(ok.read())["status"] == "ok"
    # A wrong model name is the engine's 404, as OpenAI answers it.
    with pytest.raises(openai.NotFoundError):
        client(daemon, endpoint, owner[1]).completions.create(model="other/model", prompt="x", max_tokens=1)

    # A public endpoint with a tiny rate limit: after a burst of 20, 429 with Retry-After. It is
    # stopped at once (no engine needed: the limit is checked first, then the 503 of a stopped one).
    status, info = call(daemon, "POST", "/api/plugins/inference/endpoints", owner[1],
                        {"model": model[0], "name": "limited", "private": False, "rate_limit": 0.001})
    assert status == 201, info
    assert call(daemon, "POST", f"/api/plugins/inference/endpoints/{info['id']}/stop", owner[1])[0] == 200
    anon = client(daemon, info, other)  # public: anyone's token (or none) will do
    codes = []
    for _ in range(30):
        try:
            anon.models.list()
        except openai.InternalServerError as exc:
            codes.append(exc.status_code)
        except openai.RateLimitError as exc:
            codes.append(429)
            assert exc.response.headers["Retry-After"]
            break
    assert codes == [503] * 20 + [429]
    assert call(daemon, "DELETE", f"/api/plugins/inference/endpoints/{info['id']}", owner[1])[0] == 204


def test_faults_context_length_and_disconnect(daemon, owner, model, endpoint):
    c = client(daemon, endpoint, owner[1])
    with pytest.raises(openai.BadRequestError) as exc:
        c.completions.create(model=model[0], prompt="the model " * 200, max_tokens=4)
    assert "maximum context length is 256" in str(exc.value)
    assert exc.value.code == "context_length_exceeded"

    # A client that goes away mid-stream: the engine stops that generation and serves on.
    path = f"/api/plugins/inference/endpoints/{endpoint['id']}/v1/completions"
    body = json.dumps({"model": model[0], "prompt": "the model", "max_tokens": 200, "stream": True,
                       "temperature": 0}).encode()
    host, port = daemon.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {owner[1]}\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        got = b""
        while b"data: " not in got:
            got += s.recv(4096)
            assert got
    deadline = time.monotonic() + 30
    while b"the client went away" not in (log := call(daemon, "GET", path.replace("/v1/completions", "/logs"),
                                                     owner[1])[1]):
        assert time.monotonic() < deadline, log
        time.sleep(0.2)
    ok = c.completions.create(model=model[0], prompt="the model", max_tokens=2, temperature=0)
    assert ok.usage.completion_tokens == 2


def test_bad_models_are_refused(daemon, owner, model, model_dir, tmp_path):
    api = hf(daemon, owner[1])
    # not a model: a dataset's name
    dataset = f"{owner[0]}/{unique('ds')}"
    api.create_repo(dataset, repo_type="dataset")
    status, info = call(daemon, "POST", "/api/plugins/inference/endpoints", owner[1], {"model": dataset})
    assert status == 400 and "is a dataset repository, not a model" in info["error"]
    # a model repository without a config or weights
    empty = f"{owner[0]}/{unique('nocfg')}"
    api.create_repo(empty)
    api.upload_file(path_or_fileobj=b"# nothing\n", path_in_repo="README.md", repo_id=empty)
    status, info = call(daemon, "POST", "/api/plugins/inference/endpoints", owner[1], {"model": empty})
    assert status == 400 and "no config.json" in info["error"]
    # weights that do not load: failed, with the reason, and no restarts
    broken = f"{owner[0]}/{unique('broken')}"
    bad = tmp_path / "broken"
    bad.mkdir()
    for f in model_dir.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    data = (bad / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(data[: len(data) // 2])
    upload_directory(api, broken, bad)
    status, info = call(daemon, "POST", "/api/plugins/inference/endpoints", owner[1], {"model": broken})
    assert status == 201, info
    failed = wait_status(daemon, info["id"], owner[1], {"failed"})
    assert "does not load" in failed["reason"], failed
    # too large for the configured memory: refused before loading, with the estimate
    status, info = call(daemon, "POST", "/api/plugins/inference/endpoints", owner[1],
                        {"model": model[0], "name": "too-big", "resources": {"memory": 1000}})
    assert status == 201, info
    failed = wait_status(daemon, info["id"], owner[1], {"failed"})
    # the estimate: the parameter count the metadata plugin reports (the safetensors headers'), before any load
    assert f"has {parameter_count(model_dir):,} parameters" in failed["reason"], failed
    assert "refused before loading" in failed["reason"], failed
    # a revision that does not exist
    status, info = call(daemon, "POST", "/api/plugins/inference/endpoints", owner[1],
                        {"model": model[0], "revision": "nope"})
    assert status == 400 and "no revision" in info["error"]


def test_scale_to_zero_wake_and_delete(daemon, owner, model, endpoint):
    base = f"/api/plugins/inference/endpoints/{endpoint['id']}"
    status, info = call(daemon, "PATCH", base, owner[1], {"sleep_time": 1})
    assert status == 200 and info["sleep_time"] == 1
    wait_status(daemon, endpoint["id"], owner[1], {"sleeping"}, timeout=30)  # idle: scaled to zero
    _, out, _ = daemon.cli("endpoints", "list")  # the commands see it
    assert f"{endpoint['id']}\t{owner[0]}/tiny-chat\t{model[0]}@{model[1][:12]}\ttransformers\tsleeping" in out
    assert call(daemon, "PATCH", base, owner[1], {"sleep_time": 0})[1]["sleep_time"] == 0
    woke = client(daemon, endpoint, owner[1]).completions.create(model=model[0], prompt="the model", max_tokens=2,
                                                                 temperature=0)  # wakes it, and waits for it
    assert woke.usage.completion_tokens == 2
    assert call(daemon, "GET", base, owner[1])[1]["status"] == "running"
    assert call(daemon, "PATCH", base, owner[1], {"gpus": 2})[0] == 400
    # delete ends an endpoint (here a second one, stopped at once)
    status, other = call(daemon, "POST", "/api/plugins/inference/endpoints", owner[1],
                         {"model": model[0], "name": "short-lived"})
    assert status == 201, other
    assert call(daemon, "DELETE", f"/api/plugins/inference/endpoints/{other['id']}", owner[1])[0] == 204
    assert call(daemon, "GET", f"/api/plugins/inference/endpoints/{other['id']}", owner[1])[0] == 404
    assert f"\t{owner[0]}/short-lived\t" not in daemon.cli("endpoints", "list")[1]


def csghub_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).parent / "csghub-cli"), *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "CSGHUB_DISABLE_XNET": "true"})


def test_csghub_cli_inference_list_start_stop(daemon, owner, model, endpoint):
    listed = csghub_cli("inference", "list", "-u", owner[0], "-k", owner[1], "-e", daemon.url)
    assert listed.returncode == 0, listed.stderr
    row = [line.split() for line in listed.stdout.splitlines()[2:] if line.split()[0] == str(endpoint["id"])]
    assert row and row[0][1:] == ["tiny-chat", model[0], "Running"], listed.stdout
    stopped = csghub_cli("inference", "stop", model[0], str(endpoint["id"]), "-k", owner[1], "-e", daemon.url)
    assert "'status': 'Stopped'" in stopped.stdout, stopped.stdout + stopped.stderr
    with pytest.raises(openai.InternalServerError):  # stopped: 503 until started again (a request does not wake it)
        client(daemon, endpoint, owner[1]).models.list()
    started = csghub_cli("inference", "start", model[0], str(endpoint["id"]), "-k", owner[1], "-e", daemon.url)
    assert "'status': " in started.stdout and "Stopped" not in started.stdout, started.stdout + started.stderr
    wait_status(daemon, endpoint["id"], owner[1], {"running"})
    # another user's instance is a 404 to them (here the private model itself is)
    _, other = daemon.user()
    done = csghub_cli("inference", "stop", model[0], str(endpoint["id"]), "-k", other, "-e", daemon.url)
    assert "'code': 'RepoNotFound'" in done.stdout, done.stdout + done.stderr
    assert call(daemon, "GET", f"/api/plugins/inference/endpoints/{endpoint['id']}", owner[1])[1]["status"] == "running"
