"""How the fine-tune operator writes to the cluster: create (or keep) the ConfigMap and Job it
renders, delete them, and patch a FinetuneJob's status, through the ``kubernetes`` client."""

from __future__ import annotations

from typing import Any, Protocol

from .render import GROUP, PLURAL, VERSION


class Applier(Protocol):
    def apply(self, manifest: dict[str, Any]) -> None: ...

    def delete(self, kind: str, name: str, namespace: str) -> None: ...

    def patch_status(self, name: str, namespace: str, status: dict[str, Any]) -> None: ...


class KubeApplier:
    def __init__(self) -> None:
        from kubernetes import client, config

        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        self.client = client
        self.core, self.batch, self.custom = client.CoreV1Api(), client.BatchV1Api(), client.CustomObjectsApi()

    def _calls(self, kind: str) -> tuple[Any, Any]:
        return {"ConfigMap": (self.core.create_namespaced_config_map, self.core.delete_namespaced_config_map),
                "Job": (self.batch.create_namespaced_job, self.batch.delete_namespaced_job)}[kind]

    def apply(self, manifest: dict[str, Any]) -> None:
        """Create; one that exists is kept (a job's spec is fixed when it is made: a Job's pod
        template cannot change, and a second run would be a second job)."""
        create, _ = self._calls(manifest["kind"])
        try:
            create(manifest["metadata"]["namespace"], manifest)
        except self.client.ApiException as exc:
            if exc.status != 409:
                raise

    def delete(self, kind: str, name: str, namespace: str) -> None:
        _, delete = self._calls(kind)
        try:
            delete(name, namespace, propagation_policy="Background")
        except self.client.ApiException as exc:
            if exc.status != 404:
                raise

    def patch_status(self, name: str, namespace: str, status: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, name,
                                                          {"status": status})
