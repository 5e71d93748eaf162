"""Git LFS pointer files (https://github.com/git-lfs/git-lfs/blob/main/docs/spec.md)."""

from __future__ import annotations

import re
from typing import NamedTuple

SPEC_URL = "https://git-lfs.github.com/spec/v1"
MAX_POINTER_SIZE = 1024
OID_RE = re.compile(r"^[0-9a-f]{64}\Z")  # \Z, not $: '$' also matches before a final newline
_POINTER_RE = re.compile(
    rb"^version https://git-lfs\.github\.com/spec/v1\n"
    rb"(?:[a-z0-9.-]+ [^\n]*\n)*$"
)


class Pointer(NamedTuple):
    oid: str
    size: int


def parse_pointer(data: bytes) -> Pointer | None:
    """The (oid, size) a pointer names, or None if ``data`` is not an LFS pointer."""
    if len(data) > MAX_POINTER_SIZE or not data.startswith(b"version ") or not _POINTER_RE.match(data):
        return None
    fields: dict[str, str] = {}
    for line in data.decode("ascii", "replace").splitlines()[1:]:
        key, _, value = line.partition(" ")
        fields[key] = value
    oid = fields.get("oid", "")
    size = fields.get("size", "")
    if not oid.startswith("sha256:") or not OID_RE.match(oid[7:]) or not size.isdigit():
        return None
    return Pointer(oid[7:], int(size))


def format_pointer(oid: str, size: int) -> bytes:
    return f"version {SPEC_URL}\noid sha256:{oid}\nsize {size}\n".encode()
