"""The content behind Git LFS pointers, as the Hub API needs it.

The Hub API shows a pointer file as the file it stands for (real size, ``lfs``
metadata, content streamed on resolve) only when the server holds the object.
``LfsContent`` is that seam: phase 1 ships ``NoLfsContent`` (no object is held, so a
pointer is served as the small text file it is, consistently in info, tree and
resolve); the LFS store implements it when it lands.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol


class LfsContent(Protocol):
    def stored_size(self, repo_id: int, oid: str) -> int | None:
        """The size of the object ``oid`` held for the repository, or None if it is not held."""

    def open(self, repo_id: int, oid: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes ``start`` to ``end`` (exclusive) of a held object, streamed."""


class NoLfsContent:
    """No LFS objects: pointer files are served as regular files."""

    def stored_size(self, repo_id: int, oid: str) -> int | None:
        return None

    def open(self, repo_id: int, oid: str, start: int, end: int) -> AsyncIterator[bytes]:
        raise LookupError(f"LFS object {oid} is not stored")
