"""What the attack tests share: raw attacker connections from another loopback address, a
/healthz prober that runs beside the attack, and the daemon's CPU time and memory.

The attacker connects from 127.0.0.2 (all of 127/8 is loopback on Linux) and the prober
from 127.0.0.1, so per-address limits that hold the attacker back do not hit the prober.
"""

from __future__ import annotations

import http.client
import os
import selectors
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from tests.support import Daemon

ATTACKER = "127.0.0.2"
# Worst /healthz latency allowed while an attack runs. The goal is 100 ms; CI runs on two
# busy cores, so the tests allow a margin (the real figures are in the bench/attacks.py report).
HEALTHZ_BOUND = 0.5


def connect(url: str, source: str = ATTACKER, timeout: float = 10) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.socket()
    sock.settimeout(timeout)
    sock.bind((source, 0))
    sock.connect((parts.hostname, parts.port))
    return sock


def connect_tcp(host: str, port: int, source: str = ATTACKER) -> socket.socket:
    sock = socket.socket()
    sock.settimeout(10)
    sock.bind((source, 0))
    sock.connect((host, port))
    return sock


def head(method: str, target: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: gitd", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_reply(sock: socket.socket, timeout: float) -> bytes:
    """What the daemon sends until it closes the connection or ``timeout`` passes (b'' if nothing)."""
    sock.settimeout(timeout)
    received = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return received


def ended(sock: socket.socket, timeout: float) -> bool:
    """Whether the daemon closes ``sock`` within ``timeout`` (whatever it sends first)."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            if not sock.recv(65536):
                return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return False


def status(reply: bytes) -> int | None:
    if not reply.startswith(b"HTTP/1.1 "):
        return None
    return int(reply[9:12])


class Closings:
    """When the daemon answers or closes each of ``socks`` (seconds after the watch started):
    the first bytes it sent, or b'' for a plain close."""

    def __init__(self, socks: list[socket.socket]):
        self.started = time.monotonic()
        self.seen: dict[int, tuple[bytes, float]] = {}
        self._socks = socks
        self._sel = selectors.DefaultSelector()
        for i, sock in enumerate(socks):
            sock.setblocking(False)
            self._sel.register(sock, selectors.EVENT_READ, i)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and self._sel.get_map():
            for key, _ in self._sel.select(0.05):
                try:
                    data = key.fileobj.recv(4096)  # type: ignore[union-attr]
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                self.seen[key.data] = (data, time.monotonic() - self.started)
                self._sel.unregister(key.fileobj)

    def wait(self, count: int, timeout: float) -> dict[int, tuple[bytes, float]]:
        deadline = time.monotonic() + timeout
        while len(self.seen) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return dict(self.seen)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for sock in self._socks:
            sock.close()


class HealthProbe:
    """GET /healthz from 127.0.0.1 on a fresh connection every 20 ms while the block runs."""

    def __init__(self, url: str, path: str = "/healthz"):
        parts = urlsplit(url)
        self.host, self.port, self.path = parts.hostname, parts.port, path
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
                conn.request("GET", self.path)
                reply = conn.getresponse()
                reply.read()
                conn.close()
                if reply.status != 200:
                    self.failures.append(f"status {reply.status}")
            except OSError as exc:
                self.failures.append(repr(exc))
            self.latencies.append(time.perf_counter() - started)
            self._stop.wait(0.02)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def worst(self) -> float:
        return max(self.latencies, default=0.0)

    def check(self) -> None:
        """/healthz answered every time, and fast (HEALTHZ_BOUND)."""
        print(f"/healthz during the attack: {len(self.latencies)} probes, worst {self.worst * 1000:.1f} ms")
        assert len(self.latencies) >= 5, "the prober hardly ran"
        assert not self.failures, self.failures[:5]
        assert self.worst < HEALTHZ_BOUND, f"worst /healthz latency {self.worst * 1000:.0f} ms"


def cpu_seconds(d: Daemon) -> float:
    """User and system CPU time the daemon process has used so far."""
    assert d.proc is not None
    fields = Path(f"/proc/{d.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss(d: Daemon) -> int:
    assert d.proc is not None
    for line in Path(f"/proc/{d.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")
