"""Seed inputs: for every target, valid inputs of the kinds real clients send (git-lfs 3.x
over SSH, git's hooks, huggingface_hub's commits and batch requests). Every seed is
accepted by its target (test_fuzz.py checks it), so the fuzzers start from the parsers'
success paths. ``write_corpus`` puts them in files for atheris.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from tests.fuzz.world import NEW_OBJECT, OBJECTS

FLUSH, DELIM = b"0000", b"0001"
HELLO, EMPTY = OBJECTS
ZERO = "0" * 40
SHA1, SHA2 = "1" * 40, "a" * 40


def oid(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pkt(text: str | bytes) -> bytes:
    data = text.encode() + b"\n" if isinstance(text, str) else text
    return b"%04x" % (len(data) + 4) + data


def request(command: str, *args: str, lines: list[str] | None = None, data: bytes | None = None) -> bytes:
    out = pkt(command) + b"".join(pkt(a) for a in args)
    if lines is not None:
        out += DELIM + b"".join(pkt(line) for line in lines)
    elif data is not None:
        out += DELIM + (pkt(data) if data else b"")
    return out + FLUSH


QUIT = request("quit")

PKTLINE = [
    b"",
    FLUSH,
    request("version 1") + request("batch", "transfer=ssh", "hash-algo=sha256", lines=[f"{oid(HELLO)} 11"]),
    pkt("command=ls-refs") + pkt("agent=git/2.43.0") + DELIM + pkt("peel") + pkt("ref-prefix refs/heads/") + FLUSH,
    request("put-object " + oid(NEW_OBJECT), f"size={len(NEW_OBJECT)}", data=NEW_OBJECT),
]

UPLOAD, DOWNLOAD, AS_BOB, READ_ONLY = b"\x00", b"\x01", b"\x02", b"\x04"
LFS_TRANSFER = [
    UPLOAD + QUIT,
    UPLOAD + request("batch", "transfer=ssh", "hash-algo=sha256",
                     lines=[f"{oid(HELLO)} {len(HELLO)}", f"{oid(NEW_OBJECT)} {len(NEW_OBJECT)}"]) + QUIT,
    UPLOAD + request("put-object " + oid(NEW_OBJECT), f"size={len(NEW_OBJECT)}", data=NEW_OBJECT)
    + request("verify-object " + oid(NEW_OBJECT), f"size={len(NEW_OBJECT)}") + QUIT,
    UPLOAD + request("put-object " + oid(HELLO), f"size={len(HELLO)}", data=HELLO) + QUIT,
    UPLOAD + request("lock", "path=models/weights.bin", "refname=refs/heads/main")
    + request("list-lock", "limit=10") + request("list-locks", "path=models/weights.bin", "refname=refs/heads/main")
    + request("unlock 1", "refname=refs/heads/main") + QUIT,
    DOWNLOAD + request("batch", "transfer=basic", lines=[f"{oid(HELLO)} {len(HELLO)}", f"{oid(EMPTY)} 0"])
    + request("get-object " + oid(HELLO)) + request("get-object " + oid(EMPTY)) + QUIT,
    bytes([DOWNLOAD[0] | AS_BOB[0]]) + request("list-lock", "cursor=0", "limit=5") + QUIT,
    bytes([AS_BOB[0] | READ_ONLY[0] | DOWNLOAD[0]]) + request("get-object " + oid(HELLO)) + QUIT,
]

SSH_COMMAND = [
    b"git-upload-pack '/alice/one.git'",
    b"git-receive-pack 'alice/one.git'",
    b"git upload-pack '/datasets/alice/data-set_1'",
    b"git-upload-archive '/spaces/alice/demo.git'",
    b"git-lfs-authenticate /alice/one.git download",
    b"git-lfs-transfer alice/one upload",
    b"git-lfs-transfer '/codes/org.x/tool.v2.git' download",
]

_QUARANTINE = b"@REPO@/objects/tmp_objdir-incoming-Ab12Cd"
HOOK_BODY = [
    b"env GIT_OBJECT_DIRECTORY=" + _QUARANTINE + b"\nenv GIT_ALTERNATE_OBJECT_DIRECTORIES=@REPO@/objects\n"
    b"env GIT_QUARANTINE_PATH=" + _QUARANTINE + b"\noption ci.skip\noption reviewer=bob\n\n"
    + f"{ZERO} {SHA1} refs/heads/main\n{SHA1} {SHA2} refs/tags/v1.0\n".encode(),
    b"\n" + f"{SHA1} {ZERO} refs/heads/old\n".encode(),
    b"env GIT_OBJECT_DIRECTORY=@REPO@/./objects/\n\n" + f"{SHA1} {SHA2} refs/pr/3\n".encode(),
]


def hook_request(path: str = "/hook/pre-receive", body: bytes = b"", token: str = "tok-1") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: gitd\r\nX-Gitd-Push-Token: {token}\r\n"
    return (head + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


HOOK_HTTP = [
    b"\x00" + hook_request(body=HOOK_BODY[1]),
    b"\x07" + hook_request("/hook/post-receive", HOOK_BODY[0]),
    b"\x01" + hook_request(body=b"", token=""),
]


def ndjson(*items: tuple[str, dict]) -> bytes:
    return b"".join(json.dumps({"key": key, "value": value}).encode() + b"\n" for key, value in items)


_HEADER = ("header", {"summary": "Upload model", "description": "weights and config"})
HUB_COMMIT = [
    b"\x09" + ndjson(_HEADER, ("file", {"path": "config.json", "content": base64.b64encode(b'{"a": 1}').decode(),
                                         "encoding": "base64"})),
    b"\x00" + ndjson(("header", {"summary": "edit", "parentCommit": "abcdef1"}),
                     ("file", {"path": "notes/readme.txt", "content": "plain text", "encoding": "utf-8"}),
                     ("lfsFile", {"path": "model.safetensors", "algo": "sha256", "oid": oid(HELLO),
                                  "size": len(HELLO)}),
                     ("deletedFile", {"path": "README.md"}),
                     ("deletedFolder", {"path": "data/sub"})),
    b"\x40" + ndjson(("header", {"summary": "clear"}), ("deletedFolder", {"path": "/"}),
                     ("file", {"path": "a/b/c.txt", "content": ""})),
    b"\x3f" + b"\n\n" + ndjson(_HEADER, ("deletedFolder", {"path": "data"})).replace(b"\n", b"\r\n"),
    # 0x80: lines over 96 bytes are big (a 64 KiB line in the daemon): the header, and files whose
    # base64 is decoded in pieces (the second has escapes in its content: it is parsed whole).
    b"\x85" + ndjson(("header", {"summary": "Upload weights", "description": "w" * 100}),
                     ("file", {"path": "weights/shard-1.bin", "content": base64.b64encode(bytes(range(256))).decode()}),
                     ("file", {"path": "notes.md", "content": "# notes\n" * 20, "encoding": "utf-8"})),
]


def _batch(operation: str, *objects: tuple[str, int], **extra: object) -> bytes:
    return json.dumps({"operation": operation, "objects": [{"oid": o, "size": s} for o, s in objects],
                       **extra}).encode()


LFS_BATCH = [
    _batch("upload", (oid(HELLO), len(HELLO)), (oid(NEW_OBJECT), len(NEW_OBJECT)), transfers=["basic", "multipart"],
           ref={"name": "refs/heads/main"}, hash_algo="sha256"),
    _batch("download", (oid(HELLO), len(HELLO)), (oid(EMPTY), 0), transfers=["basic"]),
    _batch("download", ("0" * 64, 5), ref=None),
]

CREATE, LIST, VERIFY, UNLOCK, BOB, ADMIN = 0, 1, 2, 3, 4, 8
LFS_LOCKS = [
    bytes([CREATE]) + json.dumps({"path": "models/weights.bin", "ref": {"name": "refs/heads/main"}}).encode(),
    bytes([LIST]) + json.dumps({"path": "locked.bin"}).encode(),
    bytes([LIST]) + json.dumps({"id": 1, "cursor": 0, "limit": 10}).encode(),
    bytes([VERIFY]) + json.dumps({"limit": 100}).encode(),
    bytes([UNLOCK | BOB]) + json.dumps({"id": "1"}).encode(),
    bytes([UNLOCK | ADMIN]) + json.dumps({"id": "1", "force": True}).encode(),
]

SEEDS: dict[str, list[bytes]] = {
    "pktline": PKTLINE,
    "lfs_transfer": LFS_TRANSFER,
    "ssh_command": SSH_COMMAND,
    "hook_body": HOOK_BODY,
    "hook_http": HOOK_HTTP,
    "hub_commit": HUB_COMMIT,
    "lfs_batch": LFS_BATCH,
    "lfs_locks": LFS_LOCKS,
}


# Words of each format, for atheris's dictionary (libFuzzer splices them into inputs).
_ODD = ["\u00b2", "\u0661", "9" * 20, str(2**63), "-1", "\\ud800", "\x00", "..", ".git", "\n", "\r\n"]
TOKENS: dict[str, list[str]] = {
    "pktline": ["0000", "0001", "0002", "0004", "fff0", "fff1", "ffff", "\n"],
    "lfs_transfer": ["version 1", "batch", "put-object ", "verify-object ", "get-object ", "lock", "list-lock",
                     "list-locks", "unlock ", "quit", "size=", "path=", "refname=", "limit=", "cursor=", "id=",
                     "force=true", "transfer=ssh", "hash-algo=sha256", oid(HELLO), oid(NEW_OBJECT), "0000", "0001",
                     *_ODD],
    "ssh_command": ["git-upload-pack", "git-receive-pack", "git-upload-archive", "git-lfs-authenticate",
                    "git-lfs-transfer", "git ", " upload", " download", "datasets/", "spaces/", "codes/", ".git",
                    "'", '"', "\\", "~", *_ODD],
    "hook_body": ["env GIT_OBJECT_DIRECTORY=", "env GIT_ALTERNATE_OBJECT_DIRECTORIES=", "env GIT_QUARANTINE_PATH=",
                  "option ", "@REPO@/objects", "/tmp_objdir-incoming-", ":", ZERO, SHA1, "refs/heads/", "\n\n",
                  *_ODD],
    "hook_http": ["POST ", "/hook/pre-receive", "/hook/post-receive", " HTTP/1.1", "\r\n", "\r\n\r\n",
                  "Content-Length: ", "X-Gitd-Push-Token: ", "Transfer-Encoding: chunked", *_ODD],
    "hub_commit": ['{"key": "header", "value": {', '"summary": ', '"description": ', '"parentCommit": ',
                   '{"key": "file", "value": {', '{"key": "lfsFile", "value": {', '{"key": "deletedFile", "value": {',
                   '{"key": "deletedFolder", "value": {', '"path": ', '"content": ', '"encoding": "utf-8"',
                   '"encoding": "base64"', '"oid": ', '"size": ', '"algo": "sha256"', "}}", "\\ud800", *_ODD],
    "lfs_batch": ['"operation": "upload"', '"operation": "download"', '"transfers": ["basic"]', '"ref": ',
                  '"objects": [', '{"oid": ', '"size": ', '"hash_algo": ', f'"{oid(HELLO)}"', "1e999", "[[[[", *_ODD],
    "lfs_locks": ['"path": ', '"ref": {"name": ', '"id": ', '"cursor": ', '"limit": ', '"force": true',
                  "locked.bin", "1e999", "[[[[", *_ODD],
}


def write_dictionary(directory: Path, name: str) -> Path:
    """Target ``name``'s TOKENS as a libFuzzer dictionary file."""
    def quoted(token: str) -> str:
        data = token.encode("utf-8", "surrogatepass")
        return '"' + "".join(chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\x{b:02x}" for b in data) + '"'

    path = directory / f"{name}.dict"
    path.write_text("".join(f"{quoted(token)}\n" for token in TOKENS[name]))
    return path


def write_corpus(directory: Path, name: str) -> Path:
    """The seeds of target ``name`` as files in ``directory/name`` (kept if already there)."""
    folder = directory / name
    folder.mkdir(parents=True, exist_ok=True)
    for data in SEEDS[name]:
        (folder / f"seed-{hashlib.sha1(data).hexdigest()[:16]}").write_bytes(data)
    return folder
