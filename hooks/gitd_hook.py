#!/usr/bin/env python3
"""gitd's pre-receive and post-receive hook: a thin client of the daemon.

git runs this program (installed as DATA/hooks/pre-receive and post-receive, found
through core.hooksPath) while it receives a push. It reads the ref lines from
stdin and sends them, with the quarantine environment and the push options, to
the daemon's internal hook API on its Unix socket, authenticated by the token the
daemon issued for this push alone. It prints the message it gets back (the
pusher sees it as "remote:" lines) and exits non-zero when the push is refused.
All policy and every plugin run in the daemon, never here.

Standard library only, and no site import, so it starts in milliseconds.
"""

import json
import os
import socket
import sys

QUARANTINE_ENV = ("GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_QUARANTINE_PATH")


def read_updates(stream):
    updates = []
    for raw in stream:
        line = raw.decode("utf-8", "surrogateescape").rstrip("\n")
        if not line:
            continue
        old, new, ref = line.split(" ", 2)
        updates.append([ref, old, new])
    return updates


def push_options(environ):
    try:
        count = int(environ.get("GIT_PUSH_OPTION_COUNT", "0"))
    except ValueError:
        count = 0
    return [environ.get(f"GIT_PUSH_OPTION_{i}", "") for i in range(count)]


def call_daemon(socket_path, path, token, body):
    """POST JSON over the Unix socket with a minimal HTTP/1.1 client; returns (status, dict)."""
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: gitd\r\nContent-Type: application/json\r\n"
        f"X-Gitd-Push-Token: {token}\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(socket_path)
        sock.sendall(head + data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    response = b"".join(chunks)
    header, _, payload = response.partition(b"\r\n\r\n")
    status = int(header.split(b" ", 2)[1])
    return status, json.loads(payload or b"{}")


def main(argv, environ, stdin, stderr):
    hook = os.path.basename(argv[0])
    socket_path = environ.get("GITD_HOOK_SOCKET")
    token = environ.get("GITD_PUSH_TOKEN")
    if not socket_path or not token:
        stderr.write(
            "gitd: refusing this push: it did not come through the gitd daemon.\n"
            "gitd: push over HTTP or SSH to the server instead of writing to its data directory.\n"
        )
        return 1
    body = {
        "updates": read_updates(stdin),
        "push_options": push_options(environ),
        "env": {key: environ[key] for key in QUARANTINE_ENV if key in environ},
    }
    try:
        status, reply = call_daemon(socket_path, f"/hook/{hook}", token, body)
    except (OSError, ValueError, IndexError) as exc:
        stderr.write(f"gitd: cannot reach the gitd daemon for the {hook} hook ({exc}); push refused.\n")
        return 1
    message = reply.get("message") or ""
    if message:
        stderr.write(message if message.endswith("\n") else message + "\n")
    return 0 if status == 200 and reply.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv, os.environ, sys.stdin.buffer, sys.stderr))
