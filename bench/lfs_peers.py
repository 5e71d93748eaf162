"""Peers and clients for bench/lfs.py: the LFS batch API driven with curl, gitd,
giftless (under uWSGI), nginx serving the same files (the static-HTTP ceiling), and
per-server CPU accounting."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchlib import wait_for_port  # noqa: E402

from tests.lfs_support import http, write_settings  # noqa: E402
from tests.support import Daemon, new_daemon  # noqa: E402

LFS_JSON = "application/vnd.git-lfs+json"
PARALLEL = 8
BATCH = 100
Objects = list[tuple[Path, str, int]]


def group_cpu(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of a process group."""
    ticks = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


# -- an LFS server spoken to through its batch API, bytes moved by curl -------------------------
def curl(config: list[str]) -> None:
    """Run one curl with a config of transfers separated by ``next``, PARALLEL at a time."""
    with tempfile.NamedTemporaryFile("w", suffix=".curl", delete=False) as f:
        f.write("\nnext\n".join(config))
    try:
        subprocess.run(["curl", "--no-progress-meter", "--parallel", "--parallel-max", str(PARALLEL), "-K", f.name],
                       check=True, stdout=subprocess.DEVNULL)
    finally:
        os.unlink(f.name)


def _transfer(url: str, headers: dict[str, str], *, upload: Path | None = None, output: Path | None = None,
              data: str | None = None) -> str:
    lines = [f'url = "{url}"', "fail", 'header = "Expect:"']
    lines += [f'header = "{k}: {v}"' for k, v in headers.items()]
    if upload is not None:
        lines.append(f'upload-file = "{upload}"')
    if output is not None:
        lines.append(f'output = "{output}"')
    if data is not None:
        lines += ['request = "POST"', f"data = {json.dumps(data)}"]
    return "\n".join(lines)


class LfsServer:
    def __init__(self, endpoint: str, headers: dict[str, str] | None = None):
        self.endpoint = endpoint  # .../info/lfs
        self.headers = headers or {}

    def batch(self, operation: str, objects: list[tuple[Path, str, int]]) -> list[dict]:
        answered = []
        for i in range(0, len(objects), BATCH):
            # git-lfs sends the ref it pushes; giftless 0.6.2 refuses the spec's "ref": null with 422
            body = {"operation": operation, "transfers": ["basic"], "ref": {"name": "refs/heads/main"},
                    "hash_algo": "sha256",
                    "objects": [{"oid": oid, "size": size} for _, oid, size in objects[i:i + BATCH]]}
            reply = http("POST", f"{self.endpoint}/objects/batch", json.dumps(body).encode(),
                         {"Accept": LFS_JSON, "Content-Type": LFS_JSON, **self.headers})
            if reply.status != 200:
                raise RuntimeError(f"batch {operation} failed: {reply.status} {reply.body[:300]!r}")
            answered += reply.json()["objects"]
        return answered

    def upload(self, objects: list[tuple[Path, str, int]]) -> None:
        answered = self.batch("upload", objects)
        puts, verifies = [], []
        for (path, oid, size), obj in zip(objects, answered, strict=True):
            actions = obj.get("actions") or {}
            if "upload" not in actions:
                raise RuntimeError(f"{oid} is already stored: the benchmark must start from empty storage")
            up = actions["upload"]
            puts.append(_transfer(up["href"], up.get("header", {}), upload=path))
            if "verify" in actions:
                v = actions["verify"]
                verifies.append(_transfer(v["href"], {"Content-Type": LFS_JSON, **v.get("header", {})},
                                          data=json.dumps({"oid": oid, "size": size})))
        curl(puts)
        if verifies:
            curl(verifies)

    def download(self, objects: list[tuple[Path, str, int]], into: Path) -> None:
        answered = self.batch("download", objects)
        gets = []
        for (path, _, _), obj in zip(objects, answered, strict=True):
            action = obj["actions"]["download"]
            gets.append(_transfer(action["href"], action.get("header", {}), output=into / path.name))
        curl(gets)


def via_daemon(server: LfsServer, token: str) -> LfsServer:
    """Downloads streamed by the daemon even when it would presign: GET the object URL."""

    class Streamed(LfsServer):
        def download(self, objects: list[tuple[Path, str, int]], into: Path) -> None:
            auth = {"Authorization": f"Bearer {token}"}
            curl([_transfer(f"{self.endpoint}/objects/{oid}", auth, output=into / path.name)
                  for path, oid, _ in objects])

    return Streamed(server.endpoint, server.headers)


