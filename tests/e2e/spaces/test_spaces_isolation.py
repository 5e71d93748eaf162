"""Apps that misbehave against the local runtime's limits: with ``run_as`` (the daemon runs
as root here) an app cannot read the data directory, a fork bomb stops at ``processes``,
and an allocation past ``memory`` fails; the daemon keeps serving."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Daemon, Git, new_daemon, unique

from .apps import card
from .test_spaces_local import app_url, get, wait_for

PYTHON = shutil.which("python3", path="/usr/bin:/bin") or "/usr/bin/python3"

PROBE_APP = '''
import json, os, time
from http.server import BaseHTTPRequestHandler, HTTPServer

DATA = {data!r}
found = {{}}
for name, probe in (("db", lambda: open(os.path.join(DATA, "gitd.db"), "rb").read(16)),
                    ("listing", lambda: os.listdir(DATA)),
                    ("memory", lambda: bytearray(2 << 30))):
    try:
        probe()
        found[name] = "allowed"
    except (OSError, MemoryError) as exc:
        found[name] = type(exc).__name__
children = []
try:
    for _ in range(5000):
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        children.append(pid)
except OSError as exc:
    found["fork"] = type(exc).__name__
found["forked"] = len(children)
for pid in children:  # the bomb stopped; make room to serve
    os.kill(pid, 9)
    os.waitpid(pid, 0)
body = json.dumps(found).encode()


class H(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
'''


def nobody_can_run_python() -> bool:
    if os.geteuid() != 0 or not os.access(PYTHON, os.X_OK):
        return False
    try:
        return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", PYTHON, "-c", "0"],
                              capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


pytestmark = pytest.mark.skipif(not nobody_can_run_python(),
                                reason="needs root and a system python3 the user nobody can run")


@pytest.fixture(scope="module")
def isolated_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("isolated")
    work = Path("/tmp") / unique("gitd-spaces-work")  # outside the private data directory
    work.mkdir(mode=0o755)
    work.chmod(0o755)
    settings = {"plugins.spaces.python": "daemon", "plugins.spaces.interpreter": PYTHON,
                "plugins.spaces.run_as": "nobody", "plugins.spaces.work_dir": str(work),
                "plugins.spaces.processes": 40, "plugins.spaces.memory": 1 << 30, "jobs.poll_interval": 0.1}
    d = new_daemon(root, settings=settings).start()
    try:
        yield d
    finally:
        d.stop()
        shutil.rmtree(work, ignore_errors=True)


def test_an_app_as_another_user_cannot_read_the_data_dir_fork_bomb_or_allocate_past_its_limits(isolated_daemon,
                                                                                                 tmp_path):
    d = isolated_daemon
    user, token = d.user()
    full = d.repo(user, unique("sp"), repo_type="space")
    git = Git(tmp_path / "home")
    work = git.init_work(tmp_path / "w", {"README.md": card("gradio"), "app.py": PROBE_APP.format(data=str(d.data))})
    git("push", "-q", d.repo_url(full, token=token, repo_type="space"), "main", cwd=work)
    try:
        _, body = wait_for(lambda: (r := get(app_url(d, full), token)) and r[0] == 200 and r, 90, "probe app up")
    except AssertionError:
        raise AssertionError((get(f"{d.url}/api/spaces/{full}/runtime", token),
                              get(f"{d.url}/api/spaces/{full}/logs/run", token))) from None
    found = json.loads(body)
    assert found["db"] == "PermissionError" and found["listing"] == "PermissionError"
    assert found["memory"] == "MemoryError"
    assert found["fork"] == "BlockingIOError" and found["forked"] < 40
    assert get(f"{d.url}/api/spaces/{full}/runtime", token)[0] == 200  # the daemon is unaffected
