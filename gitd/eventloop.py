"""Which asyncio event loop the daemon runs on: ``[server] event_loop``.

``uvloop`` (libuv, in C) runs the same asyncio code with less CPU per socket event than
the stdlib's selector loop; for small HTTP requests, such as HEAD /resolve, that is most
of the cost. ``asyncio`` is the stdlib loop. ``auto`` (the default) takes uvloop when it
is installed and the stdlib loop otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from gitd.config import ConfigError

T = TypeVar("T")

CHOICES = ("auto", "uvloop", "asyncio")


def loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """A factory for the loop ``kind`` names; None for the stdlib's default loop."""
    if kind not in CHOICES:
        raise ConfigError(f"server.event_loop: expected one of {', '.join(CHOICES)}, got {kind!r}")
    if kind == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if kind == "uvloop":
            raise ConfigError("server.event_loop = 'uvloop', but uvloop is not installed")
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], factory: Callable[[], asyncio.AbstractEventLoop] | None) -> T:
    """``asyncio.run(main)`` on a loop from ``factory`` (see ``loop_factory``)."""
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
