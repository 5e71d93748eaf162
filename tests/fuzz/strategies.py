"""hypothesis strategies for the fuzz targets: raw bytes, mutated seeds, and per target
near-valid inputs built from the format's own parts with odd values in them (numbers
written in other scripts' digits, lone surrogates, huge integers, NUL, deep nesting,
'..' paths, oids with a trailing newline, ...).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import strategies as st

from tests.fuzz.seeds import DELIM, FLUSH, HOOK_BODY, NEW_OBJECT, SEEDS, ZERO, oid, pkt
from tests.fuzz.world import OBJECTS

ODD_TEXT = [
    "", " ", "\n", "\r\n", "\t", "\x00", "a\x00b", "\ud800", "x\udfff",
    "\u00b2", "\u0661\u0662\u0663", "\U0001d7d7", "\u0663",  # digits that are not ASCII digits
    "9" * 20, "9" * 5000,
    "-1", "+1", "1_0", "0x10", " 12 ", "1e3", "0" * 30 + "1", ".", "..", ".git", ".GIT", "/", "//", "a/../b",
    "a\\b", "~", "~root/x", "é", "\u202e", "%2F", "refs/heads/main", "a" * 300, "x" * 5000, "'", '"', "\\",
]
GOOD_OIDS = [oid(OBJECTS[0]), oid(OBJECTS[1]), oid(NEW_OBJECT), "0" * 64]
ODD_OIDS = [GOOD_OIDS[0] + "\n", GOOD_OIDS[0].upper(), "a" * 63, "a" * 65, "g" * 64, "sha256:" + GOOD_OIDS[0]]
# Raw JSON text no encoder writes: huge numbers, infinities, deep nesting, escaped surrogates.
RAW_JSON = ["1" * 5000, "-" + "9" * 400, "1e999", "-1e999", "NaN", "Infinity", '"\\ud800"', '"\\udc00x"',
            "[" * 3000 + "]" * 3000, '{"a":' * 2000 + "1" + "}" * 2000, "1" * 400, str(2**63), str(2**64)]

odd_text = st.one_of(st.sampled_from(ODD_TEXT), st.text(max_size=24),
                     st.text(st.characters(codec=None, categories=["Cs", "Nd", "No", "Cc", "Zs"]), max_size=8))
small_text = st.one_of(st.sampled_from(ODD_TEXT[:30]), st.text(max_size=12))
odd_int = st.one_of(st.integers(-2, 1 << 20), st.integers(), st.sampled_from([2**63 - 1, 2**63, 2**64, -(2**63) - 1,
                                                                              10**30, 10**400]))
oids = st.one_of(st.sampled_from(GOOD_OIDS), st.sampled_from(ODD_OIDS), small_text)


class Raw:
    """JSON text put into an encoded document as is."""

    def __init__(self, text: str):
        self.text = text


json_leaf = st.one_of(st.none(), st.booleans(), odd_int, st.floats(), odd_text, st.sampled_from(RAW_JSON).map(Raw))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(small_text, inner, max_size=4)), max_leaves=10)


def dumps(value: Any) -> bytes:
    """JSON with ``Raw`` parts inserted verbatim (json.dumps cannot write them)."""
    raws: list[str] = []

    def default(obj: object) -> str:
        assert isinstance(obj, Raw)
        raws.append(obj.text)
        return f"@@raw{len(raws) - 1}@@"

    text = json.dumps(value, default=default)
    for i, raw in enumerate(raws):
        text = text.replace(f'"@@raw{i}@@"', raw, 1)
    return text.encode("utf-8", "surrogatepass")


def either(good: list[Any], odd: st.SearchStrategy = json_value) -> st.SearchStrategy:
    return st.one_of(st.sampled_from(good), odd)


def maybe_keys(**fields: st.SearchStrategy) -> st.SearchStrategy:
    """A dict with any subset of ``fields``."""
    return st.fixed_dictionaries({}, optional=fields)


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed with a few random edits: bytes flipped, inserted, deleted or repeated."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["flip", "insert", "delete", "repeat", "token"]))
        if kind == "flip" and pos < len(data):
            data[pos] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[pos:pos + draw(st.integers(1, 16))]
        elif kind == "repeat":
            data[pos:pos] = data[pos:pos + draw(st.integers(1, 64))] * draw(st.integers(1, 8))
        else:
            data[pos:pos] = draw(st.sampled_from(ODD_TEXT)).encode("utf-8", "surrogatepass")[:64]
    return bytes(data)


# -- per target -----------------------------------------------------------------------------------
frames = st.one_of(
    st.binary(max_size=64).map(pkt), small_text.map(lambda t: pkt(t.encode("utf-8", "surrogatepass"))),
    st.sampled_from([FLUSH, DELIM, b"0002", b"0003", b"0004", b"ffff", b"FFF0", b"fff1", b"00", b"zzzz", b"0x10"]),
    st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=32)).map(lambda t: b"%04x" % t[0] + t[1]),
)
pktline = st.lists(frames, max_size=12).map(b"".join)

_COMMANDS = ["batch", "put-object {}", "verify-object {}", "get-object {}", "lock", "list-lock", "list-locks",
             "unlock {}", "quit", "version 1", "version 2", "put-object", "unlock", "unlock 1 2"]
_ARG_KEYS = ["size", "path", "refname", "refspec", "limit", "cursor", "id", "force", "transfer", "hash-algo"]
# What a number can look like on the wire: ASCII digits, other scripts' digits, too many digits, signs.
numbers = st.one_of(st.integers(0, 20).map(str), st.sampled_from([
    "0", "11", "13", "\u00b2", "\u0661\u0662", "\U0001d7d7", "9" * 19, "9" * 20, "9" * 5000, "0" * 5000 + "1",
    str(2**63), str(2**64), "-1", "+1", " 1", "1 ", "1_0", "0x1", ""]))
_arg = st.one_of(
    st.tuples(st.sampled_from(["size", "limit", "cursor", "id"]), numbers).map("=".join),
    st.tuples(st.sampled_from(_ARG_KEYS), st.one_of(odd_text, numbers)).map("=".join),
    small_text)
_line = st.one_of(st.tuples(oids, numbers).map(" ".join), small_text)


@st.composite
def _transfer_request(draw: st.DrawFn) -> bytes:
    command = draw(st.sampled_from(_COMMANDS)).format(draw(st.one_of(oids, numbers, small_text)))
    out = pkt(command.encode("utf-8", "surrogatepass")) + b"".join(
        pkt(a.encode("utf-8", "surrogatepass")) for a in draw(st.lists(_arg, max_size=4)))
    body = draw(st.sampled_from(["none", "lines", "data"]))
    if body == "lines":
        lines = draw(st.lists(_line, max_size=4))
        out += DELIM + b"".join(pkt(line.encode("utf-8", "surrogatepass")) for line in lines)
    elif body == "data":
        out += DELIM + b"".join(pkt(chunk) for chunk in draw(st.lists(
            st.one_of(st.binary(min_size=1, max_size=32), st.just(NEW_OBJECT)), max_size=3)))
    return out + draw(st.sampled_from([FLUSH, FLUSH, DELIM, b""]))


lfs_transfer = st.tuples(st.binary(min_size=1, max_size=1), st.lists(_transfer_request(), max_size=5),
                         st.sampled_from([pkt(b"quit\n") + FLUSH, b""])).map(lambda t: t[0] + b"".join(t[1]) + t[2])

_paths = st.one_of(st.sampled_from(["alice/one", "/alice/one.git", "datasets/a/b", "/spaces/x/y.git", "codes/a/b/",
                                    "a", "a/b/c", "/", "~alice/one"]), small_text)
ssh_command = st.tuples(
    st.sampled_from(["git-upload-pack", "git-receive-pack", "git-upload-archive", "git upload-pack", "git-lfs-transfer",
                     "git-lfs-authenticate", "git", "scp", "git receive-pack", ""]),
    st.sampled_from(["'{}'", '"{}"', "{}", "'{}", "{} upload", "{} download", "{} upload extra", "{} \\"]),
    _paths,
).map(lambda t: f"{t[0]} {t[1].format(t[2])}".encode("utf-8", "surrogatepass"))

_hex40 = st.one_of(st.sampled_from([ZERO, "1" * 40, "a" * 40, "A" * 40, "a" * 39, "a" * 41]), small_text)
_env_value = st.one_of(st.sampled_from(["@REPO@/objects", "@REPO@/objects/tmp_objdir-incoming-x", "@REPO@",
                                        "@REPO@/../other", "/etc", "relative/objects", "@REPO@/objects:/etc",
                                        "@REPO@/objects\x00/x", "@REPO@//objects/./", ""]), small_text)
_header_line = st.one_of(
    st.tuples(st.sampled_from(["GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_QUARANTINE_PATH",
                               "PATH", ""]), _env_value).map(lambda t: f"env {t[0]}={t[1]}"),
    small_text.map("option {}".format), small_text)
_ref_line = st.one_of(st.tuples(_hex40, _hex40, st.one_of(st.sampled_from(["refs/heads/main", "refs/x\x00y", "HEAD"]),
                                                          small_text)).map(" ".join), small_text)
hook_body = st.tuples(st.lists(_header_line, max_size=4), st.lists(_ref_line, max_size=4)).map(
    lambda t: ("\n".join(t[0]) + "\n\n" + "\n".join(t[1]) + "\n").encode("utf-8", "surrogatepass"))

_length = st.one_of(st.integers(0, 40).map(str), small_text,
                    st.sampled_from(["9" * 5000, "9" * 19, "\u0661", "\u00b2", "-1", " 5", "0x5", "+5", "5 5", ""]))
_http_header = st.one_of(
    _length.map("Content-Length: {}".format), small_text.map("X-Gitd-Push-Token: {}".format),
    st.sampled_from(["Transfer-Encoding: chunked", "Connection: close", "Host: gitd", "no colon", ": empty name"]),
    small_text)


@st.composite
def _hook_http(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["POST", "GET", "post", "POST POST", ""]))
    path = draw(st.sampled_from(["/hook/pre-receive", "/hook/post-receive", "/nope", "*", ""]))
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2", "http/1.1", ""]))
    body = draw(st.one_of(st.sampled_from(HOOK_BODY), st.binary(max_size=48)))
    headers = draw(st.lists(_http_header, max_size=5))
    if draw(st.booleans()):
        headers.append(f"Content-Length: {len(body)}")
    eol = draw(st.sampled_from(["\r\n", "\r\n", "\n"]))
    head = eol.join([f"{method} {path} {version}", *headers]) + eol + eol
    return draw(st.binary(min_size=1, max_size=1)) + head.encode("utf-8", "surrogatepass") + body


hook_http = _hook_http()

_repo_path = st.one_of(st.sampled_from(["a.txt", "dir/b.bin", "README.md", "data", "data/a.txt/x", "data/sub",
                                        "/", "", ".git/config", "a//b", "a/./b", "a/"]), odd_text)
_base64 = st.one_of(st.binary(max_size=160).map(lambda b: base64.b64encode(b).decode()),
                    st.text("ABCD+/=", min_size=40, max_size=160))  # long enough for big lines (mode 0x80)
_op_value = maybe_keys(path=either(["x.txt"], _repo_path), content=either(["aGVsbG8=", "hello", ""], st.one_of(
                           _base64, json_value)),
                       encoding=either(["base64", "utf-8", None, "utf-16"]), oid=oids,
                       size=either([0, 11], json_value), algo=either(["sha256", "sha1"]))
_header_value = st.one_of(
    st.fixed_dictionaries({"summary": st.sampled_from(["Upload", "fix: x"])},
                          optional={"description": either(["text", ""], odd_text),
                                    "parentCommit": either(["abcdef1", "a" * 40], odd_text)}),
    maybe_keys(summary=either(["Upload", " "], odd_text), description=either(["text", ""]),
               parentCommit=either(["abcdef1", "a" * 40, "xyz"])))
_commit_line = st.one_of(
    st.tuples(st.sampled_from(["file", "lfsFile", "deletedFile", "deletedFolder", "copyFile", "header"]), _op_value,
              st.one_of(st.none(), _base64))  # a "content" outside the value, before it: not the file's
    .map(lambda t: dumps({"key": t[0], "value": t[1]} if t[2] is None else {"key": t[0], "content": t[2],
                                                                            "value": t[1]})),
    json_value.map(dumps), st.binary(max_size=16))
hub_commit = st.tuples(
    st.binary(min_size=1, max_size=1), _header_value.map(lambda h: dumps({"key": "header", "value": h})),
    st.lists(_commit_line, max_size=5), st.sampled_from([b"\n", b"\r\n", b"\n\n"]),
).map(lambda t: t[0] + t[3].join([t[1], *t[2]]))

_batch_object = st.one_of(maybe_keys(oid=either(GOOD_OIDS + ODD_OIDS), size=either([0, 11, 13], json_value)),
                          json_value)
lfs_batch = maybe_keys(
    operation=either(["upload", "download"]), transfers=either([["basic"], ["basic", "multipart"], ["ssh"]]),
    ref=either([{"name": "refs/heads/main"}, None]), objects=st.lists(_batch_object, max_size=5),
    hash_algo=either(["sha256", "sha512", None]),
).map(dumps)

_lock_id = either(["1", "2", 1, "x"], st.one_of(odd_int, odd_text))
lfs_locks = st.tuples(
    st.binary(min_size=1, max_size=1),
    maybe_keys(path=either(["a.bin", "locked.bin", "dir/../x"], _repo_path), ref=either([{"name": "refs/heads/main"}]),
               id=_lock_id, cursor=_lock_id, limit=either([1, 10, "5"], st.one_of(odd_int, odd_text)),
               force=st.booleans()).map(dumps),
).map(b"".join)

STRUCTURED = {"pktline": pktline, "lfs_transfer": lfs_transfer, "ssh_command": ssh_command, "hook_body": hook_body,
              "hook_http": hook_http, "hub_commit": hub_commit, "lfs_batch": lfs_batch, "lfs_locks": lfs_locks}


def inputs(name: str) -> st.SearchStrategy[bytes]:
    """Everything the fuzzers try on target ``name``: structured inputs most of the time."""
    return st.one_of(STRUCTURED[name], mutated(SEEDS[name]), st.binary(max_size=256))
