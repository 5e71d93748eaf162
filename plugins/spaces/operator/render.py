"""A ``Space`` resource's spec rendered into Kubernetes objects, built from the typed models
of the ``kubernetes`` client (which check required fields and enumerations as they are
made) and returned as the plain manifests the API takes.

The pod: an init container fetches the space's commit from gitd with a read token (from a
Secret, never in the manifest) into an ``emptyDir``; the app container installs the SDK
and requirements (gradio, streamlit) or serves the files (static), or runs the image a
docker space was built into; it runs as a non-root user without privilege escalation,
with memory and CPU limits and a TCP readiness probe on the app's port.
"""

from __future__ import annotations

import re
from typing import Any

from kubernetes import client
from kubernetes.client import ApiClient

GROUP, VERSION, PLURAL, KIND = "gitd.dev", "v1", "spaces", "Space"
LABEL = "gitd.dev/space"
APP_DIR = "/app"
PORT = 7860
DEFAULT_IMAGE = "python:3.11-slim"
STOCK_PYTHON = re.compile(r"(docker\.io/(library/)?)?python:3\.\d{1,2}(\.\d{1,3})?-slim")
GIT_IMAGE = "alpine/git:2.45.2"
KANIKO_IMAGE = "gcr.io/kaniko-project/executor:v1.23.2"
FETCH = ('set -eu; cd /app; git init -q .; '
         'git -c http.extraHeader="Authorization: Bearer $GITD_TOKEN" fetch -q --depth 1 "$GITD_URL" "$GITD_COMMIT"; '
         'git -c advice.detachedHead=false checkout -q FETCH_HEAD; rm -rf .git')


class SpecError(ValueError):
    """The Space's spec cannot be rendered (the message says which field)."""


def resource_name(full_name: str) -> str:
    """A DNS-1123 name for space ``ns/name`` (the Space resource's and its children's)."""
    base = re.sub(r"[^a-z0-9-]+", "-", full_name.lower().replace("/", "--")).strip("-")
    return (base[:63]).rstrip("-") or "space"


def env_secret_name(name: str) -> str:
    """The Secret holding space ``name``'s secrets (the daemon writes it; the Deployment reads it)."""
    return f"{name[:59].rstrip('-')}-env"


def build_job_name(name: str, commit: str) -> str:
    """The Job that builds space ``name``'s image at ``commit`` (docker spaces)."""
    return f"{name[:50]}-{commit[:12]}"


def env_secret(name: str, namespace: str, values: dict[str, str]) -> dict[str, Any]:
    """The Secret of a space's secrets, as the app's environment (``envFrom`` in ``render``)."""
    secret = client.V1Secret(
        api_version="v1", kind="Secret", type="Opaque", string_data=dict(values),
        metadata=client.V1ObjectMeta(name=env_secret_name(name), namespace=namespace,
                                     labels={LABEL: name, "app.kubernetes.io/name": "gitd-space"}))
    return ApiClient().sanitize_for_serialization(secret)


def app_image(spec: dict[str, Any]) -> str:
    """The app container's image: the space's own, else the stock python image; a card's
    python_version picks that image's tag (``python:3.10-slim``). An image of another
    name is taken as it is (its Python is its own)."""
    image = spec.get("image") or DEFAULT_IMAGE
    version = spec.get("pythonVersion")
    if version and STOCK_PYTHON.fullmatch(image):
        image = f"{image.split(':', 1)[0]}:{version}-slim"
    return image


def _command(spec: dict[str, Any], port: int) -> list[str] | None:
    sdk, app_file = spec["sdk"], spec.get("appFile") or ("index.html" if spec["sdk"] == "static" else "app.py")
    version = spec.get("sdkVersion")
    package = f"{sdk}=={version}" if version else sdk
    install = (f'pip install --no-cache-dir --user -q "{package}" $( [ -f requirements.txt ] '
               '&& echo "-r requirements.txt" ) && ')
    if sdk == "gradio":
        return ["sh", "-c", install + f'exec python "{app_file}"']
    if sdk == "streamlit":
        return ["sh", "-c", install + f'exec python -m streamlit run "{app_file}" --server.port {port} '
                "--server.address 0.0.0.0 --server.headless true --browser.gatherUsageStats false"]
    if sdk == "static":
        return ["python", "-m", "http.server", str(port), "--directory", APP_DIR]
    return None  # docker: the image's own entry point


