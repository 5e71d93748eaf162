"""The ``kubernetes`` client as gitd's operators and the plugins' kubernetes runtimes use it (the
``operator`` extra, imported on first use): configured from the pod's service account in a
cluster, else from the kubeconfig."""

from __future__ import annotations

from types import ModuleType
from typing import Any


def kube_client() -> ModuleType:
    """``kubernetes.client``, configured: in-cluster, else ``~/.kube/config`` (``KUBECONFIG``)."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client


def custom_and_core(kubeconfig: str = "") -> tuple[Any, Any]:
    """A ``CustomObjectsApi`` (gitd's resources) and a ``CoreV1Api`` (Secrets, pods, logs): on
    a client of their own configured from the file ``kubeconfig`` when one is named, else as
    ``kube_client`` configures them."""
    if kubeconfig:
        from kubernetes import client, config

        api = config.new_client_from_config(config_file=kubeconfig)
        return client.CustomObjectsApi(api), client.CoreV1Api(api)
    client = kube_client()
    return client.CustomObjectsApi(), client.CoreV1Api()
