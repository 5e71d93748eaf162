"""Push sessions: one short-lived token per git receive-pack the daemon runs.

git's receive hooks present the token when they call back (``gitd.hooks.api``), which
ties each hook call to the push, the repository and the principal the daemon
authorised. ``PushSessions`` is the interface; ``InProcessPushSessions`` keeps them in
this process's memory (one daemon process). Several worker processes would share them
through another implementation of the same interface; callers would not change.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from gitd.access.rules import Principal
from gitd.clock import SYSTEM_CLOCK, Clock
from gitd.plugins.events import PushEvent
from gitd.store import Repo


@dataclass
class PushSession:
    """One git receive-pack run that the daemon started and its hooks may call back for.

    ``approved`` is the event pre-receive let through (without its quarantine);
    post-receive work is only recorded for its updates.
    """

    token: str
    repo: Repo
    principal: Principal
    via: str
    started: float
    approved: PushEvent | None = None
    intent: int | None = None
    pre_receive_done: bool = field(default=False)
    post_receive_done: bool = field(default=False)


class PushSessions(Protocol):
    """Short-lived tokens, one per push, that authenticate hook callbacks."""

    def open(self, repo: Repo, principal: Principal, via: str) -> AbstractContextManager[PushSession]:
        """A session whose token is valid while the block runs (the receive-pack), never again."""

    def get(self, token: str | None) -> PushSession | None:
        """The open session with this token, or None (unknown, closed or past its lifetime)."""


class InProcessPushSessions:
    """``PushSessions`` in this process's memory."""

    def __init__(self, ttl: float = 7200.0, *, clock: Clock = SYSTEM_CLOCK):
        self.ttl = ttl
        self.clock = clock
        self._by_token: dict[str, PushSession] = {}

    @contextmanager
    def open(self, repo: Repo, principal: Principal, via: str) -> Iterator[PushSession]:
        """A token valid while the block runs (the receive-pack), and never again."""
        session = PushSession(secrets.token_urlsafe(32), repo, principal, via, self.clock.monotonic())
        self._by_token[session.token] = session
        try:
            yield session
        finally:
            self._by_token.pop(session.token, None)

    def get(self, token: str | None) -> PushSession | None:
        if not token:
            return None
        session = self._by_token.get(token)
        if session is None or self.clock.monotonic() - session.started > self.ttl:
            return None
        return session
