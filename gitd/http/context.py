"""Typed keys for what the HTTP app and its requests carry."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gitd.access.auth import Authenticator
from gitd.access.rules import Principal
from gitd.errors import BadRequest

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
    """The URL clients use to reach this server: the configured one or the request's own."""
    if public_url:
        return public_url.rstrip("/")
    return f"{request.scheme}://{request.host}"


async def read_json(request: web.Request, *, allow_empty: bool = True) -> dict[str, Any]:
    """A JSON object body ({} for an empty one, if allowed); BadRequest for anything else."""
    return parse_json_object(await request.read(), allow_empty=allow_empty)


def parse_json_object(raw: bytes, *, allow_empty: bool = True) -> dict[str, Any]:
    """``read_json`` without the request: the body's JSON object, or BadRequest."""
    if not raw.strip():
        if allow_empty:
            return {}
        raise BadRequest("the request body must be a JSON object")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # also: not UTF-8, a number of over 4300 digits, nested too deep
        raise BadRequest("the request body is not valid JSON")
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body
