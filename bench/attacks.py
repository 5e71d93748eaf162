#!/usr/bin/env python3
"""Availability under attack: what three transport-level attacks do to a live daemon.

    .venv/bin/python bench/attacks.py [--only stalled,idle,gzip] [--code DIR] [--defaults]

Each attack runs against a fresh ``gitd serve`` on loopback while a prober asks /healthz
every 20 ms (from 127.0.0.1; the attacker connects from 127.0.0.2, so per-address limits
do not hit the prober). Reported per attack: what the attacker did, when and how the
daemon refused it, the daemon's RSS before and after (and its peak), and the worst and
median /healthz latency while the attack ran (a failed probe counts as its timeout), and
the daemon's own event-loop lag meanwhile (from its /metrics, where it has them): on a
busy machine /healthz latency also counts time the prober and the daemon wait for a CPU.

* ``stalled``: ``--stalled`` anonymous POSTs to git-upload-pack that send their headers
  and 9 bytes of body, then stall; meanwhile a real ``git clone`` over HTTP (time to
  finish, or "hung" at 30 s);
* ``idle``: ``--idle`` TCP connections that never send a byte, against a daemon whose
  descriptor limit (RLIMIT_NOFILE) is ``--nofile``;
* ``gzip``: ``--bombs`` concurrent POSTs of a 1 MiB gzip body that inflates to 1 GiB, to a
  route that does not exist (zeros) and to git-upload-pack (a want, then the same have
  line over and over, which git reads to the end).

``--code DIR`` runs the daemon from another source tree (e.g. ``git archive`` of an older
commit), to compare before and after a fix; ``--defaults`` passes none of the new limit
settings (an older tree does not know them).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import math
import os
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import Git, GitdServer, PeakRSS, mib, rss, save_results

ATTACKER = "127.0.0.2"
PROBE_TIMEOUT = 5.0


class Daemon(GitdServer):
    """GitdServer with an optional descriptor limit for the daemon process."""

    def __init__(self, root: Path, settings: dict[str, str], nofile: int = 0):
        super().__init__(root, settings)
        self.nofile = nofile

    def start(self) -> Daemon:
        if self.nofile:
            real = subprocess.Popen

            def limited(*args, **kwargs):
                kwargs["preexec_fn"] = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))
                return real(*args, **kwargs)

            subprocess.Popen = limited  # type: ignore[misc]
            try:
                super().start()
            finally:
                subprocess.Popen = real  # type: ignore[misc]
        else:
            super().start()
        return self


class Prober:
    """GET /healthz on a fresh connection every 20 ms; latencies in seconds."""

    def __init__(self, url: str):
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.latencies: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=PROBE_TIMEOUT)
                conn.request("GET", "/healthz")
                ok = conn.getresponse().status == 200
                conn.close()
            except OSError:
                ok = False
            elapsed = time.perf_counter() - started
            self.latencies.append(elapsed if ok else max(elapsed, PROBE_TIMEOUT))
            self.failures += not ok
            self._stop.wait(0.02)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def report(self) -> dict:
        lat = self.latencies or [0.0]
        return {"probes": len(self.latencies), "failed": self.failures, "worst_ms": round(max(lat) * 1000, 1),
                "median_ms": round(statistics.median(lat) * 1000, 1)}


def lag_buckets(url: str) -> dict[float, float]:
    """gitd_event_loop_lag_seconds bucket counts (empty where the daemon has no such metric)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    try:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
    except OSError:
        return {}
    found = {}
    for line in text.splitlines():
        if line.startswith("gitd_event_loop_lag_seconds_bucket"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            found[math.inf if bound == "+Inf" else float(bound)] = float(line.rsplit(" ", 1)[1])
    return found


class LoopLag:
    """The daemon's own event-loop lag while the block runs: the bucket bound under which
    every sample fell (what the machine's other load cannot inflate as much as /healthz)."""

    def __init__(self, url: str):
        self.url = url
        self.worst = "n/a"

    def __enter__(self) -> LoopLag:
        self.before = lag_buckets(self.url)
        return self

    def __exit__(self, *exc: object) -> None:
        after = lag_buckets(self.url)
        if not after:
            return
        total = after[math.inf] - self.before.get(math.inf, 0)
        for bound in sorted(after):
            if after[bound] - self.before.get(bound, 0) >= total:
                self.worst = f"<= {bound * 1000:g} ms ({int(total)} samples)"
                return


def attacker_socket(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    sock = socket.socket()
    sock.bind((ATTACKER, 0))
    sock.connect((host, int(port)))
    return sock


def status_of(sock: socket.socket, timeout: float) -> tuple[str, float]:
    """The status line the daemon answers on ``sock`` (or 'closed'/'no answer') and when."""
    started = time.monotonic()
    sock.settimeout(timeout)
    try:
        data = sock.recv(200)
    except TimeoutError:
        return "no answer", time.monotonic() - started
    except OSError as exc:
        return f"reset ({exc.errno})", time.monotonic() - started
    line = data.split(b"\r\n", 1)[0].decode(errors="replace") if data else "closed"
    return line, time.monotonic() - started


class Answers:
    """Watches attacker sockets from the moment they are sent: what each is answered (its
    status line, 'closed' or 'reset'), and how many seconds after ``started``."""

    def __init__(self, socks: list[socket.socket], started: float):
        self.started = started
        self.got: dict[int, tuple[str, float]] = {}
        self._sel = selectors.DefaultSelector()
        for s in socks:
            s.setblocking(False)
            self._sel.register(s, selectors.EVENT_READ)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and self._sel.get_map():
            for key, _ in self._sel.select(0.1):
                sock = key.fileobj
                try:
                    data = sock.recv(200)  # type: ignore[union-attr]
                    line = data.split(b"\r\n", 1)[0].decode(errors="replace") if data else "closed"
                except BlockingIOError:
                    continue
                except OSError as exc:
                    line = f"reset ({exc.errno})"
                self.got[id(sock)] = (line, time.monotonic() - self.started)
                self._sel.unregister(sock)

    def wait(self, deadline: float, count: int) -> list[tuple[str, float]]:
        while len(self.got) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stop.set()
        self._thread.join()
        return list(self.got.values()) + [("no answer", math.nan)] * (count - len(self.got))


def setup_repo(d: Daemon, git: Git, root: Path) -> str:
    d.cli("user", "add", "alice")
    token = d.cli("token", "create", "alice").strip()
    d.cli("repo", "create", "alice/pub", "--empty")
    work = root / "w"
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    (work / "README.md").write_text("hello\n")
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "c", cwd=work)
    url = d.url.replace("http://", f"http://alice:{token}@")
    git("push", "-q", f"{url}/alice/pub.git", "main", cwd=work)
    return "/alice/pub.git"


def attack_stalled(args: argparse.Namespace, root: Path, settings: dict[str, str]) -> dict:
    d = Daemon(root / "stalled", settings).start()
    git = Git(root / "home-stalled")
    try:
        path = setup_repo(d, git, root / "stalled")
        before = rss(d.proc.pid)
        head = (f"POST {path}/git-upload-pack HTTP/1.1\r\nHost: x\r\n"
                "Content-Type: application/x-git-upload-pack-request\r\n"
                "Content-Length: 1000\r\n\r\n0032want ").encode()
        with Prober(d.url) as probe, PeakRSS(d.proc.pid) as peak, LoopLag(d.url) as lag:
            socks = []
            sent = time.monotonic()
            for _ in range(args.stalled):
                s = attacker_socket(d.url)
                s.sendall(head)
                socks.append(s)
            watch = Answers(socks, sent)
            time.sleep(1.0)
            started = time.monotonic()
            try:
                subprocess.run(["git", "clone", "-q", d.url + path, str(root / "stalled" / "c")], env=git.env,
                               capture_output=True, timeout=30, check=True)
                clone = f"{time.monotonic() - started:.2f} s"
            except subprocess.TimeoutExpired:
                clone = "hung (killed at 30 s)"
            answers = watch.wait(time.monotonic() + args.wait, len(socks))
            for s in socks:
                s.close()
        statuses = sorted({a[0] for a in answers})
        return {"attack": f"{args.stalled} stalled upload-pack POSTs from one address", "clone": clone,
                "refusals": statuses, "refused_after_s": _span([a[1] for a in answers]),
                "rss_before": mib(before), "rss_after": mib(rss(d.proc.pid)), "rss_peak": mib(peak.peak),
                "healthz": probe.report(), "loop_lag": lag.worst}
    finally:
        d.stop()


def attack_idle(args: argparse.Namespace, root: Path, settings: dict[str, str]) -> dict:
    d = Daemon(root / "idle", settings, nofile=args.nofile).start()
    try:
        before = rss(d.proc.pid)
        socks: list[socket.socket] = []
        with Prober(d.url) as probe, PeakRSS(d.proc.pid) as peak, LoopLag(d.url) as lag:
            started = time.monotonic()
            for _ in range(args.idle):
                with contextlib.suppress(OSError):
                    socks.append(attacker_socket(d.url))
            opened = time.monotonic() - started
            time.sleep(2.0)
            # Which connections did the daemon close (refused) by now, and when are the rest closed?
            refused = sum(1 for s in socks if status_of(s, 0.001)[0] not in ("no answer",))
            deadline = time.monotonic() + args.wait
            remaining = [s for s in socks]
            while remaining and time.monotonic() < deadline:
                remaining = [s for s in remaining if status_of(s, 0.001)[0] == "no answer"]
                time.sleep(0.5)
            all_closed = f"{time.monotonic() - started:.1f} s" if not remaining else f"{len(remaining)} still open"
        for s in socks:
            s.close()
        return {"attack": f"{args.idle} idle connections from one address, daemon RLIMIT_NOFILE {args.nofile}",
                "opened_in_s": round(opened, 2), "closed_by_daemon_within_2s": refused, "all_closed": all_closed,
                "rss_before": mib(before), "rss_after": mib(rss(d.proc.pid)), "rss_peak": mib(peak.peak),
                "healthz": probe.report(), "loop_lag": lag.worst}
    finally:
        d.stop()


def gzip_bomb(unit: bytes, size: int, prefix: bytes = b"") -> bytes:
    """gzip of ``prefix`` then ``unit`` repeated to ``size`` bytes: about 1000 to 1."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = unit * (1024 * 1024 // len(unit))
    out = [comp.compress(prefix)] + [comp.compress(block) for _ in range(size // len(block))]
    return b"".join(out) + comp.flush()


def pkt(text: str) -> bytes:
    return b"%04x" % (len(text) + 4) + text.encode()


def attack_gzip(args: argparse.Namespace, root: Path, settings: dict[str, str]) -> dict:
    d = Daemon(root / "gzip", settings).start()
    git = Git(root / "home-gzip")
    results: dict = {}
    try:
        path = setup_repo(d, git, root / "gzip")
        want = git.out("rev-parse", "HEAD", cwd=root / "gzip" / "w")
        # A fetch that wants the head and then has one commit over and over: git reads all of it.
        fetch = gzip_bomb(pkt(f"have {'1' * 40}\n"), 2**30, prefix=pkt(f"want {want} side-band-64k\n") + b"0000")
        targets = {"404 route": ("/no/such/route", gzip_bomb(b"\0", 2**30), "application/octet-stream"),
                   "git-upload-pack": (f"{path}/git-upload-pack", fetch, "application/x-git-upload-pack-request")}
        for name, (target, bomb, ctype) in targets.items():
            before = rss(d.proc.pid)
            answers: list[tuple[str, float]] = []

            def one(target=target, bomb=bomb, ctype=ctype, answers=answers) -> None:
                started = time.monotonic()
                s = attacker_socket(d.url)
                try:
                    s.sendall(f"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\nContent-Encoding: gzip"
                              f"\r\nContent-Length: {len(bomb)}\r\n\r\n".encode() + bomb)
                    line, _ = status_of(s, 300)
                except OSError as exc:
                    line = f"send failed ({exc.errno})"
                answers.append((line, time.monotonic() - started))
                s.close()

            with Prober(d.url) as probe, PeakRSS(d.proc.pid) as peak, LoopLag(d.url) as lag:
                threads = [threading.Thread(target=one) for _ in range(args.bombs)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
            results[name] = {"attack": f"{args.bombs} x {mib(len(bomb))} gzip bodies inflating to 1 GiB each",
                             "answers": sorted({a[0] for a in answers}),
                             "slowest_answer_s": round(max(a[1] for a in answers), 2),
                             "rss_before": mib(before), "rss_after": mib(rss(d.proc.pid)), "rss_peak": mib(peak.peak),
                             "healthz": probe.report(), "loop_lag": lag.worst}
        return results
    finally:
        d.stop()


def _span(values: list[float]) -> str:
    known = [v for v in values if not math.isnan(v)]
    if not known:
        return "never"
    never = len(values) - len(known)
    return f"{min(known):.2f}-{max(known):.2f} s" + (f" ({never} never)" if never else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="stalled,idle,gzip")
    parser.add_argument("--code", help="run the daemon from this source tree")
    parser.add_argument("--defaults", action="store_true", help="pass none of the new limit settings")
    parser.add_argument("--stalled", type=int, default=64)
    parser.add_argument("--idle", type=int, default=5000)
    parser.add_argument("--nofile", type=int, default=4096)
    parser.add_argument("--bombs", type=int, default=16)
    parser.add_argument("--wait", type=float, default=15.0, help="seconds to wait for refusals")
    args = parser.parse_args()
    if args.code:
        # ``python -m`` puts the working directory first on sys.path: run from the other tree.
        os.environ["PYTHONPATH"] = os.path.abspath(args.code)
        os.chdir(args.code)
    # Short timeouts so each attack ends within seconds; the defaults are longer.
    settings = {} if args.defaults else {"server.body_timeout": "5", "server.header_timeout": "5"}
    results: dict = {"code": args.code or "this tree", "settings": settings}
    with tempfile.TemporaryDirectory(prefix="gitd-attacks-") as tmp:
        root = Path(tmp)
        for name in args.only.split(","):
            result = {"stalled": attack_stalled, "idle": attack_idle, "gzip": attack_gzip}[name](args, root, settings)
            results[name] = result
            print(name, result, flush=True)
    print("saved", save_results("attacks", results))


if __name__ == "__main__":
    main()
