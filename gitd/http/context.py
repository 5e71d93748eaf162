"""Typed keys for what the HTTP app and its requests carry."""

from __future__ import annotations

from aiohttp import web

from gitd.access import Principal
from gitd.auth import Authenticator

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
