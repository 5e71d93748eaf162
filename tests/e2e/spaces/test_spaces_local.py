"""Spaces on the local runtime, end to end: real apps pushed with real git to a real daemon,
reached through its reverse proxy (HTTP and WebSocket), driven with huggingface_hub and the
``gitd spaces`` commands."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from tests.support import Daemon, Git, new_daemon, unique

from .apps import GRADIO_APP, STREAMLIT_APP, card, plain_app

SETTINGS = {
    "plugins.spaces.python": "daemon",  # the test environment has gradio and streamlit: no downloads
    "plugins.spaces.backoff": 0.2,
    "plugins.spaces.max_restarts": 2,
    "plugins.spaces.max_log": 65536,
    "plugins.spaces.start_timeout": 120,
    "plugins.spaces.host_domain": "spaces.test",  # NAME--NS.spaces.test: sent as the Host header below
    "plugins.spaces.host_scheme": "http",
    "jobs.poll_interval": 0.1,
}


@pytest.fixture(scope="module")
def spaces_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = new_daemon(tmp_path_factory.mktemp("spaces"), settings=SETTINGS).start()
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture(scope="module")
def owner(spaces_daemon: Daemon) -> tuple[str, str]:
    return spaces_daemon.user()


@pytest.fixture(scope="module")
def git(tmp_path_factory: pytest.TempPathFactory) -> Git:
    return Git(tmp_path_factory.mktemp("home"))


@pytest.fixture
def push(spaces_daemon: Daemon, owner: tuple[str, str], git: Git, tmp_path: Path) -> Callable[..., str]:
    """Create a space, push ``files`` to it with git; returns ns/name."""

    def make(files: dict[str, str], *, private: bool = False, name: str | None = None) -> str:
        full = spaces_daemon.repo(owner[0], name or unique("sp"), repo_type="space", private=private)
        work = git.init_work(tmp_path / full.replace("/", "_"), files)
        git("push", "-q", spaces_daemon.repo_url(full, token=owner[1], repo_type="space"), "main", cwd=work)
        return full

    return make


def get(url: str, token: str | None = None, timeout: float = 30) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_for(predicate: Callable[[], object], timeout: float = 120, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def get_host(d: Daemon, full: str, path: str, token: str) -> int:
    """The status of ``path`` asked at the space's own host name."""
    ns, name = full.split("/")
    host = f"{name}--{ns}".lower().replace("_", "-").replace(".", "-") + ".spaces.test"
    return get_with(f"{d.url}/{path}", {"Host": host, "Authorization": f"Bearer {token}"})[0]


