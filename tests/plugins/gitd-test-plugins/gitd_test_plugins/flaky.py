"""A post-receive job that fails its first N attempts for a push with ``-o flaky=N``
(``-o flaky=always``: every attempt), recording each attempt as
``flaky-<repo id>-<new commit of the first update>-*.json``."""

from __future__ import annotations

import threading
from typing import Any

import gitd
from gitd import PushEvent
from gitd_test_plugins import option, record_dir, write_record


class Flaky:
    def __init__(self, settings: dict[str, Any]):
        self.dir = record_dir(settings)
        self.lock = threading.Lock()

    @gitd.hookimpl
    def gitd_post_receive(self, event: PushEvent) -> None:
        wanted = option(event, "flaky")
        if wanted is None or self.dir is None:
            return
        kind = f"flaky-{event.repo.id}-{event.updates[0].new}"
        with self.lock:
            attempt = len(list(self.dir.glob(f"{kind}-*.json"))) + 1
            write_record(self.dir, kind, {"attempt": attempt})
        if wanted == "always" or attempt <= int(wanted):
            raise RuntimeError(f"flaky failure on attempt {attempt}")
