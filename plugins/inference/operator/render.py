"""An ``InferenceEndpoint``'s spec rendered into a Deployment and a Service, built from the
typed models of the ``kubernetes`` client (which check required fields and enumerations as
they are made) and returned as the plain manifests the API takes.

Every engine fetches its model from gitd (``HF_ENDPOINT`` = ``spec.hubUrl``; ``HF_TOKEN`` from
the Secret ``spec.tokenSecret``, key ``token``: a read token for that one repository), pinned
to ``spec.commit``, and answers the OpenAI API on port 8000 with a ``/health`` readiness
probe. ``spec.gpus`` asks for that many ``spec.gpuResource`` (default ``nvidia.com/gpu``) and
tolerates its taint; ``spec.nodeSelector`` places the pods.
"""

from __future__ import annotations

import re
from typing import Any

from kubernetes import client
from kubernetes.client import ApiClient

GROUP, VERSION, PLURAL, KIND = "gitd.dev", "v1", "inferenceendpoints", "InferenceEndpoint"
LABEL = "gitd.dev/inference-endpoint"
PORT = 8000
ENGINES = ("transformers", "vllm", "tgi")
DEFAULT_IMAGES = {"vllm": "vllm/vllm-openai:v0.6.3", "tgi": "ghcr.io/huggingface/text-generation-inference:2.4.0"}
CACHE = "/cache"


class SpecError(ValueError):
    """The resource's spec cannot be rendered (the message says which field)."""


def resource_name(endpoint_id: int, name: str) -> str:
    """A DNS-1123 name for endpoint ``endpoint_id`` named ``name``."""
    base = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return f"ie-{endpoint_id}-{base}"[:63].rstrip("-")


def _args(spec: dict[str, Any], gpus: int) -> tuple[list[str] | None, list[str]]:
    """(command, args) of the engine's container."""
    repo, commit, served = spec["repo"], spec["commit"], spec.get("servedName") or spec["repo"]
    engine = spec["engine"]
    if engine == "transformers":
        return (["python", "-m", "gitd_plugins.inference.server"],
                ["--model", repo, "--revision", commit, "--served-name", served, "--host", "0.0.0.0",
                 "--port", str(PORT), "--device", "cuda" if gpus else "cpu",
                 "--max-memory", str(int(spec.get("maxModelMemory") or 0))])
    if engine == "vllm":
        return None, ["--model", repo, "--revision", commit, "--served-model-name", served, "--host", "0.0.0.0",
                      "--port", str(PORT), "--tensor-parallel-size", str(max(gpus, 1)),
                      *(["--max-model-len", str(spec["maxModelLen"])] if spec.get("maxModelLen") else [])]
    return None, ["--model-id", repo, "--revision", commit, "--hostname", "0.0.0.0", "--port", str(PORT),
                  "--num-shard", str(max(gpus, 1))]


def render(spec: dict[str, Any], name: str, namespace: str) -> dict[str, dict[str, Any]]:
    """{"deployment": ..., "service": ...}."""
    for key in ("repo", "commit", "engine", "hubUrl", "tokenSecret"):
        if not spec.get(key):
            raise SpecError(f"spec.{key} is required")
    engine = spec["engine"]
    if engine not in ENGINES:
        raise SpecError(f"spec.engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if not re.fullmatch(r"[0-9a-f]{40}", spec["commit"]):
        raise SpecError("spec.commit must be a full commit id (40 hex digits)")
    image = spec.get("image") or DEFAULT_IMAGES.get(engine)
    if not image:
        raise SpecError("the transformers engine needs spec.image (an image with gitd's inference extra)")
    gpus = int(spec.get("gpus") or 0)
    if gpus < 0:
        raise SpecError("spec.gpus must be 0 or more")
    gpu_resource = spec.get("gpuResource") or "nvidia.com/gpu"
    labels = {LABEL: name, "app.kubernetes.io/name": "gitd-inference", "app.kubernetes.io/instance": name,
              "app.kubernetes.io/component": engine}
    meta = client.V1ObjectMeta(name=name, namespace=namespace, labels=labels,
                               annotations={"gitd.dev/repo": spec["repo"], "gitd.dev/commit": spec["commit"]})
    token = client.V1EnvVar(name="HF_TOKEN", value_from=client.V1EnvVarSource(
        secret_key_ref=client.V1SecretKeySelector(name=spec["tokenSecret"], key="token")))
    env = [client.V1EnvVar(name=k, value=v) for k, v in {
        "HF_ENDPOINT": spec["hubUrl"].rstrip("/"), "HF_HOME": CACHE, "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_ENABLE_HF_TRANSFER": "0", "PYTHONUNBUFFERED": "1"}.items()]
    env.append(token)
    limits = {"memory": str(spec.get("memory") or "16Gi"), "cpu": str(spec.get("cpu") or "4")}
    if gpus:
        limits[gpu_resource] = str(gpus)
    requests = {"memory": limits["memory"], "cpu": str(spec.get("cpuRequest") or "1")}
    if gpus:
        requests[gpu_resource] = str(gpus)
    command, args = _args(spec, gpus)
    mounts = [client.V1VolumeMount(name="cache", mount_path=CACHE),
              client.V1VolumeMount(name="shm", mount_path="/dev/shm")]
    container = client.V1Container(
        name="engine", image=image, command=command, args=args, env=env,
        ports=[client.V1ContainerPort(name="http", container_port=PORT)], volume_mounts=mounts,
        resources=client.V1ResourceRequirements(limits=limits, requests=requests),
        readiness_probe=client.V1Probe(http_get=client.V1HTTPGetAction(path="/health", port=PORT),
                                       period_seconds=5, failure_threshold=360),
        security_context=client.V1SecurityContext(allow_privilege_escalation=False,
                                                  capabilities=client.V1Capabilities(drop=["ALL"])))
    tolerations = ([client.V1Toleration(key=gpu_resource, operator="Exists", effect="NoSchedule")]
                   if gpus else None)
    pod = client.V1PodSpec(
        containers=[container], automount_service_account_token=False, enable_service_links=False,
        node_selector=dict(spec.get("nodeSelector") or {}) or None, tolerations=tolerations,
        volumes=[client.V1Volume(name="cache", empty_dir=client.V1EmptyDirVolumeSource()),
                 client.V1Volume(name="shm", empty_dir=client.V1EmptyDirVolumeSource(medium="Memory"))])
    replicas = 0 if spec.get("paused") else int(spec.get("replicas") or 1)
    deployment = client.V1Deployment(
        api_version="apps/v1", kind="Deployment", metadata=meta,
        spec=client.V1DeploymentSpec(
            replicas=replicas, strategy=client.V1DeploymentStrategy(type="Recreate"),
            selector=client.V1LabelSelector(match_labels={LABEL: name}),
            template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels=labels), spec=pod)))
    service = client.V1Service(
        api_version="v1", kind="Service", metadata=meta,
        spec=client.V1ServiceSpec(selector={LABEL: name}, ports=[
            client.V1ServicePort(name="http", port=80, target_port="http", protocol="TCP")]))
    serialize = ApiClient().sanitize_for_serialization
    return {"deployment": serialize(deployment), "service": serialize(service)}
