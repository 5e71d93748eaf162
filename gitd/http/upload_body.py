"""A client's upload body (an LFS object or one part of it), streamed and counted.

``received`` bytes are added to the LFS byte counter however the upload ends, and a
client that hangs up mid-body gets a BadRequest naming what to do (the storage layer
has already thrown the partial data away).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

from aiohttp import ClientPayloadError, web

from gitd.errors import BadRequest
from gitd.lfs.errors import ObjectMismatch
from gitd.metrics import Metrics


class UploadBody:
    def __init__(self, request: web.Request, metrics: Metrics, *, expected: int, what: str):
        if request.content_length is not None and request.content_length != expected:
            raise ObjectMismatch(f"{what} must be {expected} bytes, but the request carries "
                                 f"{request.content_length}")
        self._request = request
        self._metrics = metrics
        self.received = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._request.content.iter_any():
            self.received += len(chunk)
            yield chunk

    @contextmanager
    def interrupted(self, message: str) -> Iterator[None]:
        """Around the storage call: a lost client becomes BadRequest(``message``)."""
        try:
            yield
        except (ConnectionError, ClientPayloadError) as exc:
            raise BadRequest(message, detail=f"{type(exc).__name__}: {exc}") from None
        finally:
            self._metrics.lfs_bytes_received.inc(self.received, transport="http")
