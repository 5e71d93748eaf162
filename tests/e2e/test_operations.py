"""Operations (issue 2 §7): health and metrics, graceful SIGTERM, the systemd unit, env config."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.e2e.rawhttp import basic, metric, request, upload_pack_v0_request
from tests.support import settings_env

ROOT = Path(__file__).resolve().parents[2]


def test_healthz(daemon):
    reply = request(daemon.url, "GET", "/healthz")
    assert reply.status == 200 and json.loads(reply.body) == {"status": "ok"}


def test_metrics_move_after_a_clone(daemon, git, tmp_path):
    user, token = daemon.user()
    repo = daemon.repo(user)
    payload = os.urandom(300_000)
    work = git.init_work(tmp_path / "w", {"blob.bin": payload})
    git("push", daemon.repo_url(repo, token=token), "main", cwd=work)

    def scrape() -> str:
        reply = request(daemon.url, "GET", "/metrics")
        assert reply.status == 200 and reply.headers["content-type"].startswith("text/plain")
        return reply.body.decode()

    before = scrape()
    git("clone", "-q", daemon.repo_url(repo), str(tmp_path / "c"))
    after = scrape()
    labels = {"service": "upload-pack", "transport": "http"}
    assert metric(after, "gitd_git_service_duration_seconds_count", **labels) \
        >= metric(before, "gitd_git_service_duration_seconds_count", **labels) + 2  # advertisement + fetch
    sent = metric(after, "gitd_git_bytes_sent_total", **labels) - metric(before, "gitd_git_bytes_sent_total", **labels)
    assert sent >= len(payload)
    for route in ("git-info-refs", "git-upload-pack"):
        assert metric(after, "gitd_http_requests_total", method="GET" if route == "git-info-refs" else "POST",
                      route=route, status="200") > metric(before, "gitd_http_requests_total",
                                                          method="GET" if route == "git-info-refs" else "POST",
                                                          route=route, status="200")
    assert metric(after, "gitd_http_request_duration_seconds_count", route="git-upload-pack") \
        > metric(before, "gitd_http_request_duration_seconds_count", route="git-upload-pack")
    assert "# TYPE gitd_git_service_duration_seconds histogram" in after


def test_requests_no_route_takes_get_404_or_405_and_are_counted(daemon):
    def unmatched(text: str, method: str, status: str) -> float:
        return metric(text, "gitd_http_requests_total", method=method, route="unmatched", status=status)

    before = request(daemon.url, "GET", "/metrics").body.decode()
    missing = request(daemon.url, "GET", "/no/such/route/at/all")
    assert missing.status == 404 and missing.headers["content-type"].startswith("text/plain")
    wrong = request(daemon.url, "DELETE", "/alice/model/info/refs")  # a route's path, not its method
    assert wrong.status == 405 and sorted(m.strip() for m in wrong.headers["allow"].split(",")) == ["GET", "HEAD"]
    after = request(daemon.url, "GET", "/metrics").body.decode()
    assert unmatched(after, "GET", "404") == unmatched(before, "GET", "404") + 1
    assert unmatched(after, "DELETE", "405") == unmatched(before, "DELETE", "405") + 1


def test_sigterm_lets_an_inflight_clone_finish_then_exits_cleanly(make_daemon, git, tmp_path):
    d = make_daemon()
    d.cli("user", "add", "ops")
    _, token, _ = d.cli("token", "create", "ops")
    token = token.strip()
    d.cli("repo", "create", "ops/big", "--empty")
    work = tmp_path / "w"
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    for i in range(3):  # 12 MiB of incompressible data: more than the socket buffers hold
        (work / f"part{i}.bin").write_bytes(os.urandom(4 * 1024 * 1024))
    git("-c", "core.compression=0", "add", ".", cwd=work)
    git("commit", "-qm", "big", cwd=work)
    git("-c", "pack.compression=0", "-c", "pack.window=0", "push", "-q", d.repo_url("ops/big", token=token), "main",
        cwd=work)
    head = git.out("rev-parse", "HEAD", cwd=work)

    # Start a fetch and read only its first bytes, so it is in flight.
    parts = urlsplit(d.url)
    body = upload_pack_v0_request([head])
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # keep the kernel from buffering it all
    sock.settimeout(60)
    sock.connect((parts.hostname, parts.port))
    sock.sendall((f"POST /ops/big.git/git-upload-pack HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                  f"Content-Type: application/x-git-upload-pack-request\r\nContent-Length: {len(body)}\r\n\r\n")
                 .encode() + body)
    received = bytearray(sock.recv(65536))
    assert received.startswith(b"HTTP/1.1 200")

    assert d.proc is not None
    d.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert d.proc.poll() is None, "the daemon must wait for the clone in flight"
    assert not (d.data / "run" / "serve.json").exists()
    with pytest.raises(OSError):  # no new connections once shutting down
        socket.create_connection((parts.hostname, parts.port), timeout=2).close()

    while chunk := sock.recv(1 << 20):
        received += chunk
    sock.close()
    assert d.proc.wait(30) == 0
    assert not (d.data / "run" / "serve.json").exists()
    assert not (d.data / "run" / "hooks.sock").exists()
    assert "stopped" in d.log()

    # The answer is whole: a valid pack that git can index, holding every object.
    head_end = received.index(b"\r\n\r\n") + 4
    pack = _pack_from_sideband(_dechunk(bytes(received[head_end:])))
    (tmp_path / "got.pack").write_bytes(pack)
    bare = tmp_path / "check.git"
    git("init", "-q", "--bare", str(bare))
    git("--git-dir", str(bare), "index-pack", "--stdin", "--fix-thin", input=pack)
    git("--git-dir", str(bare), "update-ref", "refs/heads/main", head)
    git("--git-dir", str(bare), "fsck", "--full", "--strict", "--no-dangling")


def test_sigterm_during_a_real_clone_finishes_or_fails_cleanly(make_daemon, git, tmp_path):
    d = make_daemon()
    d.cli("user", "add", "ops")
    _, token, _ = d.cli("token", "create", "ops")
    d.cli("repo", "create", "ops/r", "--empty")
    work = git.init_work(tmp_path / "w", {"a.bin": os.urandom(4 * 1024 * 1024)})
    git("push", "-q", d.repo_url("ops/r", token=token.strip()), "main", cwd=work)
    clone = tmp_path / "c"
    proc = subprocess.Popen(["git", "clone", "-q", d.repo_url("ops/r"), str(clone)], env=git.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.1)
    assert d.proc is not None
    d.proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert d.proc.wait(30) == 0
    if proc.returncode == 0:
        git("fsck", "--full", "--strict", cwd=clone)
        assert git.out("rev-parse", "HEAD", cwd=clone) == git.out("rev-parse", "HEAD", cwd=work)
    else:  # refused before it started: git says why and leaves nothing half-made behind
        assert err and not clone.exists()


def _dechunk(data: bytes) -> bytes:
    out, i = bytearray(), 0
    while True:
        end = data.index(b"\r\n", i)
        size = int(data[i:end].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += data[end + 2:end + 2 + size]
        i = end + 2 + size + 2


def _pack_from_sideband(data: bytes) -> bytes:
    pack, i = bytearray(), 0
    while i < len(data):
        size = int(data[i:i + 4], 16)
        if size == 0:
            i += 4
            continue
        payload = data[i + 4:i + size]
        if payload[:1] == b"\x01":
            pack += payload[1:]
        i += size
    assert pack.startswith(b"PACK")
    return bytes(pack)


# -- the systemd unit ---------------------------------------------------------------------------
UNIT = ROOT / "systemd" / "gitd.service"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def test_systemd_unit_has_the_required_hardening():
    service = _unit()["Service"]
    assert service["User"] and service["User"] != "root"
    assert service["ProtectSystem"] == "strict"
    assert service["NoNewPrivileges"] in ("yes", "true")
    assert service["PrivateTmp"] in ("yes", "true")
    assert service["Restart"] == "on-failure"
    data_dir = service["Environment"].split("GITD_DATA=", 1)[1].split()[0]
    assert service["ReadWritePaths"].split() == [data_dir]
    assert service["ExecStart"].split()[-1] == "serve"  # reads GITD_DATA
    assert service["ExecStartPre"].split()[-1] == data_dir
    assert service.get("KillSignal", "SIGTERM") == "SIGTERM"
    assert "WantedBy" in _unit()["Install"]


def test_systemd_unit_passes_systemd_analyze_verify_where_available(tmp_path):
    """systemd-analyze comes with systemd, which containers often lack; where it is missing
    the unit is still checked by the parser above and by this parse of every line."""
    for line in UNIT.read_text().splitlines():
        assert not line.strip() or line.startswith(("#", "[")) or "=" in line, line
    tool = shutil.which("systemd-analyze")
    if tool is None:
        return
    # The unit names the installed console script (/opt/gitd/...): point it at this one, and
    # verify everything else as shipped.
    gitd = Path(sys.executable).with_name("gitd")
    text = UNIT.read_text().replace("/opt/gitd/.venv/bin/gitd", str(gitd))
    unit = tmp_path / "gitd.service"
    unit.write_text(text)
    proc = subprocess.run([tool, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    assert proc.returncode == 0 and not problems, problems


# -- configuration from the environment --------------------------------------------------------
def test_serve_takes_its_address_and_settings_from_the_environment(tmp_path, git, make_daemon):
    d = make_daemon(start=False)
    d.cli("user", "add", "envu")
    _, token, _ = d.cli("token", "create", "envu")
    d.cli("repo", "create", "envu/pub")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GITD_")}, "GITD_DATA": str(d.data),
           **settings_env({"server.http": "127.0.0.1:0", "server.ssh": "127.0.0.1:0", "auth.anonymous_read": False,
                           "git.max_processes": 3})}
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "gitd.cli", "serve"], env=env, stdout=log, stderr=log,
                            start_new_session=True)
    try:
        info = d.data / "run" / "serve.json"
        deadline = time.monotonic() + 30
        while not info.exists() and time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            time.sleep(0.05)
        url = json.loads(info.read_text())["http"]
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":8080")
        target = "/envu/pub.git/info/refs?service=git-upload-pack"
        assert request(url, "GET", target).status == 401  # anonymous_read = false, from the env
        assert request(url, "GET", target, headers=basic(token.strip())).status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        log.close()