def render(spec: dict[str, Any], name: str, namespace: str) -> dict[str, dict[str, Any]]:
    """{"deployment": ..., "service": ..., "ingress": ... (when spec.host is set)}."""
    for key in ("repo", "commit", "sdk", "gitUrl", "tokenSecret"):
        if not spec.get(key):
            raise SpecError(f"spec.{key} is required")
    sdk = spec["sdk"]
    if sdk not in ("gradio", "streamlit", "static", "docker"):
        raise SpecError(f"spec.sdk must be gradio, streamlit, static or docker, not {sdk!r}")
    build = None
    if sdk == "docker" and not spec.get("image"):
        if not spec.get("registry"):
            raise SpecError("a docker space needs spec.registry (where its image is built to) or spec.image")
        spec = {**spec, "image": f"{spec['registry'].rstrip('/')}/{name}:{spec['commit'][:12]}"}
        build = spec["image"]
    port = int(spec.get("appPort") or PORT)
    labels = {LABEL: name, "app.kubernetes.io/name": "gitd-space", "app.kubernetes.io/instance": name}
    meta = client.V1ObjectMeta(name=name, namespace=namespace, labels=labels,
                               annotations={"gitd.dev/repo": spec["repo"], "gitd.dev/commit": spec["commit"]})
    volume = client.V1VolumeMount(name="app", mount_path=APP_DIR)
    home = client.V1VolumeMount(name="home", mount_path="/home/space")
    token = client.V1EnvVar(name="GITD_TOKEN", value_from=client.V1EnvVarSource(
        secret_key_ref=client.V1SecretKeySelector(name=spec["tokenSecret"], key="token")))
    non_root = client.V1SecurityContext(run_as_non_root=True, run_as_user=1000, run_as_group=1000,
                                        allow_privilege_escalation=False,
                                        capabilities=client.V1Capabilities(drop=["ALL"]))
    fetch = client.V1Container(
        name="fetch", image=spec.get("gitImage") or GIT_IMAGE, command=["sh", "-c", FETCH],
        env=[client.V1EnvVar(name="GITD_URL", value=spec["gitUrl"]),
             client.V1EnvVar(name="GITD_COMMIT", value=spec["commit"]), token,
             client.V1EnvVar(name="HOME", value="/home/space")],
        volume_mounts=[volume, home], security_context=non_root)
    env = [client.V1EnvVar(name=k, value=v) for k, v in {
        "PORT": str(port), "GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": str(port),
        "HOME": "/home/space", "PYTHONUNBUFFERED": "1", "SPACE_ID": spec["repo"], "SYSTEM": "spaces"}.items()]
    env += [client.V1EnvVar(name=str(k), value=str(v)) for k, v in sorted((spec.get("env") or {}).items())]
    # The space's secrets: every key of its Secret (``env`` entries, above, win over ``envFrom``).
    env_from = ([client.V1EnvFromSource(secret_ref=client.V1SecretEnvSource(name=spec["envSecret"]))]
                if spec.get("envSecret") else None)
    limits = {"memory": str(spec.get("memory") or "8Gi"), "cpu": str(spec.get("cpu") or "2")}
    app = client.V1Container(
        name="app", image=app_image(spec), command=_command(spec, port),
        working_dir=APP_DIR if sdk != "docker" else None, env=env, env_from=env_from,
        ports=[client.V1ContainerPort(name="http", container_port=port)],
        volume_mounts=[volume, home] if sdk != "docker" else [home],
        resources=client.V1ResourceRequirements(limits=limits, requests={"memory": "256Mi", "cpu": "100m"}),
        readiness_probe=client.V1Probe(tcp_socket=client.V1TCPSocketAction(port=port), period_seconds=2,
                                       failure_threshold=300),
        security_context=non_root)
    pod = client.V1PodSpec(
        init_containers=[fetch], containers=[app], automount_service_account_token=False,
        enable_service_links=False,
        volumes=[client.V1Volume(name="app", empty_dir=client.V1EmptyDirVolumeSource()),
                 client.V1Volume(name="home", empty_dir=client.V1EmptyDirVolumeSource())])
    deployment = client.V1Deployment(
        api_version="apps/v1", kind="Deployment", metadata=meta,
        spec=client.V1DeploymentSpec(
            replicas=0 if spec.get("paused") else 1, strategy=client.V1DeploymentStrategy(type="Recreate"),
            selector=client.V1LabelSelector(match_labels={LABEL: name}),
            template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(
                labels=labels, annotations={"gitd.dev/env-digest": spec["envDigest"]} if spec.get("envDigest")
                else None), spec=pod)))
    service = client.V1Service(
        api_version="v1", kind="Service", metadata=meta,
        spec=client.V1ServiceSpec(selector={LABEL: name}, ports=[
            client.V1ServicePort(name="http", port=80, target_port="http", protocol="TCP")]))
    out: dict[str, Any] = {"deployment": deployment, "service": service}
    if build is not None:  # the Dockerfile built into the image the Deployment runs (its pods pull until it exists)
        out["build"] = _build_job(spec, name, namespace, labels, fetch, volume, build)
    if spec.get("host"):
        backend = client.V1IngressBackend(service=client.V1IngressServiceBackend(
            name=name, port=client.V1ServiceBackendPort(number=80)))
        out["ingress"] = client.V1Ingress(
            api_version="networking.k8s.io/v1", kind="Ingress", metadata=meta,
            spec=client.V1IngressSpec(ingress_class_name=spec.get("ingressClass"), rules=[client.V1IngressRule(
                host=spec["host"], http=client.V1HTTPIngressRuleValue(paths=[client.V1HTTPIngressPath(
                    path="/", path_type="Prefix", backend=backend)]))]))
    serialize = ApiClient().sanitize_for_serialization
    return {kind: serialize(obj) for kind, obj in out.items()}


