"""Run blocking plugin code on its own daemon thread, awaited from the event loop.

Plugins (pre-receive checks, post-receive jobs) are third-party code that may block,
hang or raise anything. ``asyncio.to_thread`` would run them on the loop's shared
default executor, where a few slow jobs could starve a push's pre-receive check, and
whose threads the interpreter joins at exit, so one hung plugin would keep the daemon
from stopping. ``in_thread`` starts a fresh daemon thread per call instead (cheap next
to a push), and turns a ``BaseException`` raised by the plugin (``SystemExit``,
``KeyboardInterrupt``) into a ``PluginCrashed`` so it can never unwind the event loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class PluginCrashed(RuntimeError):
    """Code on a worker thread raised a BaseException that is not an Exception."""


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the awaiting side gave up (timeout, shutdown)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


async def in_thread(function: Callable[..., T], /, *args: Any, name: str = "gitd-plugin", **kwargs: Any) -> T:
    """``function(*args, **kwargs)`` on a new daemon thread; cancelling the await abandons it."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        result: Any = None
        error: BaseException | None = None
        try:
            result = function(*args, **kwargs)
        except Exception as exc:
            error = exc
        except BaseException as exc:
            error = PluginCrashed(f"{type(exc).__name__}: {exc}")
            error.__cause__ = exc
        try:
            loop.call_soon_threadsafe(_settle, future, result, error)
        except RuntimeError:
            pass  # the loop is closed: the daemon stopped while this ran

    threading.Thread(target=run, name=name, daemon=True).start()
    return await future
