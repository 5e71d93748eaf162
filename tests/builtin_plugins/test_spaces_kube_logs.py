"""The spaces plugin's kubernetes runtime, the daemon's side, through the real ``kubernetes``
client against a stand-in API server (tests/kube_api.py): a push writes the Space resource,
the runtime API reads the operator's stage back, and the Hub's logs endpoints stream the
pods' container logs (build: the fetch and kaniko containers; run: the app container)."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from gitd_plugins.spaces import SpacesPlugin
from gitd_plugins.spaces.operator.render import LABEL, build_job_name

from tests.kube_api import KubeApi

NS = "gitd-spaces"
T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def card(sdk: str) -> str:
    return f"---\nsdk: {sdk}\n---\n# space\n"


def events(body: bytes) -> list[dict]:
    """The server-sent events' payloads, keep-alives left out."""
    out = []
    for block in body.decode().split("\n\n"):
        data = block.removeprefix("data: ").strip()
        if block.startswith("data: ") and data:
            out.append(json.loads(data))
    return out


@pytest.fixture
def kube(tmp_path):
    api = KubeApi().start()
    yield api
    api.stop()


@pytest.fixture
def kube_harness(gitd_harness, kube, tmp_path):
    def make(**settings):
        return gitd_harness(SpacesPlugin, name="spaces", settings={
            "runtime": "kubernetes", "public_url": "http://gitd.gitd:8080",
            "kubeconfig": str(kube.kubeconfig(tmp_path / "kubeconfig")), **settings})
    return make


def test_a_push_writes_the_space_and_the_runtime_api_reads_the_operators_stage(kube, kube_harness):
    h = kube_harness()
    repo = h.repo("alice/app", type="space", files={"README.md": card("gradio"), "app.py": "print(1)\n"})
    h.run_jobs()
    first = h.view(repo).head()
    space = kube.custom[("spaces", NS, "alice--app")]
    assert (space["kind"], space["spec"]["commit"], space["spec"]["sdk"]) == ("Space", first, "gradio")
    assert h.http("GET", "/api/spaces/alice/app/runtime").json()["stage"] == "BUILDING"
    kube.custom[("spaces", NS, "alice--app")]["status"] = {"stage": "RUNNING"}
    assert h.http("GET", "/api/spaces/alice/app/runtime").json()["stage"] == "RUNNING"
    h.commit(repo, {"app.py": "print(2)\n"})  # the resource exists: its spec is patched
    h.run_jobs()
    assert kube.custom[("spaces", NS, "alice--app")]["spec"]["commit"] == h.view(repo).head() != first


def test_logs_are_the_newest_app_pods_containers_and_the_run_log_follows_until_it_ends(kube, kube_harness):
    h = kube_harness()
    repo = h.repo("alice/app", type="space", files={"README.md": card("gradio"), "app.py": "print(1)\n"})
    h.run_jobs()
    head = h.view(repo).head()
    app_labels = {LABEL: "alice--app", "pod-template-hash": "5d8f"}
    kube.add_pod(NS, "alice--app-old", app_labels, T0, deleting=True)
    kube.write(NS, "alice--app-old", "app", "2026-12-06T09:00:00.5Z the old pod\n")
    kube.add_pod(NS, "alice--app-new", app_labels, T0 + timedelta(minutes=1))
    kube.add_pod(NS, "someone-else", {LABEL: "bob--app", "pod-template-hash": "1"}, T0 + timedelta(hours=1))
    kube.write(NS, "alice--app-new", "fetch", f"2026-12-06T10:01:00.123456789Z fetched {head}\n")
    kube.end(NS, "alice--app-new", "fetch")
    kube.write(NS, "alice--app-new", "app", *(f"2026-12-06T10:01:0{i}.2Z line {i}\n" for i in range(3)))

    build = events(h.http("GET", "/api/spaces/alice/app/logs/build", user="alice").body)
    assert build == [{"data": f"fetched {head}\n", "timestamp": "2026-12-06T10:01:00.123Z"}]

    def later() -> None:
        time.sleep(0.5)
        kube.write(NS, "alice--app-new", "app", "2026-12-06T10:02:00Z printed later, without a newline")
        kube.end(NS, "alice--app-new", "app")

    threading.Thread(target=later, daemon=True).start()
    run = events(h.http("GET", "/api/spaces/alice/app/logs/run", user="alice").body)
    assert [e["data"] for e in run] == ["line 0\n", "line 1\n", "line 2\n", "printed later, without a newline"]
    assert run[0]["timestamp"] == "2026-12-06T10:01:00.200Z" and run[-1]["timestamp"] == "2026-12-06T10:02:00.000Z"
    asked = kube.log_queries[-1]
    assert (asked["pod"], asked["container"], asked["follow"], asked["timestamps"], asked["tailLines"]) == (
        "alice--app-new", "app", "true", "true", "1000")


