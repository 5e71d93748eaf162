"""csghub-cli's inference and finetune commands (``csghub-cli inference list/start/stop``,
``finetune list/start/stop``): gitd runs no instances yet, so the lists are empty and an
instance id names nothing (404 in the native envelope), never an unrouted 404 or a 405."""

from __future__ import annotations

from aiohttp import web

from gitd.access.rules import AccessLevel
from gitd.errors import Forbidden, NotFound, Unauthorized
from gitd.http.context import principal
from gitd.http.routing import Match
from gitd.hub.native_accounts import V1, envelope
from gitd.hub.openapi import ApiRoute

MODEL = V1 + "/models/{ns}/{name}"


async def instances(request: web.Request, m: Match) -> web.StreamResponse:
    """A user's inference or finetune instances: their own (or any, for an admin)."""
    who = principal(request)
    if who.account is None:
        raise Unauthorized("authentication required")
    if who.account.name != m.params["user"] and not (who.account.is_admin and who.cap >= AccessLevel.ADMIN):
        raise Forbidden("you may list only your own instances")
    return envelope([])


async def no_instance(request: web.Request, m: Match) -> web.StreamResponse:
    if principal(request).account is None:
        raise Unauthorized("authentication required")
    raise NotFound(f"instance {m.params['id'][:40]} does not exist: this server runs no inference or "
                   "finetune instances")


def run_routes() -> list[ApiRoute]:
    return [
        ApiRoute("GET", V1 + "/user/{user}/run/model", "Your inference instances (none yet)", instances, "runs"),
        ApiRoute("GET", V1 + "/user/{user}/finetune/instances", "Your finetune instances (none yet)", instances,
                 "runs"),
        ApiRoute("GET", MODEL + "/run/{id}", "An inference instance", no_instance, "runs"),
        ApiRoute("PUT", MODEL + "/run/{id}/start", "Start an inference instance", no_instance, "runs"),
        ApiRoute("PUT", MODEL + "/run/{id}/stop", "Stop an inference instance", no_instance, "runs"),
        ApiRoute("PUT", MODEL + "/finetune/{id}/start", "Start a finetune instance", no_instance, "runs"),
        ApiRoute("PUT", MODEL + "/finetune/{id}/stop", "Stop a finetune instance", no_instance, "runs"),
    ]
