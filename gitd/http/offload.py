"""The per-request event-loop budget: client-controlled parsing runs on a few threads, with a time limit.

Whatever parses data a client controls (YAML cards, JSON bodies, gitignore patterns,
trees pushed by anyone) must never hold the event loop: ``Offload.run`` runs it on one
of a small, fixed number of daemon threads and gives up waiting after a time limit,
answering ``Overrun`` (503). Python threads cannot be killed, so an abandoned call goes
on until it ends; two things keep that short:

* the work itself is bounded (callers cap sizes, entries and depth before they parse);
* long loops call ``check_deadline()``, which raises once the call's time is up, so a walk
  abandoned by its request stops at its next check. A call still queued when its time is
  up never starts.

A slot is held until its thread is really done, not only until the request gave up, so
hostile requests can tie up at most ``workers`` threads, and only for as long as their
capped work takes: the loop itself stays free, and so does every other thread pool.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from gitd.errors import GitdError

T = TypeVar("T")

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("gitd_offload_deadline", default=None)


class Overrun(GitdError):
    """Work on client data took longer than its budget (or waited too long for a thread)."""

    status = 503
    code = "TooMuchWork"


def check_deadline() -> None:
    """Raise ``Overrun`` if the offloaded call this thread runs is past its time (no-op elsewhere).
    Also hands the GIL over for a moment: a busy thread otherwise keeps it for CPython's whole
    switch interval each time the event loop asks for it, several times per request it serves."""
    time.sleep(0)
    deadline = _DEADLINE.get()
    if deadline is not None and time.monotonic() > deadline:
        raise Overrun("the request ran out of time")


class Offload:
    def __init__(self, *, workers: int = 2, limit: float = 10.0, name: str = "gitd-offload"):
        self.workers = max(1, workers)
        self.limit = limit
        self.name = name
        self._work: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._slots: asyncio.Semaphore | None = None

    @property
    def slots(self) -> asyncio.Semaphore:
        if self._slots is None:  # created on the loop that uses it
            self._slots = asyncio.Semaphore(self.workers)
        return self._slots

    def _serve(self) -> None:
        while True:
            self._work.get()()

    def _start_threads(self) -> None:
        while len(self._threads) < self.workers:
            thread = threading.Thread(target=self._serve, name=f"{self.name}-{len(self._threads) + 1}", daemon=True)
            thread.start()
            self._threads.append(thread)

    async def run(self, function: Callable[..., T], /, *args: Any, what: str = "the request",
                  limit: float | None = None) -> T:
        """``function(*args)`` on an offload thread; ``Overrun`` once ``limit`` seconds have passed."""
        limit = self.limit if limit is None else limit
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + limit
        slots = self.slots
        try:
            await asyncio.wait_for(slots.acquire(), timeout=limit)
        except TimeoutError:
            raise Overrun(f"the server is busy: {what} waited more than {limit:g} s for a worker; try again later")
        future: asyncio.Future[T] = loop.create_future()
        too_long = (f"{what} took more than {limit:g} s and was stopped; the input is too large or too complex "
                    "for this server (or the server is very busy: try again later)")

        def settle(result: Any, error: BaseException | None) -> None:
            slots.release()
            if future.done():  # the request gave up waiting
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

        def job() -> None:
            result: Any = None
            error: BaseException | None = None
            token = _DEADLINE.set(deadline)
            try:
                if time.monotonic() > deadline:
                    raise Overrun(too_long)
                result = function(*args)
            except Overrun:  # check_deadline(): the same answer as the wait's own time-out
                error = Overrun(too_long)
            except Exception as exc:
                error = exc
            except BaseException as exc:  # never let it end the thread
                error = RuntimeError(f"{type(exc).__name__}: {exc}")
            finally:
                _DEADLINE.reset(token)
            try:
                loop.call_soon_threadsafe(settle, result, error)
            except RuntimeError:
                pass  # the loop is closed: the daemon stopped meanwhile

        self._start_threads()
        self._work.put(job)  # from here on, the job releases the slot whatever happens
        try:
            return await asyncio.wait_for(future, timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise Overrun(too_long)
