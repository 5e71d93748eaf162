"""A stand-in for the Kubernetes API server, for the daemon's side of the kubernetes runtimes
(no cluster runs here; the operators' own side is tested by calling their kopf handlers): the
few endpoints the daemon calls, answered as the API server answers them, with the objects in
memory. The daemon talks to it through the real ``kubernetes`` client, from a kubeconfig.

Pods are added by the test (``add_pod``), and so are their containers' log lines (``write``,
with the API server's RFC 3339 timestamp prefix); a followed log streams until the test ends
its container (``end``). A container with no log yet answers 400 "waiting to start", as the
API server does."""

from __future__ import annotations

import asyncio
import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.aio_server import AioServer


def _status(code: int, reason: str, message: str) -> web.Response:
    return web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                              "message": message, "reason": reason, "code": code}, status=code)


def _merge(into: dict[str, Any], patch: dict[str, Any]) -> None:
    """A JSON merge patch (RFC 7386), in place."""
    for key, value in patch.items():
        if value is None:
            into.pop(key, None)
        elif isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


class ContainerLog:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.ended = False
        self.readers = 0  # streams open now


class KubeApi:
    def __init__(self) -> None:
        self.custom: dict[tuple[str, str, str], dict[str, Any]] = {}  # (plural, namespace, name)
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.logs: dict[tuple[str, str, str], ContainerLog] = {}  # (namespace, pod, container)
        self.log_queries: list[dict[str, str]] = []
        app = web.Application()
        base = "/apis/{group}/{version}/namespaces/{ns}/{plural}"
        app.router.add_post(base, self.create_custom)
        app.router.add_route("*", base + "/{name}", self.one_custom)
        app.router.add_post("/api/v1/namespaces/{ns}/secrets", self.create_secret)
        app.router.add_route("*", "/api/v1/namespaces/{ns}/secrets/{name}", self.one_secret)
        app.router.add_get("/api/v1/namespaces/{ns}/pods", self.list_pods)
        app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}/log", self.pod_log)
        self.server = AioServer(app)
        self.stopped = False

    def start(self) -> KubeApi:
        self.server.start()
        return self

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.server.stop()

    def kubeconfig(self, path: Path) -> Path:
        """A kubeconfig file whose current context is this server (no credentials)."""
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": self.server.url}}],
            "users": [{"name": "test", "user": {}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}]}))
        return path

    # -- what the test does ----------------------------------------------------------------------
    def add_pod(self, namespace: str, name: str, labels: dict[str, str], created: datetime, *,
                containers: tuple[str, ...] = ("app",), init: tuple[str, ...] = ("fetch",),
                deleting: bool = False) -> None:
        meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels,
                                "creationTimestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ")}
        if deleting:
            meta["deletionTimestamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.pods[(namespace, name)] = {
            "apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"initContainers": [{"name": c, "image": "init"} for c in init],
                     "containers": [{"name": c, "image": "app"} for c in containers]}}

    def write(self, namespace: str, pod: str, container: str, *lines: str) -> None:
        """Log lines (each ``TIMESTAMP text``, ending in a newline) from a container."""
        self.logs.setdefault((namespace, pod, container), ContainerLog()).lines.extend(lines)

    def end(self, namespace: str, pod: str, container: str) -> None:
        self.logs.setdefault((namespace, pod, container), ContainerLog()).ended = True

    def readers(self) -> int:
        return sum(log.readers for log in self.logs.values())

    # -- the API ---------------------------------------------------------------------------------
    async def create_custom(self, request: web.Request) -> web.Response:
        body = await request.json()
        key = (request.match_info["plural"], request.match_info["ns"], body["metadata"]["name"])
        if key in self.custom:
            return _status(409, "AlreadyExists", f"{key[0]} {key[2]!r} already exists")
        self.custom[key] = body
        return web.json_response(body, status=201)

    async def one_custom(self, request: web.Request) -> web.Response:
        m = request.match_info
        key = (m["plural"], m["ns"], m["name"])
        if key not in self.custom:
            return _status(404, "NotFound", f"{m['plural']} {m['name']!r} not found")
        if request.method == "PATCH":
            _merge(self.custom[key], await request.json())
        elif request.method == "DELETE":
            return web.json_response(self.custom.pop(key))
        return web.json_response(self.custom[key])

    async def create_secret(self, request: web.Request) -> web.Response:
        body = await request.json()
        key = (request.match_info["ns"], body["metadata"]["name"])
        if key in self.secrets:
            return _status(409, "AlreadyExists", f"secrets {key[1]!r} already exists")
        self.secrets[key] = body
        return web.json_response(body, status=201)

    async def one_secret(self, request: web.Request) -> web.Response:
        key = (request.match_info["ns"], request.match_info["name"])
        if key not in self.secrets:
            return _status(404, "NotFound", f"secrets {key[1]!r} not found")
        if request.method == "PUT":
            self.secrets[key] = await request.json()
        elif request.method == "DELETE":
            return web.json_response(self.secrets.pop(key))
        return web.json_response(self.secrets[key])

    async def list_pods(self, request: web.Request) -> web.Response:
        wanted = dict(term.split("=", 1) for term in request.query.get("labelSelector", "").split(",") if term)
        items = [pod for (ns, _), pod in self.pods.items() if ns == request.match_info["ns"]
                 and all(pod["metadata"]["labels"].get(k) == v for k, v in wanted.items())]
        return web.json_response({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})

    async def pod_log(self, request: web.Request) -> web.StreamResponse:
        ns, name = request.match_info["ns"], request.match_info["name"]
        container = request.query.get("container", "")
        self.log_queries.append({"pod": name, **request.query})
        if (ns, name) not in self.pods:
            return _status(404, "NotFound", f'pods "{name}" not found')
        log = self.logs.get((ns, name, container))
        if log is None:
            return _status(400, "BadRequest", f'container "{container}" in pod "{name}" is waiting to start: '
                                              "PodInitializing")
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        follow = request.query.get("follow") == "true"
        tail = int(request.query["tailLines"]) if "tailLines" in request.query else None
        sent = max(len(log.lines) - tail, 0) if tail is not None else 0
        log.readers += 1
        try:
            while True:
                for line in log.lines[sent:]:
                    text = line if request.query.get("timestamps") == "true" else line.partition(" ")[2]
                    await resp.write(text.encode())
                sent = len(log.lines)
                if log.ended or not follow:
                    break
                if request.transport is None or request.transport.is_closing():
                    return resp  # the reader went away
                if self.stopped:  # the API server going away cuts its streams
                    request.transport.abort()
                    return resp
                await asyncio.sleep(0.02)
            await resp.write_eof()
        finally:
            log.readers -= 1
        return resp
