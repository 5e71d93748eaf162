"""The NDJSON commit request, line by line (gitd.hub.commit_request.CommitParser), and big file
lines decoded into the quarantine as they are written (store_file)."""

from __future__ import annotations

import base64
import json

import pygit2
import pytest

from gitd.errors import BadRequest, PayloadTooLarge
from gitd.git.quarantine import ObjectQuarantine
from gitd.hub.commit_request import CommitParser, InlineFile, LfsFile, StreamedFile, store_file
from gitd.hub.commits import AddFile, DeleteFile, DeleteFolder

OID = "a" * 64


def line(key: str, value: object) -> bytes:
    return json.dumps({"key": key, "value": value}).encode()


def parse(*lines: bytes, max_inline_file: int = 1000, **options: int) -> tuple[list, object]:
    parser = CommitParser(max_inline_file=max_inline_file, **options)
    ops = [op for raw in lines if (op := parser.line([bytearray(raw)])) is not None]
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


def test_a_commit_line_with_a_number_of_5000_digits_is_a_bad_request():
    # json.loads raised a plain ValueError (Python's limit on converting long digit strings).
    with pytest.raises(BadRequest, match="must be a JSON object"):
        parse(line("header", {"summary": "s"}), b'{"key": "lfsFile", "value": {"size": ' + b"1" * 5000 + b"}}")


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
    # A 4096-character path or a long encoding name came back whole in the message (and the
    # X-Error-Message header).
    for value in ({"path": "a" * 4000, "content": 7}, {"path": "a", "content": "", "encoding": "x" * 50_000},
                  {"path": "b/" * 1000 + "..", "content": ""}, {"path": "a" * 4000, "content": "!"}):
        with pytest.raises(BadRequest) as caught:
            parse(line("header", {"summary": "s"}), line("file", value))
        assert len(caught.value.message) < 600
    with pytest.raises(BadRequest) as caught:
        parse(line("header", {"summary": "s"}), line("k" * 50_000, {}))
    assert len(caught.value.message) < 600


# -- big lines (over inline_json: parsed on a thread by the daemon) ----------------------------------
@pytest.fixture
def quarantine(tmp_path):
    repo = pygit2.init_repository(str(tmp_path / "r.git"), bare=True)
    q = ObjectQuarantine(tmp_path / "r.git")
    yield repo, q
    q.discard()


def test_a_big_file_line_is_decoded_in_pieces_into_the_quarantine(quarantine):
    repo, q = quarantine
    data = bytes(range(256)) * 40 + b"end"
    ops, _ = parse(line("header", {"summary": "s"}),
                   line("file", {"path": "big.bin", "content": base64.b64encode(data).decode()}),
                   max_inline_file=100_000, inline_json=256, b64_chunk=64)
    assert isinstance(ops[0], StreamedFile) and ops[0].size == len(data)
    added = store_file(q, ops[0])
    assert added.path == "big.bin" and q.repository()[added.oid].data == data
    assert added.oid not in repo  # in the quarantine only


def test_regression_a_big_file_line_commits_its_value_s_content_and_no_other():
    """The content found first (without parsing the line) belonged to another object, and the value's
    was empty: the file got the other object's content."""
    raw = json.dumps({"key": "file", "content": base64.b64encode(b"not this").decode(),
                      "value": {"path": "a.txt", "content": base64.b64encode(b"this").decode()},
                      "pad": "x" * 300}).encode()
    ops, _ = parse(line("header", {"summary": "s"}), raw, inline_json=256)
    assert ops == [InlineFile("a.txt", b"this")]
    raw = json.dumps({"key": "file", "content": base64.b64encode(b"not this").decode(),
                      "value": {"path": "a.txt", "content": ""}, "pad": "x" * 300}).encode()
    ops, _ = parse(line("header", {"summary": "s"}), raw, inline_json=256)
    assert ops == [InlineFile("a.txt", b"")]


@pytest.mark.parametrize("content", ["QUJD" * 100 + "A===", "QUJD" * 100 + "QQ", "QU=D" + "QUJD" * 100])
def test_big_file_lines_with_bad_base64_are_bad_requests(quarantine, content):
    _, q = quarantine
    with pytest.raises(BadRequest, match="not valid base64"):
        ops, _ = parse(line("header", {"summary": "s"}), line("file", {"path": "a", "content": content}),
                       inline_json=256, b64_chunk=64)
        store_file(q, ops[0])


def test_big_lines_other_than_files_are_refused():
    with pytest.raises(BadRequest, match="'deletedFile' commit line is larger than 256 bytes"):
        parse(line("header", {"summary": "s"}), line("deletedFile", {"path": "a", "pad": "x" * 300}), inline_json=256)
    ops, head = parse(line("header", {"summary": "s", "description": "x" * 300}), inline_json=256)
    assert ops == [] and head.description == "x" * 300


def test_a_big_file_over_the_inline_limit_is_too_large():
    with pytest.raises(PayloadTooLarge):
        parse(line("header", {"summary": "s"}), line("file", {"path": "a", "content": "QUJD" * 100}),
              max_inline_file=299, inline_json=256)
    assert parse(line("header", {"summary": "s"}), line("file", {"path": "a", "content": "QUJD" * 100}),
                 max_inline_file=300, inline_json=256)[0][0].size == 300


def test_store_file_writes_an_inline_file(quarantine):
    _, q = quarantine
    added = store_file(q, InlineFile("a.txt", b"hello"))
    assert added == AddFile("a.txt", str(pygit2.hash(b"hello")))
