import pytest

from gitd.hub.files import RangeNotSatisfiable, parse_range


@pytest.mark.parametrize(("header", "expected"), [
    (None, None), ("bytes=0-9", (0, 10)), ("bytes=5-", (5, 100)), ("bytes=-10", (90, 100)),
    ("bytes=90-500", (90, 100)), ("bytes=0-0", (0, 1)), ("bytes=1-2,5-6", None), ("items=1-2", None),
    ("bytes=-500", (0, 100)),
])
def test_parse_range(header, expected):
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=150-200", "bytes=9-3", "bytes=-0"])
def test_unsatisfiable(header):
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, 100)
