from gitd.metrics import Histogram


def test_histogram_buckets_are_cumulative_and_bounds_inclusive():
    h = Histogram("t_seconds", "test", ("route",), buckets=(0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 1.0, 7.0):
        h.observe(value, route="x")
    h.observe(0.2, route="y")
    lines = h.render()
    assert 't_seconds_bucket{route="x",le="0.1"} 2' in lines
    assert 't_seconds_bucket{route="x",le="1"} 4' in lines
    assert 't_seconds_bucket{route="x",le="+Inf"} 5' in lines
    assert 't_seconds_count{route="x"} 5' in lines
    assert 't_seconds_sum{route="x"} 8.65' in lines
    assert 't_seconds_bucket{route="y",le="0.1"} 0' in lines
    assert h.count(route="x") == 5 and h.count(route="y") == 1 and h.count(route="z") == 0
