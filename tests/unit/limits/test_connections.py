"""ConnectionLimiter: connections per client address and in all."""

import resource

from gitd.limits.connections import MIN_CONNECTIONS, ConnectionLimiter, automatic_cap, raise_descriptor_limit
from gitd.metrics import Counter


def test_per_address_and_total_limits():
    refused = Counter("refused", "", ("transport", "reason"))
    limiter = ConnectionLimiter(total=3, per_address=2, refused=refused)
    assert limiter.admit("a", "http") and limiter.admit("a", "ssh")
    assert not limiter.admit("a", "http")  # a third from a
    assert limiter.admit("b", "http")
    assert not limiter.admit("c", "ssh")  # three open in all
    assert refused.value(transport="http", reason="address") == 1
    assert refused.value(transport="ssh", reason="total") == 1
    limiter.release("a")
    assert limiter.open == 2 and limiter.from_address("a") == 1
    assert limiter.admit("c", "http")
    for address in ("a", "b", "c"):
        limiter.release(address)
    assert limiter.open == 0 and limiter.from_address("a") == 0


def test_the_automatic_cap_leaves_descriptors_for_everything_else():
    assert automatic_cap(20_000, 64) == 20_000 - 256 - 6 * 64
    assert automatic_cap(300, 64) == MIN_CONNECTIONS


def test_the_soft_descriptor_limit_is_raised_to_the_hard_one():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        if hard != resource.RLIM_INFINITY and hard > 64:
            resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
            assert raise_descriptor_limit() == hard
            assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
