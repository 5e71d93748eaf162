"""Typed keys for what the HTTP app and its requests carry."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from gitd.access.auth import Authenticator
from gitd.access.rules import Principal
from gitd.errors import BadRequest, PayloadTooLarge
from gitd.http.offload import Offload

# JSON bodies up to this size are parsed on the loop (well under a millisecond); larger
# ones on a thread. Nesting is bounded by the JSON parser's recursion check (a 400).
INLINE_JSON = 64 * 1024
# Largest JSON body read unless a route allows more. json.loads holds the GIL for the whole
# parse (about 10 ms per 100,000 values), even on another thread: bodies stay small.
JSON_MAX = 1024 * 1024

PRINCIPAL = web.RequestKey("principal", Principal)
AUTHENTICATOR = web.AppKey("authenticator", Authenticator)


def principal(request: web.Request) -> Principal:
    """The caller, from the Authorization header (cached per request).

    Anonymous without credentials; raises Unauthorized for bad credentials.
    """
    cached = request.get(PRINCIPAL)
    if cached is None:
        cached = request.app[AUTHENTICATOR].principal_from_header(request.headers.get("Authorization"))
        request[PRINCIPAL] = cached
    return cached


def base_url(request: web.Request, public_url: str = "") -> str:
    """The URL clients use to reach this server: the configured ``server.public_url``, else the
    address this connection came in on (never the client's Host header, which anyone can set
    to send the links the server hands out elsewhere)."""
    if public_url:
        return public_url.rstrip("/")
    sockname = request.transport.get_extra_info("sockname") if request.transport is not None else None
    if not sockname:
        return f"{request.scheme}://127.0.0.1"
    host, port = sockname[0], sockname[1]
    if ":" in host:
        host = f"[{host}]"
    return f"{request.scheme}://{host}:{port}"


async def read_limited(request: web.Request, limit: int, what: str = "the request body") -> bytes:
    """The whole body, refused with 413 as soon as it is larger than ``limit`` bytes (before it is read,
    when it says its length)."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"{what} is larger than {limit} bytes")
    buf = bytearray()
    async for chunk in request.content.iter_chunked(1 << 16):
        buf += chunk
        if len(buf) > limit:
            raise PayloadTooLarge(f"{what} is larger than {limit} bytes")
    return bytes(buf)


def parse_json(raw: bytes | bytearray | str) -> Any:
    """JSON from a client: BadRequest (never a 500) for invalid or too deeply nested text."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise BadRequest("the request body is nested too deeply")
    except ValueError:  # also: not UTF-8, a number of over 4300 digits (int()'s limit)
        raise BadRequest("the request body is not valid JSON")


def parse_json_body(raw: bytes) -> Any:
    """A request body's JSON value: None for an empty (blank) body, else ``parse_json``'s."""
    return parse_json(raw) if raw.strip() else None


def json_object(body: Any, *, allow_empty: bool = True) -> dict[str, Any]:
    """A body's JSON value (None: empty) as the object a route expects ({} for an empty one, if
    allowed); BadRequest for anything else."""
    if body is None:
        if allow_empty:
            return {}
        raise BadRequest("the request body must be a JSON object")
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


async def read_json_value(request: web.Request, *, offload: Offload | None = None, max_size: int = JSON_MAX) -> Any:
    """The body as JSON (None when empty; 413 over ``max_size``), parsed off the loop when it is large."""
    raw = await read_limited(request, max_size, "the JSON body")
    if len(raw) <= INLINE_JSON:
        return parse_json_body(raw)
    if offload is not None:
        return await offload.run(parse_json_body, raw, what="parsing the JSON body")
    return await asyncio.to_thread(parse_json_body, raw)


async def read_json(request: web.Request, *, allow_empty: bool = True, offload: Offload | None = None,
                    max_size: int = JSON_MAX) -> dict[str, Any]:
    """A JSON object body ({} for an empty one, if allowed); BadRequest for anything else."""
    return json_object(await read_json_value(request, offload=offload, max_size=max_size), allow_empty=allow_empty)
