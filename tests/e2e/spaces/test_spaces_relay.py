"""The daemon's relay lane (plugin API 1.6) in front of a running space: plain requests to
``/spaces/NS/NAME/app/...`` answered from the connection itself, with the same access rules,
rate limits, headers and framing as the route's handler, and everything else (large or
chunked uploads, refusals) still handed to the handler. Driven with raw sockets, so that
keep-alive, pipelining and framing are what the test says they are."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import Daemon, Git, new_daemon, unique

from .apps import RELAY_APP, card
from .test_spaces_local import SETTINGS, get, wait_for

LANE_SETTINGS = {**SETTINGS, "server.body_timeout": 1.0, "server.header_timeout": 2.0}


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class Conn:
    """One client connection to the daemon, HTTP/1.1 (or 1.0) by hand."""

    def __init__(self, d: Daemon, timeout: float = 30):
        host, port = d.url.removeprefix("http://").rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.file = self.sock.makefile("rb")

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def ask(self, method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b"",
            version: str = "1.1") -> Answer:
        self.send(raw_request(method, target, headers, body, version))
        return self.read(head=method == "HEAD")

    def read(self, *, head: bool = False) -> Answer:
        line = self.file.readline()
        if not line:
            raise ConnectionError("the daemon closed the connection")
        status = int(line.split()[1])
        headers: dict[str, str] = {}
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if head or status in (204, 304):
            body = b""
        elif headers.get("transfer-encoding") == "chunked":
            body = b""
            while size := int(self.file.readline().strip(), 16):
                body += self.file.read(size)
                assert self.file.readline() == b"\r\n"
            assert self.file.readline() == b"\r\n"
        elif "content-length" in headers:
            body = self.file.read(int(headers["content-length"]))
        else:
            body = self.file.read()
        return Answer(status, headers, body)

    def closed(self, within: float) -> bool:
        """Whether the daemon closes this connection within ``within`` seconds."""
        self.sock.settimeout(within)
        try:
            return self.sock.recv(1) == b""
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True


def raw_request(method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b"",
                version: str = "1.1") -> bytes:
    lines = [f"{method} {target} HTTP/{version}"] + (["Host: 127.0.0.1"] if version == "1.1" else [])
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k in headers or {}):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def relayed(d: Daemon) -> int:
    """Requests the lane answered so far (the daemon's metrics)."""
    status, text = get(f"{d.url}/metrics")
    assert status == 200
    return sum(int(float(line.rpartition(" ")[2])) for line in text.decode().splitlines()
               if line.startswith("gitd_http_relayed_total{"))


def start_space(d: Daemon, git: Git, work: Path, *, private: bool = False) -> tuple[str, str]:
    """A running space with RELAY_APP; (ns/name, the owner's token)."""
    owner, token = d.user()
    full = d.repo(owner, unique("relay"), repo_type="space", private=private)
    tree = git.init_work(work / full.replace("/", "_"), {"README.md": card("gradio"), "app.py": RELAY_APP})
    git("push", "-q", d.repo_url(full, token=token, repo_type="space"), "main", cwd=tree)
    # (a public space is polled without the token: a test of the token's rate limit counts on it)
    wait_for(lambda: get(f"{d.url}/spaces/{full}/app/conn", token if private else None)[0] == 200,
             what="the app to answer")
    return full, token


@pytest.fixture(scope="module")
def lane_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = new_daemon(tmp_path_factory.mktemp("lane"), settings=LANE_SETTINGS).start()
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture(scope="module")
def space(lane_daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return start_space(lane_daemon, Git(tmp_path_factory.mktemp("home")), tmp_path_factory.mktemp("work"))


@pytest.fixture
def conn(lane_daemon: Daemon) -> Iterator[Conn]:
    c = Conn(lane_daemon)
    try:
        yield c
    finally:
        c.close()


def test_relay_lane_keeps_connections_to_the_app_and_forwards_the_proxy_headers(lane_daemon, space, conn):
    d, (full, token) = lane_daemon, space
    auth = {"Authorization": f"Bearer {token}"}
    before = relayed(d)
    answers = [conn.ask("GET", f"/spaces/{full}/app/conn?i={i}", auth) for i in range(3)]
    assert [a.status for a in answers] == [200, 200, 200]
    assert [a.body.decode().count(f"/conn?i={i}") for i, a in enumerate(answers)] == [1, 1, 1]
    # one connection to the app carried all three (the lane keeps it between requests)
    assert len({a.body.split(b'"port": ')[1].split(b",")[0] for a in answers}) == 1
    assert all(len(a.headers["x-request-id"]) == 32 for a in answers)
    given = conn.ask("GET", f"/spaces/{full}/app/conn", {**auth, "X-Request-Id": "trace-42"})
    assert given.headers["x-request-id"] == "trace-42"

    seen = json.loads(conn.ask("GET", f"/spaces/{full}/app/headers",
                               {**auth, "X-Forwarded-For": "6.6.6.6", "X-Custom": "kept"}).body)
    seen = {k.lower(): v for k, v in seen.items()}
    assert "authorization" not in seen, "the caller's token reached the app"
    assert seen["x-forwarded-for"] == "127.0.0.1" and seen["x-custom"] == "kept"
    assert seen["x-forwarded-prefix"] == f"/spaces/{full}/app" and seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-host"] == "127.0.0.1"
    assert relayed(d) - before == 5


def test_relay_lane_answers_pipelined_requests_in_order_head_and_every_framing(lane_daemon, space, conn):
    d, (full, token) = lane_daemon, space
    auth = {"Authorization": f"Bearer {token}"}
    before = relayed(d)
    conn.send(raw_request("GET", f"/spaces/{full}/app/conn?first", auth)
              + raw_request("GET", f"/spaces/{full}/app/conn?second", auth))
    first, second = conn.read(), conn.read()
    assert b"?first" in first.body and b"?second" in second.body
    head = conn.ask("HEAD", f"/spaces/{full}/app/conn", auth)
    assert head.status == 200 and int(head.headers["content-length"]) > 0
    chunked = conn.ask("GET", f"/spaces/{full}/app/chunked", auth)
    assert chunked.body == b"alpha-beta-gamma" and chunked.headers["transfer-encoding"] == "chunked"
    # an answer that ends when the app closes: chunked to an HTTP/1.1 client, which keeps its connection
    eof = conn.ask("GET", f"/spaces/{full}/app/eof", auth)
    assert eof.body == b"until-the-end" and eof.headers["transfer-encoding"] == "chunked"
    assert conn.ask("GET", f"/spaces/{full}/app/conn?after", auth).status == 200
    assert relayed(d) - before == 6
    # ... and to an HTTP/1.0 client, ended by closing its connection
    old = Conn(d)
    try:
        answer = old.ask("GET", f"/spaces/{full}/app/eof", auth, version="1.0")
        assert answer.body == b"until-the-end" and "transfer-encoding" not in answer.headers
    finally:
        old.close()
    # an HTTP/1.0 request without a Host header: the app (asked in HTTP/1.1) still gets one
    old = Conn(d)
    try:
        answer = old.ask("GET", f"/spaces/{full}/app/headers", auth, version="1.0")
        assert answer.status == 200 and json.loads(answer.body)["Host"] == d.url.removeprefix("http://")
    finally:
        old.close()


def test_relay_lane_relays_small_bodies_and_leaves_large_or_chunked_ones_to_the_handler(lane_daemon, space):
    d, (full, token) = lane_daemon, space
    auth = {"Authorization": f"Bearer {token}"}
    for body, by_lane in ((b"small body", 1), (bytes(range(256)) * 800, 0)):
        before = relayed(d)
        c = Conn(d)
        try:
            answer = c.ask("POST", f"/spaces/{full}/app/echo", auth, body)
        finally:
            c.close()
        assert answer.status == 200 and answer.body == body
        assert relayed(d) - before == by_lane
    before = relayed(d)
    c = Conn(d)
    try:
        c.send(raw_request("POST", f"/spaces/{full}/app/echo", {**auth, "Transfer-Encoding": "chunked"})
               + b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        answer = c.read()
    finally:
        c.close()
    assert answer.status == 200 and answer.body == b"hello world"
    assert relayed(d) == before


def test_relay_lane_keeps_a_private_space_404_to_everyone_who_may_not_read_it(lane_daemon, tmp_path):
    d = lane_daemon
    full, token = start_space(d, Git(tmp_path / "home"), tmp_path, private=True)
    _, stranger = d.user()
    before = relayed(d)
    c = Conn(d)
    try:
        # as on the Hub: the anonymous caller is asked to sign in, with the same code as a missing repository
        anonymous = c.ask("GET", f"/spaces/{full}/app/conn")
        assert anonymous.status == 401 and b"RepoNotFound" in anonymous.body
        assert c.ask("GET", f"/spaces/{full}/app/conn", {"Authorization": f"Bearer {stranger}"}).status == 404
    finally:
        c.close()
    c = Conn(d)
    try:
        assert c.ask("GET", f"/spaces/{full}/app/conn", {"Authorization": "Bearer not-a-token"}).status == 401
    finally:
        c.close()
    assert relayed(d) == before
    c = Conn(d)
    try:
        assert c.ask("GET", f"/spaces/{full}/app/conn", {"Authorization": f"Bearer {token}"}).status == 200
    finally:
        c.close()
    assert relayed(d) == before + 1


def test_relay_lane_answers_502_when_the_app_closes_without_answering(lane_daemon, space, conn):
    full, token = space
    auth = {"Authorization": f"Bearer {token}"}
    assert conn.ask("GET", f"/spaces/{full}/app/conn", auth).status == 200  # a kept connection to the app
    failed = conn.ask("GET", f"/spaces/{full}/app/drop", auth)
    assert failed.status == 502 and b"closed the connection" in failed.body and failed.headers["x-request-id"]
    assert conn.ask("GET", f"/spaces/{full}/app/conn", auth).status == 200  # the client's connection goes on


def test_relay_lane_times_out_a_stalled_body_with_408_and_an_unfinished_head(lane_daemon, space, conn):
    d, (full, token) = lane_daemon, space
    conn.send(raw_request("POST", f"/spaces/{full}/app/echo",
                          {"Authorization": f"Bearer {token}", "Content-Length": "100"}) + b"only ten b")
    started = time.monotonic()
    answer = conn.read()
    assert answer.status == 408 and time.monotonic() - started < 10
    assert conn.closed(within=5)
    idle = Conn(d)
    try:
        idle.send(f"GET /spaces/{full}/app/conn HTTP/1.1\r\nHost: x\r\n".encode())  # never ends its head
        assert idle.closed(within=10)
    finally:
        idle.close()


def test_relay_lane_applies_the_rate_limits(tmp_path):
    d = new_daemon(tmp_path / "d", settings={**SETTINGS, "limits.rate_per_token": 0.001,
                                              "limits.burst_per_token": 4}).start()
    try:
        full, _ = start_space(d, Git(tmp_path / "home"), tmp_path)
        _, reader = d.user()
        c = Conn(d)
        try:
            statuses = [c.ask("GET", f"/spaces/{full}/app/conn", {"Authorization": f"Bearer {reader}"}).status
                        for _ in range(6)]
        finally:
            c.close()
        assert statuses[:4] == [200] * 4 and statuses[4:] == [429, 429]
    finally:
        d.stop()
