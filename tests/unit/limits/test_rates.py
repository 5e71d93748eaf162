"""Token buckets per client address and per token."""

import base64

from gitd.limits.rates import RateLimits, TokenBuckets, token_key


def test_a_bucket_allows_its_burst_then_its_rate():
    buckets = TokenBuckets(rate=2.0, burst=3)
    assert [buckets.take("a", now=100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = buckets.take("a", now=100.0)
    assert 0.49 < wait <= 0.5  # one token comes back every 0.5 s
    assert buckets.take("a", now=100.5) == 0.0
    assert buckets.take("b", now=100.5) == 0.0  # other keys have their own bucket
    assert buckets.take("a", now=1000.0) == 0.0 and buckets.take("a", now=1000.0) == 0.0  # refilled, capped


def test_memory_is_bounded_and_the_least_recently_used_key_goes_first():
    buckets = TokenBuckets(rate=1.0, burst=1, max_keys=3)
    for key in ("a", "b", "c"):
        buckets.take(key, now=0.0)
    buckets.take("a", now=0.0)  # a is used again: b is now the oldest
    buckets.take("d", now=0.0)
    assert len(buckets) == 3
    assert buckets.take("a", now=0.0) > 0  # still remembered (and empty)
    assert buckets.take("b", now=0.0) == 0.0  # forgotten: starts full again
    for i in range(10_000):
        buckets.take(f"flood{i}", now=1.0)
    assert len(buckets) == 3


def test_the_token_key_is_the_credential_not_the_user_name_beside_it():
    def basic(user: str, secret: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()

    assert token_key(basic("x", "gitd_abc")) == token_key(basic("y", "gitd_abc")) == token_key("Bearer gitd_abc")
    assert token_key(basic("x", "gitd_abc")) != token_key(basic("x", "gitd_abd"))
    assert token_key(None) is None and token_key("") is None
    assert len(token_key("Basic !!!not-base64" + "x" * 10_000) or b"") == 16  # hashed, bounded


def test_rate_limits_check_the_address_then_the_token():
    limits = RateLimits(per_address=TokenBuckets(rate=0.001, burst=2), per_token=TokenBuckets(rate=0.001, burst=1))
    assert limits.enabled
    assert limits.check("10.0.0.1", "Bearer t1") is None
    over = limits.check("10.0.0.2", "Bearer t1")  # same token from another address
    assert over is not None and over[0] == "token" and over[1] > 0
    assert limits.check("10.0.0.1", None) is None  # no token: the address's second request
    assert limits.check("10.0.0.1", None)[0] == "address"
    assert not RateLimits().enabled and RateLimits().check("a", "Bearer b") is None
