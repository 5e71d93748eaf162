"""A post-receive job that, for a push with ``-o hold=NAME``, records that it started
and then waits while the file ``NAME.hold`` exists in its directory (a test kills the
daemon meanwhile), then records that it finished."""

from __future__ import annotations

import time
from typing import Any

import gitd
from gitd import PushEvent
from gitd_test_plugins import option, record_dir, write_record


class Holder:
    def __init__(self, settings: dict[str, Any]):
        self.dir = record_dir(settings)

    @gitd.hookimpl
    def gitd_post_receive(self, event: PushEvent) -> None:
        name = option(event, "hold")
        if not name or self.dir is None:
            return
        write_record(self.dir, f"hold-started-{name}", {})
        deadline = time.monotonic() + 120
        while (self.dir / f"{name}.hold").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        write_record(self.dir, f"hold-finished-{name}", {})
