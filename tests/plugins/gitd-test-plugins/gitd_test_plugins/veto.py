"""Refuses a push carrying the push option ``veto=<message>`` with that message
(``\\n`` in it becomes a line break)."""

from __future__ import annotations

from typing import Any

import gitd
from gitd import PushEvent
from gitd_test_plugins import option


class Veto:
    def __init__(self, settings: dict[str, Any]):
        self.prefix = settings.get("prefix", "")

    @gitd.hookimpl
    def gitd_pre_receive(self, event: PushEvent) -> None:
        message = option(event, "veto")
        if message is not None:
            raise gitd.PushRejected(self.prefix + message.replace("\\n", "\n"))
