"""The content behind Git LFS pointers, as the Hub API needs it.

The Hub API shows a pointer file as the file it stands for (real size, ``lfs``
metadata, content streamed on resolve) only when the server holds the object.
``LfsContent`` is that seam: ``gitd.lfs.content.ServiceContent`` implements it over the LFS store;
``NoLfsContent`` (no object is held, so a pointer is served as the small text file
it is, consistently in info, tree and resolve) serves a Hub without one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol


class LfsContent(Protocol):
    def stored_size(self, repo_id: int, oid: str) -> int | None:
        """The size of the object ``oid`` held for the repository, or None if it is not held."""

    def open(self, repo_id: int, oid: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes ``start`` to ``end`` (exclusive) of a held object, streamed."""

    def download_url(self, repo_id: int, oid: str) -> str | None:
        """A presigned URL on storage clients can reach (then resolve redirects there), or None."""

    def local_path(self, repo_id: int, oid: str) -> Path | None:
        """The local file of a held object (then resolve sends it with sendfile), or None."""


class NoLfsContent:
    """No LFS objects: pointer files are served as regular files."""

    def stored_size(self, repo_id: int, oid: str) -> int | None:
        return None

    def open(self, repo_id: int, oid: str, start: int, end: int) -> AsyncIterator[bytes]:
        raise LookupError(f"LFS object {oid} is not stored")

    def download_url(self, repo_id: int, oid: str) -> str | None:
        return None

    def local_path(self, repo_id: int, oid: str) -> Path | None:
        return None
