"""Run blocking plugin code on a pool of daemon threads, awaited from the event loop.

Plugins (pre-receive checks, post-receive jobs) are third-party code that may block,
hang or raise anything. ``asyncio.to_thread`` would run them on the loop's shared
default executor, where slow jobs could starve a push's pre-receive check, and whose
threads the interpreter joins at exit, so one hung plugin would keep the daemon from
stopping. A ``ThreadPool`` has threads of its own, marked daemon so they never hold
up the exit, reused so that each keeps its SQLite connection (``Store.db`` is per
thread), and started as needed, so a hung plugin only ever ties up its own thread.

``run`` turns a ``BaseException`` raised by the code (``SystemExit``,
``KeyboardInterrupt``) into ``PluginCrashed``, so it can never unwind the event loop.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Work = tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class PluginCrashed(RuntimeError):
    """Code on a worker thread raised a BaseException that is not an Exception."""


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the awaiting side gave up (timeout, shutdown)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class ThreadPool:
    def __init__(self, name: str):
        self.name = name
        self._work: queue.SimpleQueue[_Work] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._count = itertools.count(1)
        self.threads = 0

    async def run(self, function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``function(*args, **kwargs)`` on a pool thread; cancelling the await abandons it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._idle == 0:
                self.threads += 1
                threading.Thread(target=self._serve, name=f"{self.name}-{next(self._count)}", daemon=True).start()
            else:
                self._idle -= 1  # claimed: the next call will not count on this thread
        self._work.put((loop, future, function, args, kwargs))
        return await future

    def _serve(self) -> None:
        while True:
            loop, future, function, args, kwargs = self._work.get()
            result: Any = None
            error: BaseException | None = None
            try:
                result = function(*args, **kwargs)
            except Exception as exc:
                error = exc
            except BaseException as exc:
                error = PluginCrashed(f"{type(exc).__name__}: {exc}")
                error.__cause__ = exc
            with self._lock:  # free before the caller hears back, so its next call reuses this thread
                self._idle += 1
            try:
                loop.call_soon_threadsafe(_settle, future, result, error)
            except RuntimeError:
                pass  # the loop is closed: the daemon stopped while this ran
            del loop, future, function, args, kwargs, result, error