# -- peers --------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def giftless(work: Path) -> Iterator[tuple[LfsServer, Path, str, Callable[[], float]]]:
    storage = work / "giftless-storage"
    shutil.rmtree(storage, ignore_errors=True)
    storage.mkdir(parents=True)
    config = work / "giftless.yaml"
    config.write_text(
        "AUTH_PROVIDERS:\n  - giftless.auth.allow_anon:read_write\n"
        "TRANSFER_ADAPTERS:\n  basic:\n    factory: giftless.transfer.basic_streaming:factory\n"
        f"    options:\n      storage_class: giftless.storage.local_storage:LocalStorage\n"
        f"      storage_options:\n        path: {storage}\n"
    )
    port = free_port()
    env = {**os.environ, "GIFTLESS_CONFIG_FILE": str(config), "PYTHONWARNINGS": "ignore"}
    uwsgi = Path(sys.executable).parent / "uwsgi"
    if uwsgi.exists():
        # giftless's documented command line, plus HTTP keep-alive: without it uWSGI's router
        # closes every connection after one response and clients reusing it (curl, git-lfs) fail.
        server = "uWSGI -M -T --threads 2 -p 2 --http-keepalive (giftless's documented setup)"
        cmd = [str(uwsgi), "-M", "-T", "--threads", "2", "-p", "2", "--manage-script-name", "--module",
               "giftless.wsgi_entrypoint", "--callable", "app", "--http", f"127.0.0.1:{port}",
               "--http-keepalive", "--die-on-term", "--disable-logging"]
    else:
        server = "gunicorn -w 2 --threads 2 (uWSGI is not installed)"
        cmd = [sys.executable, "-m", "gunicorn", "-w", "2", "--threads", "2", "-b", f"127.0.0.1:{port}",
               "giftless.wsgi_entrypoint:app"]
    log = open(work / "giftless.log", "wb")  # noqa: SIM115 - owned by the process
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, cwd=work, start_new_session=True)
    try:
        wait_for_port(port, proc, work / "giftless.log")
        yield (LfsServer(f"http://127.0.0.1:{port}/bench/repo.git/info/lfs"), storage, server,
               lambda: group_cpu(proc.pid))
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def start_gitd(work: Path, name: str, settings: dict[str, object]) -> tuple[Daemon, LfsServer, str]:
    root = work / name
    shutil.rmtree(root, ignore_errors=True)
    d = new_daemon(root)
    write_settings(d.data, {"server.log_level": "warning", **settings})
    d.start()
    user, token = d.user("bench")
    d.repo(user, "repo")
    return d, LfsServer(f"{d.url}/bench/repo.git/info/lfs", {"Authorization": f"Bearer {token}"}), token


def peak_rss(d: Daemon) -> int:
    assert d.proc is not None
    for line in Path(f"/proc/{d.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def gitd_empty(d: Daemon) -> Callable[[], None]:
    """Make gitd forget every object, so the next upload stores it again."""

    def reset() -> None:
        d.cli("repo", "delete", "bench/repo")
        d.cli("lfs", "gc", "--grace", "0")
        d.cli("repo", "create", "bench/repo", "--empty")

    return reset




@contextlib.contextmanager
def nginx(work: Path, root: Path) -> Iterator[tuple[str, Callable[[], float]]]:
    """nginx serving ``root`` as static files with sendfile: the ceiling for HTTP downloads."""
    port = free_port()
    conf = work / "nginx.conf"
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf.write_text(
        f"{user}worker_processes 2;\npid {work}/nginx.pid;\nerror_log {work}/nginx-error.log;\n"
        "events { worker_connections 256; }\n"
        "http { access_log off; sendfile on; tcp_nopush on; keepalive_requests 100000;\n"
        f"  server {{ listen 127.0.0.1:{port}; root {root}; }} }}\n"
    )
    proc = subprocess.Popen(["nginx", "-p", str(work), "-c", str(conf), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_port(port, proc, work / "nginx-error.log")
        yield f"http://127.0.0.1:{port}", lambda: group_cpu(proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGQUIT)
        proc.wait(30)


def static_download(base: str, objects: Objects, into: Path) -> None:
    curl([_transfer(f"{base}/{oid[:2]}/{oid[2:4]}/{oid}", {}, output=into / path.name) for path, oid, _ in objects])