def test_a_docker_spaces_build_log_is_its_build_jobs_and_a_container_not_started_is_passed_over(kube, kube_harness):
    h = kube_harness(registry="registry.local:5000/spaces")
    repo = h.repo("alice/box", type="space", files={"README.md": card("docker"), "Dockerfile": "FROM scratch\n"})
    h.run_jobs()
    head = h.view(repo).head()
    job = build_job_name("alice--box", head)
    older = "alice--box-000000000000"
    kube.add_pod(NS, f"{older}-x1", {LABEL: "alice--box", "job-name": older}, T0 + timedelta(hours=1))
    kube.write(NS, f"{older}-x1", "fetch", "2026-12-06T09:00:00Z an older commit's build\n")
    kube.end(NS, f"{older}-x1", "fetch")
    kube.add_pod(NS, f"{job}-q7", {LABEL: "alice--box", "job-name": job}, T0, containers=("build",))
    kube.write(NS, f"{job}-q7", "fetch", "2026-12-06T10:00:00Z fetched\n")
    kube.end(NS, f"{job}-q7", "fetch")
    # kaniko's container has not started: the stream ends after the fetch's lines
    assert [e["data"] for e in events(h.http("GET", "/api/spaces/alice/box/logs/build", user="alice").body)] == [
        "fetched\n"]
    kube.write(NS, f"{job}-q7", "build", "2026-12-06T10:00:05Z INFO Pushing image\n")
    kube.end(NS, f"{job}-q7", "build")
    assert [e["data"] for e in events(h.http("GET", "/api/spaces/alice/box/logs/build", user="alice").body)] == [
        "fetched\n", "INFO Pushing image\n"]
    # no app pod yet: an empty run log
    assert events(h.http("GET", "/api/spaces/alice/box/logs/run", user="alice").body) == []


def test_a_followed_log_ends_after_log_follow_and_frees_its_reader(kube, kube_harness):
    h = kube_harness(log_follow="1s")
    repo = h.repo("alice/app", type="space", files={"README.md": card("static"), "index.html": "hi"})
    h.run_jobs()
    assert repo is not None
    kube.add_pod(NS, "alice--app-1", {LABEL: "alice--app", "pod-template-hash": "1"}, T0)
    kube.write(NS, "alice--app-1", "app", "2026-12-06T10:00:00Z serving\n")  # and never ends
    started = time.monotonic()
    run = events(h.http("GET", "/api/spaces/alice/app/logs/run", user="alice").body)
    assert [e["data"] for e in run] == ["serving\n"] and time.monotonic() - started < 10
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (kube.readers() or any(
            t.name == "space-log" for t in threading.enumerate())):
        time.sleep(0.05)
    assert kube.readers() == 0  # the daemon closed its connection to the API server
    assert not [t for t in threading.enumerate() if t.name == "space-log"]


def test_logs_need_write_access_and_an_unreachable_cluster_is_a_503(kube, kube_harness):
    h = kube_harness()
    h.user("bob")
    repo = h.repo("alice/app", type="space", private=True, files={"README.md": card("static"), "index.html": "x"})
    h.run_jobs()
    assert repo is not None
    assert h.http("GET", "/api/spaces/alice/app/logs/run", user="bob").status == 404
    kube.stop()
    answer = h.http("GET", "/api/spaces/alice/app/logs/run", user="alice")
    assert answer.status == 503 and "cannot be read from the cluster" in answer.body.decode()


def test_a_cluster_gone_mid_stream_ends_the_stream_and_the_server_log_says_why(kube, kube_harness, caplog):
    h = kube_harness()
    repo = h.repo("alice/app", type="space", files={"README.md": card("static"), "index.html": "x"})
    h.run_jobs()
    assert repo is not None
    kube.add_pod(NS, "alice--app-1", {LABEL: "alice--app", "pod-template-hash": "1"}, T0)
    kube.write(NS, "alice--app-1", "app", "2026-12-06T10:00:00Z serving\n")  # and never ends
    threading.Timer(0.5, kube.stop).start()
    started = time.monotonic()
    with caplog.at_level("WARNING"):
        answer = h.http("GET", "/api/spaces/alice/app/logs/run", user="alice")
    assert answer.status == 200 and [e["data"] for e in events(answer.body)] == ["serving\n"]
    assert time.monotonic() - started < 10
    assert any("a logs stream ended early" in r.getMessage() for r in caplog.records)
