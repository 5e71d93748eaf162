"""csghub-cli's inference and finetune commands (``csghub-cli inference list/start/stop``,
``finetune list/start/stop``). Finetune instances are the fine-tune plugin's jobs: these
routes answer through its routes (``PluginRoutes.call``) in CSGHub's envelope; without that
plugin the list is empty and an instance id names nothing (404 in the native envelope),
never an unrouted 404 or a 405. Inference: no instances yet."""

from __future__ import annotations

from aiohttp import web

from gitd.access.rules import AccessLevel
from gitd.errors import Forbidden, GitdError, NotFound, Unauthorized
from gitd.http.context import principal
from gitd.http.plugin_routes import PluginRoutes
from gitd.http.routing import Match
from gitd.hub.native_accounts import V1, envelope
from gitd.hub.openapi import ApiRoute
from gitd.plugins.contrib import HTTPError

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


FINETUNE = "finetune"  # the plugin that runs fine-tune jobs (gitd_plugins.finetune)


class FinetuneInstances:
    """CSGHub's finetune routes, answered by the fine-tune plugin's own routes."""

    def __init__(self, plugins: PluginRoutes | None):
        self.plugins = plugins

    async def _call(self, method: str, path: str, request: web.Request, params: dict[str, str]) -> object:
        if self.plugins is None or self.plugins.declared(FINETUNE, method, path) is None:
            raise LookupError(path)
        try:
            return await self.plugins.call(FINETUNE, method, path, request, params)
        except HTTPError as exc:
            error = GitdError(exc.message)
            error.status = exc.status
            error.code = {400: "BadRequest", 403: "Forbidden", 404: "NotFound", 409: "Conflict"}.get(
                exc.status, "PluginError")
            raise error from None

    async def instances(self, request: web.Request, m: Match) -> web.StreamResponse:
        """A user's finetune instances (jobs): their own."""
        try:
            return envelope(await self._call("GET", "/csghub/instances/{user}", request, dict(m.params)))
        except LookupError:
            return await instances(request, m)

    async def action(self, request: web.Request, m: Match) -> web.StreamResponse:
        params = {"ns": m.params["ns"], "name": m.params["name"], "id": m.params["id"],
                  "action": request.path.rsplit("/", 1)[-1]}
        try:
            return envelope(await self._call("PUT", "/csghub/models/{ns}/{name}/{id}/{action}", request, params))
        except LookupError:
            return await no_instance(request, m)


def run_routes(plugins: PluginRoutes | None = None) -> list[ApiRoute]:
    finetune = FinetuneInstances(plugins)
    return [
        ApiRoute("GET", V1 + "/user/{user}/run/model", "Your inference instances (none yet)", instances, "runs"),
        ApiRoute("GET", V1 + "/user/{user}/finetune/instances", "Your finetune instances (fine-tune jobs)",
                 finetune.instances, "runs", query={"per": "page size"}),
        ApiRoute("GET", MODEL + "/run/{id}", "An inference instance", no_instance, "runs"),
        ApiRoute("PUT", MODEL + "/run/{id}/start", "Start an inference instance", no_instance, "runs"),
        ApiRoute("PUT", MODEL + "/run/{id}/stop", "Stop an inference instance", no_instance, "runs"),
        ApiRoute("PUT", MODEL + "/finetune/{id}/start", "Run a failed or cancelled fine-tune job again",
                 finetune.action, "runs"),
        ApiRoute("PUT", MODEL + "/finetune/{id}/stop", "Cancel a fine-tune job", finetune.action, "runs"),
    ]
