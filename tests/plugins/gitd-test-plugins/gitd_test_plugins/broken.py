"""Cannot be set up when its settings say ``fail = "true"`` (a plugin whose
configuration is wrong); otherwise it does nothing."""

from __future__ import annotations

from typing import Any

import gitd
from gitd import PushEvent


class Broken:
    def __init__(self, settings: dict[str, Any]):
        if str(settings.get("fail", "false")).lower() == "true":
            raise ValueError("broken plugin: bad settings")

    @gitd.hookimpl
    def gitd_pre_receive(self, event: PushEvent) -> None:
        return None
