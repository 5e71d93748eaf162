"""Answering a request with another server's streamed response: what a plugin's reverse proxy
needs (plugin API 1.4: ``gitd.relay_response``; the inference plugin's proxy)."""

from __future__ import annotations

from collections.abc import Collection

import aiohttp
from aiohttp import web

# Headers that belong to one connection, never relayed (either way), and credentials.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "transfer-encoding", "upgrade", "authorization", "proxy-connection"})


async def relay_response(upstream: aiohttp.ClientResponse, request: web.Request, *,
                         drop: Collection[str] = ()) -> web.StreamResponse:
    """Answer ``request`` with ``upstream``'s status, headers (less hop-by-hop ones and those
    named in ``drop``, lower case) and body, chunk by chunk as it arrives (server-sent events
    reach the client as they are sent). Read ``upstream`` with ``auto_decompress=False`` so
    bytes and lengths pass unchanged. A client gone mid-stream raises ``ConnectionError``
    here; leaving the ``upstream`` context then closes its connection too."""
    resp = web.StreamResponse(status=upstream.status, reason=upstream.reason)
    for key, value in upstream.headers.items():
        low = key.lower()
        if low not in HOP_BY_HOP and low not in drop:
            resp.headers.add(key, value)
    await resp.prepare(request)
    if request.method != "HEAD":
        async for chunk in upstream.content.iter_any():
            await resp.write(chunk)
    await resp.write_eof()
    return resp
