"""Building the C hook program that git runs for every push."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from gitd.datainit import build_c_hook, install_hooks
from gitd.hooks.api import parse_body
from gitd.paths import DataDir
from gitd.plugins.events import RefUpdate

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")


def interpreter(program: Path) -> bool:
    """Whether the ELF program asks for a dynamic loader (a PT_INTERP program header)."""
    return b"INTERP" in subprocess.run(["readelf", "-lW", str(program)], capture_output=True, check=True).stdout


def static_linking_works(tmp_path: Path) -> bool:
    src = tmp_path / "t.c"
    src.write_text("int main(void) { return 0; }\n")
    return subprocess.run(["cc", "-static", "-o", str(tmp_path / "t"), str(src)], capture_output=True).returncode == 0


@pytest.mark.skipif(shutil.which("readelf") is None, reason="needs readelf")
def test_the_c_hook_is_linked_statically_where_the_c_library_allows(tmp_path: Path):
    data = DataDir(tmp_path / "data")
    assert install_hooks(data, "c") == "c"
    hook = data.hooks / "pre-receive"
    assert interpreter(hook) is not static_linking_works(tmp_path)
    proc = subprocess.run([str(hook)], capture_output=True, env={})
    assert proc.returncode == 1 and b"did not come through the gitd daemon" in proc.stderr


@pytest.mark.skipif(shutil.which("readelf") is None, reason="needs readelf")
def test_without_static_linking_the_c_hook_is_linked_dynamically(tmp_path: Path, monkeypatch):
    # A compiler that refuses -static, as on hosts without the static C library.
    cc = tmp_path / "cc-no-static"
    cc.write_text('#!/bin/sh\nfor a; do [ "$a" = -static ] && { echo "cannot find -lc" >&2; exit 1; }; done\n'
                  'exec cc "$@"\n')
    cc.chmod(0o755)
    monkeypatch.setenv("CC", str(cc))
    data = DataDir(tmp_path / "data")
    data.hooks.mkdir(parents=True)
    binary = build_c_hook(data)
    assert binary is not None and interpreter(binary)


def captured_hook_call(hook: Path, tmp_path: Path, env: dict[bytes, bytes], stdin: bytes) -> bytes:
    """Run ``hook`` against a Unix socket that records the request body and answers 200."""
    path = tmp_path / f"s{len(list(tmp_path.iterdir()))}.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")))
            while len(body) < length:
                body += conn.recv(65536)
            got.append(body)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        proc = subprocess.run([str(hook)], input=stdin, capture_output=True, timeout=60,
                              env={b"GITD_HOOK_SOCKET": os.fsencode(path), b"GITD_PUSH_TOKEN": b"tok-en_1", **env})
        thread.join(30)
    finally:
        server.close()
    assert proc.returncode == 0, proc.stderr
    return got[0]


def test_both_hook_programs_quote_alike_and_the_daemon_reads_back_every_value(tmp_path: Path):
    old, new = "0" * 40, "a" * 40
    forged = f"a\n\n{old} {new} refs/heads/forged\n".encode()
    options = [b"plain", forged, b"100% \t tab\r\x7f\x01", "caf\u00e9".encode(), b"\xff\xfe not utf-8", b""]
    quarantine = b"/d/objects/tmp_objdir-incoming-%x\ny"
    env = {b"GIT_PUSH_OPTION_COUNT": str(len(options)).encode(), b"GIT_QUARANTINE_PATH": quarantine,
           **{f"GIT_PUSH_OPTION_{i}".encode(): value for i, value in enumerate(options)}}
    stdin = f"{old} {new} refs/heads/main\n".encode()
    bodies = []
    for program in ("c", "python"):
        data = DataDir(tmp_path / program)
        assert install_hooks(data, program) == program
        bodies.append(captured_hook_call(data.hooks / "pre-receive", tmp_path, env, stdin))
    assert bodies[0] == bodies[1]
    got_env, got_options, updates = parse_body(bodies[0])
    assert [os.fsencode(o) for o in got_options] == options
    assert got_env == {"GIT_QUARANTINE_PATH": os.fsdecode(quarantine)}
    assert updates == [RefUpdate("refs/heads/main", old, new)]
