"""The inference plugin: OpenAI-compatible endpoints for the hub's models.

Routes (``/api/plugins/inference``): ``POST /endpoints`` creates an endpoint (the model's
revision pinned to its commit), ``GET /endpoints`` lists yours, ``GET|DELETE /endpoints/{id}``,
``POST /endpoints/{id}/start|stop``, ``GET /endpoints/{id}/logs``, ``GET /endpoints/{id}/health``,
and the proxy ``/endpoints/{id}/v1/...`` (``/v1/models``, ``/v1/completions``,
``/v1/chat/completions``) with the endpoint's access rules (private: its owner's token) and
rate limit. CSGHub's ``/api/v1/.../run/...`` answer through ``gitd_run_instances`` and
``gitd_run_instance``; ``gitd endpoints ...`` commands. docs/inference.md is the guide.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import sys
import threading
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from gitd.plugin_api import (
    CliCommand,
    HTTPError,
    PluginContext,
    PluginError,
    PluginRequest,
    RepoInfo,
    Response,
    Route,
    TaskEvent,
    TokenBuckets,
    hookimpl,
    relay_response,
)

from .local import EngineRunner, Unavailable
from .settings import ENGINES, LOCAL_ENGINES, Settings
from .store import FAILED, LIVE, RUNNING, SLEEPING, STOPPED, Endpoint, Endpoints

if TYPE_CHECKING:
    from .kube import KubernetesRuntime

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
WEIGHTS = (".safetensors",)
# Headers passed to the engine and back (nothing else: no credentials, no cookies).
REQUEST_HEADERS = ("Content-Type", "Accept")
NO_COOKIES = ("set-cookie",)


class InferencePlugin:
    def __init__(self, context: PluginContext):
        self.context = context
        self.settings = context.settings(Settings)
        self.settings.validate()
        self._hub_url = self.settings.hub_url.rstrip("/")
        self._buckets: dict[int, TokenBuckets] = {}
        self._lock = threading.Lock()
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @cached_property
    def endpoints(self) -> Endpoints:
        return Endpoints(self.context.storage)

    @cached_property
    def runner(self) -> EngineRunner:
        root = Path(self.settings.work_dir) if self.settings.work_dir else self.context.cache_dir
        return EngineRunner(root, self.settings, self.endpoints, lambda: self._hub_url, self._token)

    @cached_property
    def kube(self) -> KubernetesRuntime:
        from .kube import KubernetesRuntime

        return KubernetesRuntime(self.settings, self.endpoints, self._token)

    def _token(self, endpoint: Endpoint) -> str | None:
        return self.context.secrets.decrypt(endpoint.token).decode() if endpoint.token else None

    # -- hooks ---------------------------------------------------------------------------------
    @hookimpl
    def gitd_http_routes(self) -> list:
        return [
            Route("POST", "/endpoints", self.create, signed_in=True, summary="create an inference endpoint"),
            Route("GET", "/endpoints", self.list_endpoints, signed_in=True, summary="your inference endpoints"),
            Route("GET", "/endpoints/{id}", self.get, signed_in=True, summary="an endpoint's status"),
            Route("DELETE", "/endpoints/{id}", self.delete, signed_in=True, summary="delete an endpoint"),
            Route("PATCH", "/endpoints/{id}", self.update, signed_in=True,
                  summary="change an endpoint's sleep time, rate limit or visibility"),
            Route("POST", "/endpoints/{id}/start", self.start, signed_in=True, summary="start an endpoint"),
            Route("POST", "/endpoints/{id}/stop", self.stop, signed_in=True, summary="stop an endpoint"),
            Route("GET", "/endpoints/{id}/logs", self.logs, signed_in=True, summary="an endpoint's engine log"),
            Route("GET", "/endpoints/{id}/health", self.health, summary="whether the endpoint answers"),
            Route("GET", "/endpoints/{id}/v1/{path*}", self.proxy, summary="the OpenAI-compatible API (GET)"),
            Route("POST", "/endpoints/{id}/v1/{path*}", self.proxy, summary="the OpenAI-compatible API (POST)"),
        ]

    @hookimpl
    def gitd_cli_commands(self) -> list:
        return [
            CliCommand("endpoints", "list", "list inference endpoints and their status", self.cli_list),
            CliCommand("endpoints", "create", "create an endpoint on a public model (private: use the API)",
                       self.cli_create, _create_args),
            CliCommand("endpoints", "status", "an endpoint's status, reason and timings", self.cli_status, _id_arg),
            CliCommand("endpoints", "logs", "an endpoint's engine log", self.cli_logs, _id_arg),
            CliCommand("endpoints", "start", "start an endpoint (the daemon does it)", self.cli_start, _id_arg),
            CliCommand("endpoints", "stop", "stop an endpoint (the daemon does it)", self.cli_stop, _id_arg),
            CliCommand("endpoints", "delete", "delete an endpoint (the daemon stops it)", self.cli_delete, _id_arg),
        ]

    @hookimpl
    def gitd_task(self, event: TaskEvent) -> None:
        endpoint = self.endpoints.get(int(event.payload.get("id", 0)))
        if endpoint is None:
            return
        if event.task == "endpoint-start":
            self._start(endpoint)
        elif event.task == "endpoint-stop":
            self._stop(endpoint)
        elif event.task == "endpoint-delete":
            self._delete(endpoint)

    @hookimpl
    def gitd_repo_deleted(self, repo: RepoInfo) -> None:
        if repo.type == "model":
            for endpoint in self.endpoints.of_repo(repo.id):
                self._delete(endpoint)

    @hookimpl
    def gitd_repo_renamed(self, repo: RepoInfo) -> None:
        if repo.type == "model":
            for endpoint in self.endpoints.of_repo(repo.id):  # its engine fetches by name at its next start
                self.endpoints.set(endpoint.id, repo=repo.full_name)

    @hookimpl
    def gitd_daemon_started(self) -> None:
        if self.settings.runtime == "local":
            self.runner.suspend_all()

    @hookimpl
    def gitd_daemon_stopping(self) -> None:
        if "runner" in self.__dict__:
            self.runner.shutdown()

    @hookimpl
    def gitd_run_instances(self, kind: str, user: str) -> list[dict] | None:
        if kind != "inference":
            return None
        return [e.csghub(self._hub_url) for e in self.endpoints.all(owner=user)]

    @hookimpl
    def gitd_run_instance(self, kind: str, repo: RepoInfo, instance: str, action: str, user: str) -> dict | None:
        if kind != "inference" or not instance.isdigit():
            return None
        endpoint = self.endpoints.get(int(instance))
        if endpoint is None or endpoint.repo_id != repo.id or endpoint.owner != user:
            return None
        if action == "start":
            endpoint = self._start(endpoint)
        elif action == "stop":
            endpoint = self._stop(endpoint)
        return endpoint.csghub(self._hub_url)

    # -- the runtime ---------------------------------------------------------------------------
    def _start(self, endpoint: Endpoint) -> Endpoint:
        if endpoint.runtime == "kubernetes":
            self.kube.apply(endpoint, paused=False)
        elif endpoint.status not in LIVE or endpoint.id not in self.runner.running():
            self.runner.start(endpoint)
        return self.endpoints.get(endpoint.id) or endpoint

    def _stop(self, endpoint: Endpoint) -> Endpoint:
        if endpoint.runtime == "kubernetes":
            self.kube.apply(endpoint, paused=True)
            self.endpoints.set(endpoint.id, status=STOPPED)
        else:
            self.runner.stop(endpoint.id, STOPPED)
            if endpoint.status in (FAILED, SLEEPING):
                self.endpoints.set(endpoint.id, status=STOPPED)
        return self.endpoints.get(endpoint.id) or endpoint

    def _delete(self, endpoint: Endpoint) -> None:
        if endpoint.runtime == "kubernetes":
            self.kube.delete(endpoint)
        else:
            self.runner.forget(endpoint.id)
        self.endpoints.delete(endpoint.id)
        with self._lock:
            self._buckets.pop(endpoint.id, None)

    # -- HTTP: managing endpoints --------------------------------------------------------------
    def _seen(self, request: PluginRequest) -> None:
        if not self._hub_url and request.base_url:
            self._hub_url = request.base_url

    def _mine(self, request: PluginRequest) -> Endpoint:
        """The endpoint named in the path, if the caller owns it (404 otherwise, as for none)."""
        self._seen(request)
        raw = request.params.get("id", "")
        endpoint = self.endpoints.get(int(raw)) if raw.isdigit() else None
        if endpoint is None or endpoint.owner != request.user:
            raise HTTPError(404, f"no endpoint {raw[:40]}")
        return endpoint

    def _model(self, request: PluginRequest, name: str) -> RepoInfo:
        try:
            return request.repository(name, "model")
        except HTTPError as missing:
            for other in ("dataset", "space", "code"):
                try:
                    found = request.repository(name, other)
                except HTTPError:
                    continue
                raise HTTPError(400, f"{found.full_name} is a {other} repository, not a model") from None
            raise missing from None

    def create(self, request: PluginRequest) -> Response:
        self._seen(request)
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            raise HTTPError(400, 'the body is a JSON object with "model": "NS/NAME" (and optionally revision, '
                                 "name, engine, resources, private, rate_limit, sleep_time)")
        repo = self._model(request, body["model"])
        revision = body.get("revision") or repo.default_branch
        if not isinstance(revision, str):
            raise HTTPError(400, "revision must be a branch, tag or commit")
        view = self.context.view(repo)
        commit = view.resolve(revision)
        if commit is None:
            raise HTTPError(400, f"{repo.full_name} has no revision {revision[:100]!r}")
        self._check_model(repo, view, commit)
        engine = body.get("engine", "transformers")
        if engine not in ENGINES:
            raise HTTPError(400, f"engine must be one of {', '.join(ENGINES)}")
        if self.settings.runtime == "local" and engine not in LOCAL_ENGINES:
            raise HTTPError(400, f"the {engine} engine needs the kubernetes runtime (plugins.inference.runtime); "
                                 "the local runtime runs the transformers engine")
        name = body.get("name") or f"{repo.name}-{commit[:7]}"
        if not isinstance(name, str) or not NAME.match(name):
            raise HTTPError(400, "name: letters, digits, '.', '_', '-', at most 63, starting with a letter or digit")
        resources = body.get("resources") or {}
        if not isinstance(resources, dict) or not all(
                k in ("memory", "device", "cpu", "gpus", "node_selector", "replicas") for k in resources):
            raise HTTPError(400, "resources may set memory (bytes), device, cpu, gpus, node_selector, replicas")
        private = body.get("private", True)
        rate, sleep = body.get("rate_limit"), body.get("sleep_time")
        _check_policy(body)
        if self.endpoints.by_name(request.user or "", name) is not None:
            raise HTTPError(409, f"you already have an endpoint named {name}")
        token = self.context.secrets.encrypt(request.repo_token(repo, float(self.settings.token_ttl)))
        endpoint = self.endpoints.add(
            name=name, owner=request.user, repo_id=repo.id, repo=repo.full_name, revision=revision, commit_id=commit,
            engine=engine, resources=resources, private=private, rate_limit=rate, sleep_time=sleep,
            status="pending", token=token, runtime=self.settings.runtime)
        endpoint = self._start(endpoint)
        return Response(endpoint.public(request.base_url), status=201)

    def _check_model(self, repo: RepoInfo, view: Any, commit: str) -> None:
        if view.entry(commit, "config.json") is None:
            raise HTTPError(400, f"{repo.full_name} has no config.json at {commit[:12]}: not a transformers model")
        if not any(entry.path.endswith(WEIGHTS) for entry in view.walk(commit)):
            raise HTTPError(400, f"{repo.full_name} has no safetensors weights at {commit[:12]}")

    def list_endpoints(self, request: PluginRequest) -> list[dict]:
        self._seen(request)
        return [e.public(request.base_url) for e in self.endpoints.all(owner=request.user)]

    def get(self, request: PluginRequest) -> dict:
        endpoint = self._mine(request)
        if endpoint.runtime == "kubernetes" and self.settings.runtime == "kubernetes":
            try:
                endpoint = self.kube.refresh(endpoint)
            except Exception as exc:  # the cluster unreachable: answer what is known, say why
                self.context.log.warning("endpoint %s: cannot read its resource: %s", endpoint.id, exc)
        return endpoint.public(request.base_url)

    def update(self, request: PluginRequest) -> dict:
        endpoint = self._mine(request)
        body = request.json()
        if not isinstance(body, dict) or not body or set(body) - {"sleep_time", "rate_limit", "private"}:
            raise HTTPError(400, "the body sets sleep_time (seconds, 0: never), rate_limit (a minute; null: the "
                                 "default) or private")
        _check_policy(body)
        return (self.endpoints.set(endpoint.id, **body) or endpoint).public(request.base_url)

    def delete(self, request: PluginRequest) -> Response:
        self._delete(self._mine(request))
        return Response(b"", status=204)

    def start(self, request: PluginRequest) -> dict:
        endpoint = self._mine(request)
        # A fresh read token, in the caller's name: starting again after the last one expired works.
        repo = self._model(request, endpoint.repo)
        token = self.context.secrets.encrypt(request.repo_token(repo, float(self.settings.token_ttl)))
        endpoint = self.endpoints.set(endpoint.id, token=token) or endpoint
        return self._start(endpoint).public(request.base_url)

    def stop(self, request: PluginRequest) -> dict:
        return self._stop(self._mine(request)).public(request.base_url)

    def logs(self, request: PluginRequest) -> Response:
        endpoint = self._mine(request)
        return Response(self.runner.log(endpoint.id).tail(), content_type="text/plain")

    # -- HTTP: the proxy -----------------------------------------------------------------------
    def _reachable(self, request: PluginRequest) -> Endpoint:
        """The endpoint, if the caller may use it: a private one needs its owner's token."""
        raw = request.params.get("id", "")
        endpoint = self.endpoints.cached(int(raw)) if raw.isdigit() else None
        if endpoint is not None and endpoint.private:
            if request.user is None:
                raise HTTPError(401, "this endpoint is private: send a token (Authorization: Bearer ...)")
            if request.user != endpoint.owner:
                endpoint = None
        if endpoint is None:
            raise HTTPError(404, f"no endpoint {raw[:40]}")
        return endpoint

    def _limit(self, endpoint: Endpoint) -> None:
        per_minute = self.settings.rate_limit if endpoint.rate_limit is None else endpoint.rate_limit
        if per_minute <= 0:
            return
        with self._lock:
            buckets = self._buckets.get(endpoint.id)
            if buckets is None or buckets.rate != per_minute / 60.0:
                buckets = self._buckets[endpoint.id] = TokenBuckets(per_minute / 60.0, self.settings.burst, 1)
            wait = buckets.take(endpoint.id)
        if wait > 0:
            raise _TooMany(wait)

    async def health(self, request: PluginRequest) -> web.StreamResponse:
        endpoint = await asyncio.to_thread(self._reachable, request)
        if endpoint.status != RUNNING:
            return web.json_response({"status": endpoint.status, "reason": endpoint.reason}, status=503)
        return await self._forward(request, endpoint, "health", wake=False)

    async def proxy(self, request: PluginRequest) -> web.StreamResponse:
        self._seen(request)
        endpoint = self._reachable(request)  # from memory, but for the first request in a second
        try:
            self._limit(endpoint)
        except _TooMany as exc:
            return web.json_response(
                {"error": {"message": f"rate limit of endpoint {endpoint.id} reached; retry in {exc.wait:.1f}s",
                           "type": "rate_limit_error", "code": "rate_limit_exceeded"}},
                status=429, headers={"Retry-After": str(max(1, round(exc.wait)))})
        return await self._forward(request, endpoint, "v1/" + request.params.get("path", ""), wake=True)

    def session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._loop = loop
            self._session = aiohttp.ClientSession(
                cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False,
                connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        return self._session

    async def _forward(self, request: PluginRequest, endpoint: Endpoint, path: str, *,
                       wake: bool) -> web.StreamResponse:
        if endpoint.status in (STOPPED, FAILED) or (not wake and endpoint.status != RUNNING):
            return _unavailable(endpoint.status, endpoint.reason or f"the endpoint is {endpoint.status}")
        if endpoint.runtime == "kubernetes":
            base = self.kube.service_url(endpoint)
        else:
            port = self.runner.port(endpoint.id)
            if port is None:  # asleep, loading, or gone: wait for it on a thread
                try:
                    port = await asyncio.to_thread(self.runner.ensure_running, endpoint.id)
                except Unavailable as exc:
                    return _unavailable(exc.status, exc.message)
            base = f"http://127.0.0.1:{port}"
        raw: web.Request = request.raw
        url = f"{base}/{path}" + (f"?{raw.query_string}" if raw.query_string else "")
        headers = {k: request.headers[k] for k in REQUEST_HEADERS if k in request.headers}
        if endpoint.runtime == "local":
            headers["Authorization"] = f"Bearer {self.runner.key(endpoint.id)}"
        guard = self.runner.serving(endpoint.id) if endpoint.runtime == "local" else contextlib.nullcontext()
        try:
            with guard:
                async with self.session().request(request.method, url, data=request.body or None,
                                                  headers=headers, allow_redirects=False) as up:
                    # A client gone mid-stream: the engine's connection closes with it, and its
                    # generation stops at the next token.
                    return await relay_response(up, raw, drop=NO_COOKIES)
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise HTTPError(502, f"the endpoint's engine is not answering ({type(exc).__name__})") from None

    # -- command line --------------------------------------------------------------------------
    def _find(self, raw: str) -> Endpoint:
        endpoint = self.endpoints.get(int(raw)) if raw.isdigit() else None
        if endpoint is None:
            raise PluginError(f"no endpoint {raw}")
        return endpoint

    def cli_list(self, args: argparse.Namespace) -> int:
        for e in self.endpoints.all():
            print(f"{e.id}\t{e.owner}/{e.name}\t{e.repo}@{e.commit_id[:12]}\t{e.engine}\t{e.status}\t{e.reason or ''}")
        return 0

    def cli_status(self, args: argparse.Namespace) -> int:
        endpoint = self._find(args.id)
        info = {**endpoint.public(), "port": endpoint.port, "pid": endpoint.pid}  # the engine here (local runtime)
        for key in ("name", "owner", "model", "revision", "commit", "engine", "status", "reason", "private",
                    "runtime", "port", "pid", "timings"):
            print(f"{key}: {info[key] if info[key] not in (None, '') else '-'}")
        return 0

    def cli_logs(self, args: argparse.Namespace) -> int:
        sys.stdout.write(self.runner.log(self._find(args.id).id).tail().decode("utf-8", "replace"))
        return 0

    def cli_create(self, args: argparse.Namespace) -> int:
        repo = self.context.find_repo(args.model, "model")
        if repo is None:
            raise PluginError(f"no model named {args.model}")
        if repo.private:
            raise PluginError(f"{repo.full_name} is private: create its endpoint through the API "
                              "(POST /api/plugins/inference/endpoints), which mints its read token in your name")
        view = self.context.view(repo)
        commit = view.resolve(args.revision or repo.default_branch)
        if commit is None:
            raise PluginError(f"{repo.full_name} has no revision {args.revision}")
        try:
            self._check_model(repo, view, commit)
        except HTTPError as exc:
            raise PluginError(exc.message) from None
        name = args.name or f"{repo.name}-{commit[:7]}"
        owner = args.owner or repo.namespace
        if self.endpoints.by_name(owner, name) is not None:
            raise PluginError(f"{owner} already has an endpoint named {name}")
        endpoint = self.endpoints.add(name=name, owner=owner, repo_id=repo.id, repo=repo.full_name,
                                      revision=args.revision or repo.default_branch, commit_id=commit,
                                      engine="transformers", private=not args.public, status="pending",
                                      runtime=self.settings.runtime)
        self.context.submit(repo, "endpoint-start", {"id": endpoint.id}, key=f"endpoint-start:{endpoint.id}")
        print(f"endpoint {endpoint.id} ({owner}/{name}) on {repo.full_name}@{commit[:12]}: start queued")
        return 0

    def _queue(self, args: argparse.Namespace, task: str, what: str) -> int:
        endpoint = self._find(args.id)
        repo = self.context.find_repo(endpoint.repo, "model")
        self.context.submit(repo, task, {"id": endpoint.id}, key=f"{task}:{endpoint.id}")
        print(f"endpoint {endpoint.id}: {what} queued")
        return 0

    def cli_start(self, args: argparse.Namespace) -> int:
        return self._queue(args, "endpoint-start", "start")

    def cli_stop(self, args: argparse.Namespace) -> int:
        return self._queue(args, "endpoint-stop", "stop")

    def cli_delete(self, args: argparse.Namespace) -> int:
        return self._queue(args, "endpoint-delete", "delete")


class _TooMany(Exception):
    def __init__(self, wait: float):
        self.wait = wait


def _check_policy(body: dict) -> None:
    """An endpoint's sleep_time, rate_limit and private, as a create or update body sets them."""
    for key in ("rate_limit", "sleep_time"):
        value = body.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
            raise HTTPError(400, f"{key} must be a number >= 0")
    if not isinstance(body.get("private", True), bool):
        raise HTTPError(400, "private must be true or false")


def _unavailable(status: str, message: str) -> web.Response:
    retry = {"Retry-After": "5"} if status not in (STOPPED, FAILED) else {}
    return web.json_response({"error": {"message": message, "type": "unavailable", "code": status}},
                             status=503, headers=retry)


def _id_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", metavar="ID", help="the endpoint's number (gitd endpoints list)")


def _create_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="NS/NAME")
    parser.add_argument("--revision", help="branch, tag or commit (default: the default branch), pinned to its commit")
    parser.add_argument("--name", help="the endpoint's name (default: MODEL-COMMIT)")
    parser.add_argument("--owner", help="the account that owns it (default: the model's namespace)")
    parser.add_argument("--public", action="store_true", help="anyone may call it (default: its owner's token)")
