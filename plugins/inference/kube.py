"""The kubernetes runtime, the daemon's side: an endpoint is an ``InferenceEndpoint`` resource
(create, or replace its spec; ``paused`` to stop it) plus a Secret holding its read token;
the operator (``operator/handlers.py``) reconciles it and writes the status back, which
``refresh`` reads. The proxy reaches the engine at its Service."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from gitd.operator.client import custom_and_core

from .operator.render import GROUP, KIND, PLURAL, VERSION, resource_name
from .settings import Settings
from .store import Endpoint, Endpoints


class KubernetesRuntime:
    def __init__(self, settings: Settings, endpoints: Endpoints, token: Callable[[Endpoint], str | None]):
        self.settings = settings
        self.endpoints = endpoints
        self.token = token
        self._apis: tuple[Any, Any] | None = None

    def apis(self) -> tuple[Any, Any]:
        if self._apis is None:
            self._apis = custom_and_core()
        return self._apis

    def resource(self, endpoint: Endpoint, *, paused: bool) -> dict[str, Any]:
        """The ``InferenceEndpoint`` for ``endpoint``."""
        s, r = self.settings, endpoint.resources
        name = resource_name(endpoint.id, endpoint.name)
        spec: dict[str, Any] = {
            "repo": endpoint.repo, "commit": endpoint.commit_id, "engine": endpoint.engine,
            "servedName": endpoint.repo, "hubUrl": s.public_url.rstrip("/"), "tokenSecret": f"{name}-token",
            "gpuResource": s.gpu_resource, "paused": paused,
            "maxModelMemory": int(r.get("memory") or s.max_model_memory),
        }
        image = {"transformers": s.image, "vllm": s.vllm_image, "tgi": s.tgi_image}.get(endpoint.engine)
        if image:
            spec["image"] = image
        for key, field in (("gpus", "gpus"), ("cpu", "cpu"), ("replicas", "replicas"),
                           ("node_selector", "nodeSelector")):
            if r.get(key) is not None:
                spec[field] = r[key]
        if r.get("memory"):
            spec["memory"] = f"{max(1, int(r['memory']) >> 20) * 2}Mi"  # the weights, and room to run them
        return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
                "metadata": {"name": name, "namespace": s.namespace,
                             "labels": {"gitd.dev/endpoint-id": str(endpoint.id),
                                        "gitd.dev/repo-id": str(endpoint.repo_id)}},
                "spec": spec}

    def secret(self, endpoint: Endpoint) -> dict[str, Any]:
        name = resource_name(endpoint.id, endpoint.name)
        token = self.token(endpoint) or ""
        return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": f"{name}-token", "namespace": self.settings.namespace,
                             "labels": {"gitd.dev/endpoint-id": str(endpoint.id)}},
                "data": {"token": base64.b64encode(token.encode()).decode()}}

    def apply(self, endpoint: Endpoint, *, paused: bool) -> None:
        from kubernetes.client import ApiException

        custom, core = self.apis()
        ns = self.settings.namespace
        secret = self.secret(endpoint)
        try:
            core.create_namespaced_secret(ns, secret)
        except ApiException as exc:
            if exc.status != 409:
                raise
            core.replace_namespaced_secret(secret["metadata"]["name"], ns, secret)
        body = self.resource(endpoint, paused=paused)
        try:
            custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body["metadata"]["name"],
                                                  {"spec": body["spec"]})
        self.endpoints.set(endpoint.id, status="stopped" if paused else "pending", reason=None)

    def delete(self, endpoint: Endpoint) -> None:
        from kubernetes.client import ApiException

        custom, core = self.apis()
        name = resource_name(endpoint.id, endpoint.name)
        for call in (lambda: custom.delete_namespaced_custom_object(GROUP, VERSION, self.settings.namespace, PLURAL,
                                                                    name),
                     lambda: core.delete_namespaced_secret(f"{name}-token", self.settings.namespace)):
            try:
                call()
            except ApiException as exc:
                if exc.status != 404:
                    raise

    def refresh(self, endpoint: Endpoint) -> Endpoint:
        """The status the operator reported onto the resource."""
        custom, _ = self.apis()
        found = custom.get_namespaced_custom_object(GROUP, VERSION, self.settings.namespace, PLURAL,
                                                    resource_name(endpoint.id, endpoint.name)) or {}
        status = found.get("status") or {}
        if not status.get("status"):
            return endpoint
        return self.endpoints.set(endpoint.id, status=status["status"], reason=status.get("reason")) or endpoint

    def service_url(self, endpoint: Endpoint) -> str:
        """Where the daemon reaches the engine (the daemon in the cluster: the Service's DNS name)."""
        return f"http://{resource_name(endpoint.id, endpoint.name)}.{self.settings.namespace}.svc"
