from gitd.hub.bounded_cache import BoundedCache


def test_regression_listing_caches_are_bounded_by_what_they_hold():
    """The listing caches counted trees, not entries: 32 listings of 200k entries stayed in memory."""
    cache: BoundedCache[str] = BoundedCache(1000)
    for i in range(100):
        cache.put(i, f"v{i}", 200)
    assert cache.weight <= 1000 and len(cache) == 5
    assert cache.get(99) == "v99" and cache.get(0) is None
    cache.put("huge", "x", 251)  # over a quarter of the bound: not kept at all
    assert cache.get("huge") is None and cache.weight <= 1000


def test_least_recently_used_goes_first():
    cache: BoundedCache[int] = BoundedCache(30)
    for key in "abc":
        cache.put(key, 1, 7)
    cache.get("a")
    cache.put("d", 1, 7)
    cache.put("e", 1, 7)
    assert cache.get("b") is None and cache.get("a") == 1
