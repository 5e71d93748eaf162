"""csghub-cli's inference and finetune commands (``csghub-cli inference list/start/stop``,
``finetune list/start/stop``).

Inference instances (``/run/...``) and finetune instances (``/finetune/...``) are answered
by the plugins that run them, through the hooks ``gitd_run_instances`` and
``gitd_run_instance`` (plugin API 1.4; the built-in ``inference`` plugin's endpoints and
``finetune`` plugin's jobs). Without such a plugin the list is empty and an instance id
names nothing (404 in the native envelope), never an unrouted 404 or a 405."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from gitd.access.rules import Access, AccessLevel
from gitd.errors import Forbidden, GitdError, NotFound, Unauthorized
from gitd.http.context import principal
from gitd.http.routing import Match
from gitd.hub.native_accounts import V1, envelope
from gitd.hub.openapi import ApiRoute
from gitd.plugins.contrib import HTTPError
from gitd.plugins.host import PluginHost
from gitd.repos import RepoService

MODEL = V1 + "/models/{ns}/{name}"


def _owner_or_admin(request: web.Request, m: Match) -> None:
    who = principal(request)
    if who.account is None:
        raise Unauthorized("authentication required")
    if who.account.name != m.params["user"] and not (who.account.is_admin and who.cap >= AccessLevel.ADMIN):
        raise Forbidden("you may list only your own instances")


async def no_instance(request: web.Request, m: Match) -> web.StreamResponse:
    if principal(request).account is None:
        raise Unauthorized("authentication required")
    raise NotFound(f"instance {m.params['id'][:40]} does not exist: this server runs no inference or "
                   "finetune instances")


class RunInstances:
    """``/run/...`` (``kind`` inference) or ``/finetune/...`` (``kind`` finetune): instances,
    from the plugins that run them."""

    def __init__(self, plugins: PluginHost | None, repos: RepoService | None, access: Access | None,
                 kind: str = "inference"):
        self.kind = kind
        self.plugins = plugins
        self.repos = repos
        self.access = access

    async def run_instances(self, request: web.Request, m: Match) -> web.StreamResponse:
        _owner_or_admin(request, m)
        if self.plugins is None:
            return envelope([])
        user = m.params["user"]
        answers = await asyncio.to_thread(self.plugins.collect, "gitd_run_instances", kind=self.kind, user=user)
        return envelope([item for _, items in answers for item in items])

    async def run_instance(self, request: web.Request, m: Match) -> web.StreamResponse:
        who = principal(request)
        if who.account is None:
            raise Unauthorized("authentication required")
        if self.plugins is None or self.repos is None or self.access is None:
            return await no_instance(request, m)
        repo = self.repos.find("model", m.params["ns"], m.params["name"])
        self.access.require(who, repo, AccessLevel.READ)
        assert repo is not None
        info = self.repos.info(repo)
        action = {"GET": "get"}.get(request.method) or request.path.rsplit("/", 1)[-1]

        def ask() -> dict[str, Any] | None:
            for _, call in self.plugins.implementations("gitd_run_instance"):  # type: ignore[union-attr]
                answer = call(kind=self.kind, repo=info, instance=m.params["id"], action=action,
                              user=who.account.name)  # type: ignore[union-attr]
                if answer is not None:
                    return answer
            return None

        try:
            answer = await asyncio.to_thread(ask)
        except HTTPError as exc:
            error = GitdError(exc.message, code="RunInstance")
            error.status = exc.status
            raise error from None
        if answer is None:
            raise NotFound(f"instance {m.params['id'][:40]} does not exist (model {info.full_name})")
        return envelope(answer)


def run_routes(plugins: PluginHost | None = None, repos: RepoService | None = None,
               access: Access | None = None) -> list[ApiRoute]:
    runs = RunInstances(plugins, repos, access)
    finetunes = RunInstances(plugins, repos, access, kind="finetune")
    return [
        ApiRoute("GET", V1 + "/user/{user}/run/model", "Your inference instances", runs.run_instances, "runs"),
        ApiRoute("GET", V1 + "/user/{user}/finetune/instances", "Your finetune instances (fine-tune jobs)",
                 finetunes.run_instances, "runs"),
        ApiRoute("GET", MODEL + "/run/{id}", "An inference instance", runs.run_instance, "runs"),
        ApiRoute("PUT", MODEL + "/run/{id}/start", "Start an inference instance", runs.run_instance, "runs"),
        ApiRoute("PUT", MODEL + "/run/{id}/stop", "Stop an inference instance", runs.run_instance, "runs"),
        ApiRoute("PUT", MODEL + "/finetune/{id}/start", "Run a failed or cancelled fine-tune job again",
                 finetunes.run_instance, "runs"),
        ApiRoute("PUT", MODEL + "/finetune/{id}/stop", "Cancel a fine-tune job", finetunes.run_instance, "runs"),
    ]
