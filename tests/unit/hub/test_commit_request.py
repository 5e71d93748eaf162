"""The NDJSON commit request, line by line (gitd.hub.commit_request.CommitParser)."""

from __future__ import annotations

import base64
import json

import pytest

from gitd.errors import BadRequest
from gitd.hub.commit_request import CommitParser, InlineFile, LfsFile, PayloadTooLarge
from gitd.hub.commits import DeleteFile, DeleteFolder

OID = "a" * 64


def line(key: str, value: object) -> bytes:
    return json.dumps({"key": key, "value": value}).encode()


def parse(*lines: bytes, max_inline_file: int = 1000) -> tuple[list, object]:
    parser = CommitParser(max_inline_file=max_inline_file)
    ops = [op for raw in lines if (op := parser.line(raw)) is not None]
    return ops, parser.finish()


def test_a_commit_request_gives_its_operations_and_message():
    ops, head = parse(
        line("header", {"summary": " Add files ", "description": "details", "parentCommit": "ABCdef1"}),
        line("file", {"path": "dir/a.txt", "content": base64.b64encode(b"hi").decode(), "encoding": "base64"}),
        line("file", {"path": "b.txt", "content": "text", "encoding": "utf-8"}),
        line("lfsFile", {"path": "w.bin", "algo": "sha256", "oid": OID, "size": 5}),
        line("deletedFile", {"path": "old.txt"}),
        line("deletedFolder", {"path": "/"}),
    )
    assert ops == [InlineFile("dir/a.txt", b"hi"), InlineFile("b.txt", b"text"), LfsFile("w.bin", OID, 5),
                   DeleteFile("old.txt"), DeleteFolder("")]
    assert (head.summary, head.message, head.parent) == ("Add files", "Add files\n\ndetails\n", "ABCdef1")


@pytest.mark.parametrize("lines, message", [
    ([], "empty commit request"),
    ([line("file", {"path": "a", "content": ""})], "first commit line must be the header"),
    ([b"[1]"], "must be a JSON object"),
    ([line("header", {"summary": "  "})], "summary"),
    ([line("header", {"summary": "s", "parentCommit": "xyz"})], "parentCommit"),
    ([line("header", {"summary": "s"}), line("copyFile", {"path": "a"})], "unknown commit operation"),
    ([line("header", {"summary": "s"}), line("lfsFile", {"path": "a", "oid": OID + "\n"})], "sha256 oid"),
    ([line("header", {"summary": "s"}), line("file", {"path": "../a", "content": ""})], "invalid path"),
])
def test_bad_commit_requests_are_bad_requests(lines, message):
    with pytest.raises(BadRequest, match=message):
        parse(*lines)


def test_an_inline_file_over_the_limit_is_too_large():
    with pytest.raises(PayloadTooLarge):
        parse(line("header", {"summary": "s"}), line("file", {"path": "a", "content": "x" * 11, "encoding": "utf-8"}),
              max_inline_file=10)


def test_regression_commit_line_nested_too_deep_is_a_bad_request():
    # json.loads raised RecursionError, which the handler did not catch (a 500).
    with pytest.raises(BadRequest, match="must be a JSON object"):
        parse(line("header", {"summary": "s"}), b"[" * 100_000 + b"]" * 100_000)


@pytest.mark.parametrize("header, key, value", [
    ({"summary": "s"}, "file", {"path": "a.txt", "content": "\ud800", "encoding": "utf-8"}),
    ({"summary": "s"}, "file", {"path": "dir/\udc80.txt", "content": ""}),
    ({"summary": "s"}, "deletedFile", {"path": "\udc80"}),
    ({"summary": "fix \ud800"}, "deletedFile", {"path": "a.txt"}),
    ({"summary": "s", "description": "\udfff"}, "deletedFile", {"path": "a.txt"}),
])
def test_regression_commit_text_with_a_lone_surrogate_is_a_bad_request(header, key, value):
    # JSON can carry lone surrogates ("\ud800"); encoding them for git raised UnicodeEncodeError.
    with pytest.raises(BadRequest):
        parse(line("header", header), line(key, value))


def test_regression_commit_errors_quote_long_values_cut_short():
    # A 64 MiB path or encoding name came back whole in the message (and the X-Error-Message header).
    for value in ({"path": "a" * 50_000, "content": 7}, {"path": "a", "content": "", "encoding": "x" * 50_000},
                  {"path": "b/" * 20_000 + "..", "content": ""}):
        with pytest.raises(BadRequest) as caught:
            parse(line("header", {"summary": "s"}), line("file", value))
        assert len(caught.value.message) < 600
    with pytest.raises(BadRequest) as caught:
        parse(line("header", {"summary": "s"}), line("k" * 50_000, {}))
    assert len(caught.value.message) < 600
