"""General defences: request rate limits per client address and per token (429 with
Retry-After, health checks exempt), request bodies that stall on any route (408), and the
metrics that show load (event-loop lag, git slots, open connections)."""

from __future__ import annotations

import time

from tests.e2e.attacks.tools import Closings, connect, head, status
from tests.e2e.rawhttp import bearer, metric, request


def _get(d, target: str, source: str, headers: dict[str, str] | None = None) -> bytes:
    sock = connect(d.url, source)
    try:
        sock.sendall(head("GET", target, {"Connection": "close", **(headers or {})}))
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
        return reply
    finally:
        sock.close()


def test_rate_limits_per_address_and_per_token(make_daemon):
    d = make_daemon(settings={"limits.rate_per_address": 0.2, "limits.burst_per_address": 3,
                              "limits.rate_per_token": 0.2, "limits.burst_per_token": 4})
    _, token = d.user()
    # Per address: three requests, then 429 with the seconds to wait (one request per 5 s).
    replies = [_get(d, "/api/models", "127.0.0.2") for _ in range(4)]
    assert [status(r) for r in replies] == [200, 200, 200, 429]
    assert b"Retry-After: 5" in replies[3] and b"too many requests from your address" in replies[3]
    assert all(status(_get(d, path, "127.0.0.2")) == 200 for path in ("/healthz", "/readyz", "/metrics") * 3)
    # Per token: the same token from four other addresses shares one bucket.
    by_token = [_get(d, "/api/whoami-v2", f"127.0.0.{i}", bearer(token)) for i in (3, 4, 5, 6, 7)]
    assert [status(r) for r in by_token] == [200, 200, 200, 200, 429]
    assert b"too many requests from your token" in by_token[4]
    assert status(_get(d, "/api/whoami-v2", "127.0.0.8")) != 429  # no token: only its address counts
    scraped = request(d.url, "GET", "/metrics").body.decode()
    assert metric(scraped, "gitd_rate_limited_total", limit="address") == 1
    assert metric(scraped, "gitd_rate_limited_total", limit="token") == 1


def test_a_stalled_body_on_any_route_gets_408(make_daemon):
    d = make_daemon(settings={"server.body_timeout": 1})
    _, token = d.user()
    sock = connect(d.url)
    sock.sendall(head("POST", "/api/repos/create", {"Content-Type": "application/json", "Content-Length": "500",
                                                    **bearer(token)}) + b'{"name": ')
    closings = Closings([sock])
    try:
        seen = closings.wait(1, timeout=6)
    finally:
        closings.close()
    reply, after = seen[0]
    assert status(reply) == 408 and b"stalled" in reply, reply
    assert 0.9 < after < 4


def test_metrics_show_loop_lag_git_slots_and_connections(daemon):
    time.sleep(0.2)  # the lag monitor samples every 50 ms
    scraped = request(daemon.url, "GET", "/metrics").body.decode()
    assert metric(scraped, "gitd_event_loop_lag_seconds_count") > 0
    assert "# TYPE gitd_event_loop_blocked_total counter" in scraped
    assert metric(scraped, "gitd_git_slots_in_use") >= 0 and "# TYPE gitd_git_slots_in_use gauge" in scraped
    assert metric(scraped, "gitd_connections_open") >= 1  # this scrape's own connection
