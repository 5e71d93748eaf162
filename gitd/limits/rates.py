"""Request rate limits: a token bucket per key (a client address, an API token).

Each key may make ``burst`` requests at once and ``rate`` requests a second after
that; a request over the limit learns how many seconds to wait (Retry-After). Memory is
bounded: at most ``max_keys`` buckets are kept, the least recently used dropped first (a
dropped key starts again with a full bucket, which only ever errs on the generous side).
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import math
import time


class TokenBuckets:
    def __init__(self, rate: float, burst: float, max_keys: int = 100_000):
        self.rate = rate
        self.burst = max(burst, 1.0)
        self.max_keys = max(max_keys, 1)
        self._buckets: collections.OrderedDict[object, tuple[float, float]] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: object, now: float | None = None) -> float:
        """Spend one request of ``key``'s bucket: 0.0 if allowed, else the seconds until it would be."""
        now = time.monotonic() if now is None else now
        buckets = self._buckets
        entry = buckets.get(key)
        if entry is None:
            tokens = self.burst
            if len(buckets) >= self.max_keys:
                buckets.popitem(last=False)
        else:
            tokens = min(self.burst, entry[0] + (now - entry[1]) * self.rate)
            buckets.move_to_end(key)
        if tokens >= 1.0:
            buckets[key] = (tokens - 1.0, now)
            return 0.0
        buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate if self.rate > 0 else math.inf


def token_key(authorization: str | None) -> bytes | None:
    """What identifies the credential in an Authorization header (the token itself, not the
    user name Basic carries beside it), hashed so the buckets keep no secret and no long key."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    secret = value.strip()
    if scheme.lower() == "basic":
        try:
            secret = base64.b64decode(secret, validate=True).decode("utf-8", "replace").partition(":")[2]
        except (binascii.Error, ValueError):
            pass  # a broken header is a key of its own
    return hashlib.blake2b(secret.encode("utf-8", "replace"), digest_size=16).digest()


class RateLimits:
    """The per-address and per-token limits the HTTP dispatch applies (either may be off)."""

    def __init__(self, per_address: TokenBuckets | None = None, per_token: TokenBuckets | None = None):
        self.per_address = per_address
        self.per_token = per_token

    @property
    def enabled(self) -> bool:
        return self.per_address is not None or self.per_token is not None

    def check(self, address: str | None, authorization: str | None) -> tuple[str, float] | None:
        """None if the request may go on, else (what was over its limit, seconds to wait)."""
        now = time.monotonic()
        if self.per_address is not None and address is not None:
            wait = self.per_address.take(address, now)
            if wait:
                return "address", wait
        if self.per_token is not None:
            key = token_key(authorization)
            if key is not None:
                wait = self.per_token.take(key, now)
                if wait:
                    return "token", wait
        return None
