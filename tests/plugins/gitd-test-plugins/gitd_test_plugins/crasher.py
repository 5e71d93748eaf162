"""Fails in pre-receive when asked to: ``-o crash=error`` raises a RuntimeError whose
text must never reach the pusher, ``-o crash=exit`` raises SystemExit, which must not
stop the daemon."""

from __future__ import annotations

import sys
from typing import Any

import gitd
from gitd import PushEvent
from gitd_test_plugins import option

SECRET = "crasher-internal-detail-0xC0FFEE"


class Crasher:
    def __init__(self, settings: dict[str, Any]):
        self.settings = settings

    @gitd.hookimpl
    def gitd_pre_receive(self, event: PushEvent) -> None:
        how = option(event, "crash")
        if how == "error":
            raise RuntimeError(f"plugin bug: {SECRET}")
        if how == "exit":
            sys.exit(3)
