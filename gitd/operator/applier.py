"""How gitd's kopf operators (the spaces, inference and finetune plugins' ``operator.handlers``)
write to the cluster: create-or-replace of the manifests they render, deletes, and their custom
resources' status, through the ``kubernetes`` client (the ``operator`` extra)."""

from __future__ import annotations

from typing import Any, Protocol

from gitd.operator.client import kube_client

GROUP, VERSION = "gitd.dev", "v1"


class Applier(Protocol):
    def apply(self, manifest: dict[str, Any]) -> None: ...

    def delete(self, kind: str, name: str, namespace: str) -> None: ...

    def patch_status(self, plural: str, name: str, namespace: str, status: dict[str, Any]) -> None: ...

    def patch_space_status(self, name: str, namespace: str, status: dict[str, Any]) -> None: ...


class KubeApplier:
    def __init__(self) -> None:
        self.client = client = kube_client()
        self.apps, self.core, self.batch = client.AppsV1Api(), client.CoreV1Api(), client.BatchV1Api()
        self.net, self.custom = client.NetworkingV1Api(), client.CustomObjectsApi()

    def _calls(self, kind: str) -> tuple[Any, Any, Any, Any]:
        return {
            "Deployment": (self.apps.create_namespaced_deployment, self.apps.replace_namespaced_deployment,
                           self.apps.delete_namespaced_deployment, self.apps.read_namespaced_deployment),
            "Service": (self.core.create_namespaced_service, self.core.patch_namespaced_service,
                        self.core.delete_namespaced_service, self.core.read_namespaced_service),
            "Job": (self.batch.create_namespaced_job, self.batch.replace_namespaced_job,
                    self.batch.delete_namespaced_job, self.batch.read_namespaced_job),
            "Ingress": (self.net.create_namespaced_ingress, self.net.replace_namespaced_ingress,
                        self.net.delete_namespaced_ingress, self.net.read_namespaced_ingress),
            "ConfigMap": (self.core.create_namespaced_config_map, self.core.replace_namespaced_config_map,
                          self.core.delete_namespaced_config_map, self.core.read_namespaced_config_map),
        }[kind]

    def apply(self, manifest: dict[str, Any]) -> None:
        create, replace, _, _ = self._calls(manifest["kind"])
        name, namespace = manifest["metadata"]["name"], manifest["metadata"]["namespace"]
        try:
            create(namespace, manifest)
        except self.client.ApiException as exc:
            if exc.status != 409:
                raise
            if manifest["kind"] != "Job":  # a build Job is named after its commit: it exists, it ran
                replace(name, namespace, manifest)

    def delete(self, kind: str, name: str, namespace: str) -> None:
        _, _, delete, _ = self._calls(kind)
        try:
            delete(name, namespace)
        except self.client.ApiException as exc:
            if exc.status != 404:
                raise

    def patch_status(self, plural: str, name: str, namespace: str, status: dict[str, Any]) -> None:
        """Merge ``status`` into a ``gitd.dev/v1`` resource's status subresource."""
        self.custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, plural, name,
                                                          {"status": status})

    def patch_space_status(self, name: str, namespace: str, status: dict[str, Any]) -> None:
        self.patch_status("spaces", name, namespace, status)