def get_with(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def runtime(d: Daemon, full: str, token: str) -> dict:
    status, body = get(f"{d.url}/api/spaces/{full}/runtime", token)
    assert status == 200, body
    return json.loads(body)


def app_url(d: Daemon, full: str, path: str = "") -> str:
    return f"{d.url}/spaces/{full}/app/{path}"


def test_static_space_is_served_and_private_spaces_are_404(spaces_daemon, owner, push):
    d, token = spaces_daemon, owner[1]
    full = push({"README.md": card("static"), "index.html": "<h1>static space</h1>", "css/site.css": "h1{}"})
    _status, body = wait_for(lambda: (r := get(app_url(d, full), token)) and r[0] == 200 and r, 30, "static 200")
    assert body == b"<h1>static space</h1>"
    assert get(app_url(d, full, "css/site.css"))[1] == b"h1{}"
    assert get(app_url(d, full, "missing.html"))[0] == 404
    assert runtime(d, full, token)["stage"] == "RUNNING"

    secret = push({"README.md": card("static"), "index.html": "secret"}, private=True)
    wait_for(lambda: get(app_url(d, secret), token)[0] == 200, 30, "private static 200 to its owner")
    _, other = d.user()
    assert get(app_url(d, secret), other)[0] == 404   # signed in, may not read: as if missing
    assert get(app_url(d, secret))[0] in (401, 404)   # anonymous
    assert get(f"{d.url}/api/spaces/{secret}/runtime", other)[0] == 404


def test_regression_proxy_keeps_the_callers_token_from_the_app(spaces_daemon, owner, push):
    """The app must never see the caller's gitd token (it could act as them)."""
    d, token = spaces_daemon, owner[1]
    full = push({"README.md": card("gradio"), "app.py": plain_app()})
    _status, body = wait_for(lambda: (r := get(app_url(d, full, "headers"), token)) and r[0] == 200 and r, 60,
                            "plain app up")
    headers = {k.lower(): v for k, v in json.loads(body).items()}
    assert "authorization" not in headers
    assert headers["x-forwarded-prefix"] == f"/spaces/{full}/app"


def test_gradio_space_over_http_and_websocket_with_the_runtime_api(spaces_daemon, owner, push):
    d, token = spaces_daemon, owner[1]
    full = push({"README.md": card("gradio", app_file="app.py"), "app.py": GRADIO_APP})
    status, body = wait_for(lambda: (r := get(app_url(d, full), token, 60)) and r[0] == 200 and r, 180,
                            "gradio through the proxy")
    assert b"gradio" in body.lower()
    api = HfApi(endpoint=d.url, token=token)
    rt = api.get_space_runtime(full)
    assert rt.stage == "RUNNING" and rt.hardware == "cpu-basic"
    assert api.space_info(full).runtime.stage == "RUNNING"
    # Gradio's own config route, through the proxy
    status, config = get(app_url(d, full, "config"), token)
    assert status == 200 and "components" in json.loads(config)

    async def echo() -> list[str]:
        async with aiohttp.ClientSession() as s, s.ws_connect(app_url(d, full, "ws").replace("http", "ws", 1),
                                                              headers={"Authorization": f"Bearer {token}"}) as ws:
            out = []
            for word in ("one", "two"):
                await ws.send_str(word)
                out.append((await ws.receive(timeout=30)).data)
            return out

    assert asyncio.run(echo()) == ["echo:one", "echo:two"]

    # the space's own host name: the same app, HTTP and WebSocket, the same access rules
    info = api.space_info(full)
    assert info.host == f"http://{info.subdomain}.spaces.test"
    host = {"Host": f"{info.subdomain}.spaces.test", "Authorization": f"Bearer {token}"}

    async def by_host() -> tuple[int, str, str]:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{d.url}/config", headers=host) as r:
                status, config = r.status, await r.text()
            async with s.ws_connect(f"{d.url.replace('http', 'ws', 1)}/ws", headers=host) as ws:
                await ws.send_str("three")
                return status, config, (await ws.receive(timeout=30)).data

    status, config, echoed = asyncio.run(by_host())
    assert status == 200 and "components" in json.loads(config) and echoed == "echo:three"


def test_streamlit_space_over_http_and_websocket(spaces_daemon, owner, push):
    d, token = spaces_daemon, owner[1]
    full = push({"README.md": card("streamlit", app_file="streamlit_app.py"), "streamlit_app.py": STREAMLIT_APP})
    wait_for(lambda: get(app_url(d, full, "_stcore/health"), token, 60) == (200, b"ok"), 180,
             "streamlit through the proxy")
    status, page = get(app_url(d, full), token)
    assert status == 200 and b"<title>Streamlit</title>" in page

    async def stream() -> int:
        async with aiohttp.ClientSession() as s, s.ws_connect(
                app_url(d, full, "_stcore/stream").replace("http", "ws", 1), protocols=("streamlit",),
                headers={"Authorization": f"Bearer {token}"}) as ws:
            assert ws.protocol == "streamlit"
            return 101

    assert asyncio.run(stream()) == 101


def test_a_crashed_app_restarts_and_one_that_cannot_start_reports_why(spaces_daemon, owner, push):
    d, token = spaces_daemon, owner[1]
    full = push({"README.md": card("gradio"), "app.py": plain_app()})
    _, body = wait_for(lambda: (r := get(app_url(d, full, "pid"), token)) and r[0] == 200 and r, 60, "app up")
    first = json.loads(body)["pid"]
    get(app_url(d, full, "crash"), token)
    _, body = wait_for(lambda: (r := get(app_url(d, full, "pid"), token)) and r[0] == 200 and r, 60, "restarted")
    assert json.loads(body)["pid"] != first
    assert runtime(d, full, token)["restarts"] >= 1

    broken = push({"README.md": card("gradio"), "app.py": plain_app("crash-on-start")})
    rt = wait_for(lambda: (r := runtime(d, broken, token))["stage"] == "RUNTIME_ERROR" and "gave up" in (
        r["errorMessage"] or "") and r, 60, "gave up")
    assert "exited with status 2" in rt["errorMessage"] and "missing MODEL_PATH" in rt["errorMessage"]
    status, body = get(app_url(d, broken), token)
    assert status == 503 and json.loads(body)["stage"] == "RUNTIME_ERROR"
    assert d.cli("spaces", "logs", broken)[1].count("cannot start: missing MODEL_PATH") == 3  # 1 + 2 restarts
    # the Hub's logs endpoints (server-sent events); the space gave up, so the streams end at once
    api = HfApi(endpoint=d.url, token=token)
    started = time.monotonic()
    assert "".join(api.fetch_space_logs(broken)).count("cannot start: missing MODEL_PATH") == 3
    assert f"built {rt['commit']}" in "".join(api.fetch_space_logs(broken, build=True, follow=True))
    assert time.monotonic() - started < 4  # not huggingface_hub's 5 s wait for a quiet stream
    assert d.cli("spaces", "logs", "-f", broken)[1].count("missing MODEL_PATH") == 3  # ends: the space gave up


def test_run_logs_follow_a_running_space_until_it_stops(spaces_daemon, owner, push):
    d, token = spaces_daemon, owner[1]
    full = push({"README.md": card("gradio"), "app.py": plain_app()}, private=True)
    wait_for(lambda: get(app_url(d, full, "pid"), token)[0] == 200, 60, "app up")
    _, other = d.user()
    assert get(f"{d.url}/api/spaces/{full}/logs/run", other)[0] == 404  # private: as if missing
    assert get_host(d, full, "pid", other) == 404 and get_host(d, full, "pid", token) == 200  # its host name too
    seen: list[str] = []
    follower = threading.Thread(target=lambda: seen.extend(
        HfApi(endpoint=d.url, token=token).fetch_space_logs(full, follow=True)), daemon=True)
    follower.start()
    wait_for(lambda: any("starting gradio app" in line for line in seen), 30, "the kept log replayed")
    get(app_url(d, full, "crash"), token)  # the supervisor logs the crash and the restart, while followed
    wait_for(lambda: any("exited with status 3" in line for line in seen), 30, "the crash, as it happened")
    wait_for(lambda: get(app_url(d, full, "pid"), token)[0] == 200, 60, "restarted")
    HfApi(endpoint=d.url, token=token).pause_space(full)
    follower.join(30)
    assert not follower.is_alive()  # the stream ended with the space
    assert sum("starting gradio app" in line for line in seen) == 2


def test_secrets_and_variables_reach_the_app_on_restart_and_secrets_never_come_back(spaces_daemon, owner, push):
    d, token = spaces_daemon, owner[1]
    full = push({"README.md": card("gradio"), "app.py": plain_app()})
    wait_for(lambda: get(app_url(d, full, "pid"), token)[0] == 200, 60, "app up")
    api = HfApi(endpoint=d.url, token=token)
    api.add_space_secret(full, "API_KEY", "s3cr3t-value", description="the service's key")
    api.add_space_secret(full, "GONE", "x")
    api.delete_space_secret(full, "GONE")
    assert api.add_space_variable(full, "MODEL_ID", "alice/tiny")["MODEL_ID"].value == "alice/tiny"
    secrets = api.get_space_secrets(full)
    assert list(secrets) == ["API_KEY"] and secrets["API_KEY"].description == "the service's key"
    assert secrets["API_KEY"].updated_at is not None
    assert "API_KEY" not in json.loads(get(app_url(d, full, "env"), token)[1])  # only on the next start
    api.restart_space(full)
    env = wait_for(lambda: (r := get(app_url(d, full, "env"), token))[0] == 200 and json.loads(r[1]), 60, "restart")
    assert env["API_KEY"] == "s3cr3t-value" and env["MODEL_ID"] == "alice/tiny"
    _, other = d.user()  # a reader who may not write sees the variables, not the secrets
    reader = HfApi(endpoint=d.url, token=other)
    assert reader.get_space_variables(full)["MODEL_ID"].value == "alice/tiny"
    with pytest.raises(HfHubHTTPError) as refused:
        reader.get_space_secrets(full)
    assert refused.value.response.status_code == 403
    assert api.delete_space_variable(full, "MODEL_ID") == {}
    for route in ("secrets", "variables", "runtime"):  # no answer carries a secret's value
        assert b"s3cr3t-value" not in get(f"{d.url}/api/spaces/{full}/{route}", token)[1]
    assert "s3cr3t-value" not in d.cli("spaces", "status", full)[1]
    assert api.pause_space(full).stage == "PAUSED"


@pytest.mark.filterwarnings("ignore:If your Space runs on the default")
def test_idle_space_sleeps_without_a_process_and_wakes_on_request(spaces_daemon, owner, push):
    d, token = spaces_daemon, owner[1]
    full = push({"README.md": card("gradio"), "app.py": plain_app()})
    wait_for(lambda: get(app_url(d, full, "pid"), token)[0] == 200, 60, "app up")
    HfApi(endpoint=d.url, token=token).set_space_sleep_time(full, 1)
    wait_for(lambda: runtime(d, full, token)["stage"] == "SLEEPING", 60, "asleep")
    _, status_out, _ = d.cli("spaces", "status", full)
    assert "stage: SLEEPING" in status_out
    started = time.monotonic()
    status, body = get(app_url(d, full, "pid"), token)
    assert status == 200 and json.loads(body)["pid"] > 0
    assert time.monotonic() - started < 30


def test_faults_docker_needs_kubernetes_and_logs_are_bounded(spaces_daemon, owner, push):
    d, token = spaces_daemon, owner[1]
    docker = push({"README.md": card("docker", app_port=8000), "Dockerfile": "FROM python:3.11\n"})
    rt = wait_for(lambda: (r := runtime(d, docker, token))["stage"] == "CONFIG_ERROR" and r, 30, "config error")
    assert "needs the kubernetes runtime" in rt["errorMessage"]
    flood = push({"README.md": card("gradio"), "app.py": plain_app("flood")})
    wait_for(lambda: get(app_url(d, flood, "pid"), token)[0] == 200, 60, "flooding app up")
    logs = sorted((d.data / "plugins" / "spaces" / "local" / "logs").glob(f"{d.repo_id(flood, 'space')}.run.log*"))
    assert logs and sum(p.stat().st_size for p in logs) <= 2 * SETTINGS["plugins.spaces.max_log"]
    _, listing, _ = d.cli("spaces", "list")
    assert f"{docker}\tCONFIG_ERROR" in listing and f"{flood}\tRUNNING" in listing


def test_daemon_stop_ends_the_apps_and_a_restarted_daemon_wakes_them_on_request(spaces_daemon, owner, push):
    """Runs last in this module: it restarts the module's daemon."""
    d, token = spaces_daemon, owner[1]
    full = push({"README.md": card("gradio"), "app.py": plain_app()})
    _, body = wait_for(lambda: (r := get(app_url(d, full, "pid"), token)) and r[0] == 200 and r, 60, "app up")
    pid = json.loads(body)["pid"]
    d.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    d.start()
    _, listing, _ = d.cli("spaces", "list")
    stages = dict(line.split("\t")[:2] for line in listing.splitlines())
    assert stages[full] == "SLEEPING"
    assert not [n for n, s in stages.items() if s in ("RUNNING", "APP_STARTING") and runtime(d, n, token)["sdk"]
                != "static"]  # no app process after a restart: every space sleeps until asked for
    status, body = get(app_url(d, full, "pid"), token)
    assert status == 200 and json.loads(body)["pid"] != pid
