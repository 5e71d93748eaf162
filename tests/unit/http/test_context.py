"""JSON request bodies: an object, or a clear 400 (``read_json`` is ``json_object(parse_json_body(raw))``)."""

from __future__ import annotations

import pytest

from gitd.errors import BadRequest
from gitd.http.context import json_object, parse_json_body


def parse(raw: bytes, *, allow_empty: bool = True) -> dict:
    return json_object(parse_json_body(raw), allow_empty=allow_empty)


def test_a_json_object_body_is_parsed_and_an_empty_one_is_allowed_when_asked():
    assert parse(b'{"operation": "upload", "objects": []}') == {"operation": "upload", "objects": []}
    assert parse(b"  \n") == parse(b"null") == {}
    with pytest.raises(BadRequest, match="must be a JSON object"):
        parse(b"", allow_empty=False)


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"text"', b"7"])
def test_a_body_that_is_not_an_object_is_a_bad_request(raw):
    with pytest.raises(BadRequest, match="must be a JSON object"):
        parse(raw)


@pytest.mark.parametrize("raw", [b"{", b"\xff\xfe{}", b"{'a': 1}"])
def test_a_body_that_is_not_json_is_a_bad_request(raw):
    with pytest.raises(BadRequest, match="not valid JSON"):
        parse(raw)


def test_regression_json_body_nested_too_deep_is_a_bad_request():
    # json.loads raised RecursionError, which no handler caught (a 500).
    with pytest.raises(BadRequest, match="nested too deeply"):
        parse(b'{"objects": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")


def test_regression_json_body_with_a_number_of_5000_digits_is_a_bad_request():
    # json.loads raised a plain ValueError (Python's limit on converting long digit strings).
    with pytest.raises(BadRequest, match="not valid JSON"):
        parse(b'{"objects": [{"size": ' + b"1" * 5000 + b"}]}")
