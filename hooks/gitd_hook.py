#!/usr/bin/env python3
"""gitd's pre-receive and post-receive hook: a thin client of the daemon.

git runs this program (installed as DATA/hooks/pre-receive and post-receive, found
through core.hooksPath) while it receives a push: as pre-receive once the pushed
objects sit in git's quarantine and before any ref moves, as post-receive after the
refs moved. Either way it sends git's ref lines, with the quarantine environment and
the push options, to the daemon's internal hook API on its Unix socket (see
gitd/hooks/api.py for the format), authenticated by the token the daemon issued for
this push alone. It prints the message it gets back (the pusher sees it as "remote:"
lines) and exits non-zero unless the daemon said yes: a pre-receive refusal fails the
whole push, and no ref moves. All policy and every plugin run in the daemon.

A push made without the daemon's environment (by hand, into the data directory) is
refused here. gitd_hook.c is the same program in C, installed instead of this one
where a C compiler is available ([hooks] program), because it starts faster.

It runs on every push, so it starts as fast as Python can: with -I -S, and importing
only modules built into the interpreter (sys, posix) and _socket: no os, no socket,
no json, which together would double its start-up time.
"""

import sys
from _socket import AF_UNIX, SOCK_STREAM
from _socket import socket as unix_socket
from posix import environ as _environ

ENV = {k.decode("utf-8", "surrogateescape"): v.decode("utf-8", "surrogateescape") for k, v in _environ.items()}

QUARANTINE_ENV = ("GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_QUARANTINE_PATH")
NOT_THROUGH_DAEMON = (
    "gitd: refusing this push: it did not come through the gitd daemon.\n"
    "gitd: push over HTTP or SSH to the server instead of writing to its data directory.\n"
)


def quote(value):
    """``value`` with "%", the ASCII control characters and DEL as %XX (upper-case hex), so
    no value can end its line or start another: a push option may hold newlines."""
    if "%" not in value and value.isprintable():
        return value
    return "".join(f"%{ord(c):02X}" if c < " " or c == "%" or c == "\x7f" else c for c in value)


def request_body(environ, updates):
    """The header lines (quarantine env, push options; values quoted), a blank line, then
    git's ref lines."""
    lines = []
    for key in QUARANTINE_ENV:
        value = environ.get(key)
        if value:
            lines.append(f"env {key}={quote(value)}\n")
    try:
        count = int(environ.get("GIT_PUSH_OPTION_COUNT", "0"))
    except ValueError:
        count = 0
    for i in range(min(count, 10000)):
        lines.append(f"option {quote(environ.get(f'GIT_PUSH_OPTION_{i}', ''))}\n")
    return "".join(lines).encode("utf-8", "surrogateescape") + b"\n" + updates


def call_daemon(socket_path, hook, token, body):
    """POST over the Unix socket with a minimal HTTP/1.1 client; returns (status, text)."""
    head = (
        f"POST /hook/{hook} HTTP/1.1\r\nHost: gitd\r\nContent-Type: text/plain\r\nX-Gitd-Push-Token: {token}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    sock = unix_socket(AF_UNIX, SOCK_STREAM)
    try:
        sock.connect(socket_path)
        sock.sendall(head + body)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        sock.close()
    header, _, payload = b"".join(chunks).partition(b"\r\n\r\n")
    status_line = header.split(b"\r\n", 1)[0].split(b" ")
    if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/") or not status_line[1].isdigit():
        raise ValueError("no HTTP answer")
    return int(status_line[1]), payload.decode("utf-8", "replace")


def main(argv, environ, stdin, stderr):
    hook = argv[0].rsplit("/", 1)[-1]
    socket_path = environ.get("GITD_HOOK_SOCKET")
    token = environ.get("GITD_PUSH_TOKEN")
    if hook not in ("pre-receive", "post-receive"):
        stderr.write(f"gitd: unknown hook {hook!r}\n")
        return 1
    if not socket_path or not token:
        stderr.write(NOT_THROUGH_DAEMON)
        return 1
    body = request_body(environ, stdin.read())
    try:
        status, message = call_daemon(socket_path, hook, token, body)
    except (OSError, ValueError) as exc:
        stderr.write(f"gitd: cannot reach the gitd daemon for the {hook} hook ({exc}); push refused.\n")
        return 1
    if message:
        stderr.write(message if message.endswith("\n") else message + "\n")
    if status == 200:
        return 0
    if not message:
        stderr.write(f"gitd: the daemon refused the {hook} hook (HTTP {status}).\n")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv, ENV, sys.stdin.buffer, sys.stderr))
