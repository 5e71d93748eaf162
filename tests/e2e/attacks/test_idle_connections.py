"""Attack: many idle (or slowly-sending) connections, to take every descriptor the daemon has
(issue 19, finding 7). Connections over the per-address or total cap are refused at once, the
admitted ones are closed after [server] header_timeout, and /healthz stays fast."""

from __future__ import annotations

import time

from tests.e2e.attacks.tools import Closings, HealthProbe, connect, connect_tcp, ended, read_reply


def test_regression_idle_connections_are_capped_and_timed_out(make_daemon):
    d = make_daemon(settings={"server.max_connections_per_address": 20, "server.header_timeout": 2})
    opened = time.monotonic()
    idle = [connect(d.url) for _ in range(15)]
    slow = [connect(d.url) for _ in range(5)]  # slowloris: a request line and one header, then nothing
    for sock in slow:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gitd\r\n")
    time.sleep(0.2)
    flood = [connect(d.url) for _ in range(180)]
    closings = Closings(idle + slow + flood)
    try:
        with HealthProbe(d.url) as probe:
            seen = closings.wait(200, timeout=8)
    finally:
        closings.close()
    assert len(seen) == 200, f"{200 - len(seen)} connections were left open"
    refused = [seen[i] for i in range(20, 200)]
    admitted = [seen[i] for i in range(20)]
    assert all(reply.startswith(b"HTTP/1.1 503") and b"too many connections" in reply for reply, _ in refused)
    assert max(t for _, t in refused) < 1.0  # answered as they connected
    # Admitted, then closed once they had not sent a whole request within header_timeout (2 s).
    assert all(reply == b"" for reply, _ in admitted), admitted
    ages = sorted(t + closings.started - opened for _, t in admitted)
    assert ages[0] >= 1.8 and ages[-1] < 5, ages
    probe.check()


def test_the_total_cap_counts_http_and_ssh_and_ssh_has_the_per_address_cap(make_daemon):
    d = make_daemon(settings={"server.max_connections": 40, "server.max_connections_per_address": 30,
                              "server.header_timeout": 3})
    host, port = d.ssh_host, d.ssh_port
    # SSH: the 31st connection from one address is dropped before the key exchange.
    ssh = [connect_tcp(host, port, "127.0.0.5") for _ in range(31)]
    assert ended(ssh[-1], 2)
    assert not ended(ssh[0], 0.5)  # admitted ones wait for the client's version
    for sock in ssh:
        sock.close()
    time.sleep(0.3)

    http = [connect(d.url, "127.0.0.2") for _ in range(30)] + [connect(d.url, "127.0.0.3") for _ in range(10)]
    time.sleep(0.3)
    over = connect(d.url, "127.0.0.4")  # 41st in all
    assert read_reply(over, 2).startswith(b"HTTP/1.1 503")
    over_ssh = connect_tcp(host, port, "127.0.0.4")
    assert ended(over_ssh, 2)
    # Once the idle HTTP connections have timed out there is room again.
    time.sleep(3.5)
    for sock in http:
        sock.close()
    time.sleep(0.3)
    fresh = connect_tcp(host, port, "127.0.0.4")
    assert not ended(fresh, 1.0), "the SSH connection was refused although the HTTP ones had gone"
    fresh.close()
    over.close()
    over_ssh.close()
