"""Best-effort writes: when each API token was last used.

Recording a use must never delay or fail the request that used the token, even while
another process holds the database's write lock. So uses are noted in memory (the latest
per token), and one background thread writes them, a batch per transaction, waiting at most
``busy_timeout`` seconds for the lock; a batch that cannot be written stays noted and is
tried again a little later (a newer use of the same token replaces it). What is still noted
when the process exits is lost: the time of a token's last use is advice, not a record.
"""

from __future__ import annotations

import logging
import threading

from gitd.store.db import Store, utcnow

log = logging.getLogger("gitd.store")

# Uses noted at most (one per token); past it, new tokens' uses are dropped until a write.
MAX_PENDING = 100_000
RETRY_AFTER = 1.0


class LastUsed:
    def __init__(self, store: Store, *, busy_timeout: float = 1.0):
        self.store = store
        self.busy_timeout = busy_timeout
        self._pending: dict[int, str] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closing = False
        self.written = 0  # uses written so far (for tests and metrics)

    def token_used(self, token_id: int) -> None:
        """Note that ``token_id`` was used now; never blocks, never raises."""
        with self._lock:
            if len(self._pending) < MAX_PENDING or token_id in self._pending:
                self._pending[token_id] = utcnow()
            if self._thread is None and not self._closing:
                self._thread = threading.Thread(target=self._serve, name="gitd-last-used", daemon=True)
                self._thread.start()
        self._wake.set()

    def flush(self) -> bool:
        """Write what is noted, now, on this thread (waiting up to ``busy_timeout``); False if
        the database stayed locked (the uses stay noted)."""
        with self._lock:
            batch, self._pending = self._pending, {}
        if not batch:
            return True
        try:
            db = self.store.db
            db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            with self.store.transaction():
                db.conn.executemany("UPDATE tokens SET last_used_at = ? WHERE id = ? AND "
                                    "(last_used_at IS NULL OR last_used_at < ?)",
                                    [(when, token_id, when) for token_id, when in batch.items()])
        except Exception as exc:
            with self._lock:
                for token_id, when in batch.items():  # keep the newer of the two uses
                    if self._pending.get(token_id, "") < when:
                        self._pending[token_id] = when
            log.debug("recording the last use of %d token(s) failed (will retry): %s", len(batch), exc)
            return False
        self.written += len(batch)
        return True

    def close(self) -> None:
        """Stop the background thread (waiting for a write it has begun: the store must not
        close its connection under it), then write what is still noted, on this thread."""
        with self._lock:
            self._closing = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join()
        self.flush()

    def _serve(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._closing:
                return
            if not self.flush():
                self._wake.wait(RETRY_AFTER)  # a new use wakes it early; it retries either way
                self._wake.set()
