"""The Hub API's view of LFS content (``gitd.hub.lfscontent.LfsContent``) over LfsService:
a pointer whose object the repository holds is shown, sized and streamed as the file it
stands for."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from gitd.lfs.service import LfsService


class ServiceContent:
    def __init__(self, lfs: LfsService, *, url_ttl: int = 3600):
        self.lfs = lfs
        self.url_ttl = url_ttl

    def stored_size(self, repo_id: int, oid: str) -> int | None:
        return self.lfs.size(repo_id, oid)

    async def open(self, repo_id: int, oid: str, start: int, end: int) -> AsyncIterator[bytes]:
        reader = await self.lfs.open(repo_id, oid, start, end)
        try:
            async for chunk in reader:
                yield chunk
        finally:
            await reader.aclose()

    def download_url(self, repo_id: int, oid: str) -> str | None:
        return self.lfs.download_url(repo_id, oid, self.url_ttl)

    def local_path(self, repo_id: int, oid: str) -> Path | None:
        return self.lfs.local_path(repo_id, oid)