def _build_job(spec: dict[str, Any], name: str, namespace: str, labels: dict[str, str], fetch: client.V1Container,
               volume: client.V1VolumeMount, image: str) -> client.V1Job:
    """A Job that builds a docker space's Dockerfile with kaniko (no Docker daemon, no privileges)
    and pushes it to ``spec.registry`` (credentials: the Secret ``spec.registrySecret``)."""
    kaniko = client.V1Container(
        name="build", image=spec.get("kanikoImage") or KANIKO_IMAGE,
        args=[f"--context=dir://{APP_DIR}", f"--destination={image}", "--cache=true"],
        volume_mounts=[volume, *([client.V1VolumeMount(name="registry", mount_path="/kaniko/.docker")]
                                 if spec.get("registrySecret") else [])],
        resources=client.V1ResourceRequirements(limits={"memory": str(spec.get("buildMemory") or "4Gi")}))
    volumes = [client.V1Volume(name="app", empty_dir=client.V1EmptyDirVolumeSource()),
               client.V1Volume(name="home", empty_dir=client.V1EmptyDirVolumeSource())]
    if spec.get("registrySecret"):
        volumes.append(client.V1Volume(name="registry", secret=client.V1SecretVolumeSource(
            secret_name=spec["registrySecret"], items=[client.V1KeyToPath(key=".dockerconfigjson",
                                                                         path="config.json")])))
    return client.V1Job(
        api_version="batch/v1", kind="Job",
        metadata=client.V1ObjectMeta(name=build_job_name(name, spec["commit"]), namespace=namespace, labels=labels),
        spec=client.V1JobSpec(backoff_limit=2, ttl_seconds_after_finished=3600, template=client.V1PodTemplateSpec(
            metadata=client.V1ObjectMeta(labels=labels),
            spec=client.V1PodSpec(restart_policy="Never", init_containers=[fetch], containers=[kaniko],
                                  automount_service_account_token=False, volumes=volumes))))
