"""A small Prometheus registry: counters, histograms and gauges, rendered as text format 0.0.4."""

from __future__ import annotations

import bisect
import itertools
import math
import threading
from collections import defaultdict
from collections.abc import Callable

DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def _labels(names: tuple[str, ...], values: tuple[str, ...], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: float) -> str:
    if math.isinf(value):
        return "+Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Counter:
    def __init__(self, name: str, help: str, labels: tuple[str, ...] = ()):
        self.name, self.help, self.label_names = name, help, labels
        self._values: dict[tuple[str, ...], float] = defaultdict(float)
        self._lock = threading.Lock()

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = tuple(str(labels[n]) for n in self.label_names)
        with self._lock:
            self._values[key] += amount

    def value(self, **labels: str) -> float:
        return self._values.get(tuple(str(labels[n]) for n in self.label_names), 0.0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        if not self.label_names and not self._values:
            lines.append(f"{self.name} 0")
        for key, value in sorted(self._values.items()):
            lines.append(f"{self.name}{_labels(self.label_names, key)} {_num(value)}")
        return lines


class Histogram:
    def __init__(self, name: str, help: str, labels: tuple[str, ...] = (),
                 buckets: tuple[float, ...] = DEFAULT_BUCKETS):
        self.name, self.help, self.label_names = name, help, labels
        self.buckets = (*buckets, math.inf)
        self._counts: dict[tuple[str, ...], list[int]] = {}
        self._sums: dict[tuple[str, ...], float] = defaultdict(float)
        self._lock = threading.Lock()

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(str(labels[n]) for n in self.label_names)
        slot = bisect.bisect_left(self.buckets, value)  # the first bucket with value <= bound
        with self._lock:
            counts = self._counts.get(key)
            if counts is None:
                counts = self._counts[key] = [0] * len(self.buckets)
            counts[slot] += 1  # per bucket here; cumulated when rendered
            self._sums[key] += value

    def count(self, **labels: str) -> int:
        counts = self._counts.get(tuple(str(labels[n]) for n in self.label_names))
        return sum(counts) if counts else 0

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for key, own in sorted(self._counts.items()):
            counts = list(itertools.accumulate(own))
            for bound, count in zip(self.buckets, counts, strict=True):
                le = 'le="' + _num(bound) + '"'
                lines.append(f"{self.name}_bucket{_labels(self.label_names, key, le)} {count}")
            lines.append(f"{self.name}_sum{_labels(self.label_names, key)} {_num(self._sums[key])}")
            lines.append(f"{self.name}_count{_labels(self.label_names, key)} {counts[-1]}")
        return lines


class Gauge:
    """A value read when the metrics are rendered (``read`` returns it)."""

    def __init__(self, name: str, help: str, read: Callable[[], float]):
        self.name, self.help, self.read = name, help, read

    def render(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} gauge", f"{self.name} {_num(self.read())}"]


class Metrics:
    """Every metric the daemon exports."""

    def __init__(self) -> None:
        self.http_requests = Counter("gitd_http_requests_total", "HTTP requests handled.",
                                     ("method", "route", "status"))
        self.http_duration = Histogram("gitd_http_request_duration_seconds",
                                       "Time to handle an HTTP request.", ("route",))
        self.git_duration = Histogram("gitd_git_service_duration_seconds",
                                      "Run time of git service processes.", ("service", "transport"))
        self.git_bytes_sent = Counter("gitd_git_bytes_sent_total", "Bytes git services sent to clients.",
                                      ("service", "transport"))
        self.git_bytes_received = Counter("gitd_git_bytes_received_total",
                                          "Bytes git services received from clients.", ("service", "transport"))
        self.git_failures = Counter("gitd_git_service_failures_total",
                                    "git service runs that exited non-zero.", ("service", "transport"))
        self.lfs_bytes_sent = Counter("gitd_lfs_bytes_sent_total", "LFS object bytes served.", ("transport",))
        self.lfs_bytes_received = Counter("gitd_lfs_bytes_received_total", "LFS object bytes stored.",
                                          ("transport",))
        self.loop_lag = Histogram("gitd_event_loop_lag_seconds",
                                  "How late the event loop ran a task that was due (sampled every 50 ms).",
                                  buckets=LAG_BUCKETS)
        self.loop_blocked = Counter("gitd_event_loop_blocked_total", "Event-loop lags over 100 ms.")
        self.connections_refused = Counter("gitd_connections_refused_total",
                                           "Connections refused at accept time by a connection limit.",
                                           ("transport", "reason"))
        self.rate_limited = Counter("gitd_rate_limited_total", "HTTP requests refused by a rate limit (429).",
                                    ("limit",))
        self.http_relayed = Counter("gitd_http_relayed_total",
                                    "HTTP requests the relay lane passed to a plugin's app itself (also counted "
                                    "in gitd_http_requests_total).", ("route",))
        self._all: list[Counter | Histogram | Gauge] = [
            self.http_requests, self.http_duration, self.git_duration, self.git_bytes_sent, self.git_bytes_received,
            self.git_failures, self.lfs_bytes_sent, self.lfs_bytes_received, self.loop_lag, self.loop_blocked,
            self.connections_refused, self.rate_limited, self.http_relayed]

    def add_gauge(self, name: str, help: str, read: Callable[[], float]) -> None:
        """A gauge whose value ``read`` gives at each scrape (replaces one of the same name)."""
        self._all = [m for m in self._all if m.name != name] + [Gauge(name, help, read)]

    def observe_git(self, service: str, transport: str, seconds: float, sent: int, received: int,
                    returncode: int) -> None:
        self.git_duration.observe(seconds, service=service, transport=transport)
        self.git_bytes_sent.inc(sent, service=service, transport=transport)
        self.git_bytes_received.inc(received, service=service, transport=transport)
        if returncode != 0:
            self.git_failures.inc(service=service, transport=transport)

    def render(self) -> str:
        lines: list[str] = []
        for metric in self._all:
            lines += metric.render()
        return "\n".join(lines) + "\n"
