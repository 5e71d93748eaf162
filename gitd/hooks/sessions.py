"""Push sessions: one short-lived token per git receive-pack the daemon runs.

git's receive hooks present the token when they call back (``gitd.hooks.api``), which
ties each hook call to the push, the repository and the principal the daemon
authorised.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from gitd.access.rules import Principal
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


class PushSessions:
    """Short-lived tokens, one per push, that authenticate hook callbacks."""

    def __init__(self, ttl: float = 7200.0):
        self.ttl = ttl
        self._by_token: dict[str, PushSession] = {}

    @contextmanager
    def open(self, repo: Repo, principal: Principal, via: str) -> Iterator[PushSession]:
        """A token valid while the block runs (the receive-pack), and never again."""
        session = PushSession(secrets.token_urlsafe(32), repo, principal, via, time.monotonic())
        self._by_token[session.token] = session
        try:
            yield session
        finally:
            self._by_token.pop(session.token, None)

    def get(self, token: str | None) -> PushSession | None:
        if not token:
            return None
        session = self._by_token.get(token)
        if session is None or time.monotonic() - session.started > self.ttl:
            return None
        return session
