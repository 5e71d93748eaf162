"""gitd.Supervised and gitd.Supervisor (plugin API 1.3), the machinery the spaces plugin's apps
and the inference plugin's engines run on: real child processes on loopback ports."""

from __future__ import annotations

import sys
import time
import urllib.request

import gitd

SERVE = "import http.server, sys; http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), " \
        "http.server.SimpleHTTPRequestHandler).serve_forever()"


class Child(gitd.Supervised):
    what = "server"

    def __init__(self, code: str, tmp_path, supervisor=None, **kwargs):
        super().__init__("k", gitd.BoundedLog(tmp_path / "child.log", 65536),
                         start_timeout=kwargs.pop("start_timeout", 20), max_restarts=kwargs.pop("max_restarts", 2),
                         backoff=0.05, supervisor=supervisor, **kwargs)
        self.code = code
        self.events: list[str] = []

    def argv(self, port: int) -> list[str]:
        return [sys.executable, "-c", self.code, str(port)]

    def cwd(self) -> str:
        return str(self.output.path.parent)

    def starting(self, proc, port):
        self.events.append("starting")

    def became_ready(self, port):
        self.events.append("ready")

    def crashed(self, detail, crashes):
        self.events.append(f"crashed {crashes}")

    def gave_up(self, detail, crashes):
        self.events.append(f"gave up: {detail}")


def wait(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_a_server_gets_ready_answers_and_stops(tmp_path):
    child = Child(SERVE, tmp_path)
    child.start()
    assert child.ready.wait(20) and child.port is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{child.port}/child.log", timeout=10) as r:
        assert b"[gitd] starting the server" in r.read()
    child.stop()
    assert child.proc.poll() is not None and child.events == ["starting", "ready"]


def test_a_crashing_process_is_restarted_with_backoff_then_given_up(tmp_path):
    child = Child("import sys; print('boom'); sys.exit(4)", tmp_path, max_restarts=2)
    child.start()
    wait(lambda: not child.alive())
    assert [e for e in child.events if not e.startswith("gave")] == [
        "starting", "crashed 1", "starting", "crashed 2", "starting"]
    assert child.events[-1].startswith("gave up: the server exited with status 4; last output: boom")
    assert "(gave up after 2 restarts)" in child.events[-1]


def test_the_supervisor_sleeps_idle_processes_but_not_busy_ones(tmp_path):
    slept = []
    sup = gitd.Supervisor("test", idle_time=lambda key: 0.3, on_idle=lambda key: slept.append(key))
    child = sup.start("k", lambda: Child(SERVE, tmp_path, supervisor=sup))
    assert child.ready.wait(20) and sup.port("k") == child.port and sup.running() == ["k"]
    with sup.serving("k"):
        time.sleep(1.5)
        assert slept == []  # a request in progress keeps it awake
    wait(lambda: slept == ["k"], timeout=10)
    assert sup.pop("k") is child
    child.stop()
    sup.close()
    assert sup.get("k") is None and sup.port("k") is None
