"""A ``FinetuneJob`` resource's spec rendered into Kubernetes objects, built from the typed
models of the ``kubernetes`` client and returned as the plain manifests the API takes.

* a ConfigMap holding the training program (this package's ``train.py``) and the job's spec
  (no credentials);
* a Job running it once (no retries: a failed run is reported, never repeated behind the
  owner's back), within ``spec.timeoutSeconds``, as a non-root user without privilege
  escalation, with memory and CPU limits; its three tokens come from the Secret
  ``spec.tokenSecret`` (keys ``model``, ``dataset``, ``target``), never from the manifest.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client import ApiClient

GROUP, VERSION, PLURAL, KIND = "gitd.dev", "v1", "finetunejobs", "FinetuneJob"
LABEL = "gitd.dev/finetune"
TRAIN = Path(__file__).resolve().parents[1] / "train.py"
PROGRAM_DIR, WORK_DIR = "/gitd", "/work"
DEFAULT_IMAGE = "python:3.11-slim"
TOKEN_KEYS = {"GITD_MODEL_TOKEN": "model", "GITD_DATASET_TOKEN": "dataset", "GITD_TARGET_TOKEN": "target"}
# spec.training's keys (camelCase, as Kubernetes resources spell them) -> train.py's
TRAINING = {"method": "method", "epochs": "epochs", "learningRate": "learning_rate", "maxSteps": "max_steps",
            "batchSize": "batch_size", "maxLength": "max_length", "textColumn": "text_column", "loraR": "lora_r",
            "loraAlpha": "lora_alpha", "seed": "seed"}
REQUIRED = ("model", "modelRevision", "dataset", "datasetRevision", "target", "endpoint", "tokenSecret")
SHA = re.compile(r"^[0-9a-f]{40}$")


class SpecError(ValueError):
    """The FinetuneJob's spec cannot be rendered (the message says which field)."""


def resource_name(job_id: int) -> str:
    return f"finetune-{int(job_id)}"


def train_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """What train.py reads (SPEC.json) for this resource."""
    training = spec.get("training") or {}
    method = training.get("method", "lora")
    if method not in ("full", "lora"):
        raise SpecError(f"spec.training.method must be full or lora, not {method!r}")
    out = {"endpoint": spec["endpoint"], "model": spec["model"], "model_revision": spec["modelRevision"],
           "dataset": spec["dataset"], "dataset_revision": spec["datasetRevision"], "target": spec["target"],
           "state_dir": WORK_DIR, "epochs": 1, "learning_rate": 2e-4, "max_steps": 0}
    out.update({TRAINING[k]: v for k, v in training.items() if k in TRAINING})
    return out


def render(spec: dict[str, Any], name: str, namespace: str) -> dict[str, dict[str, Any]]:
    """{"configmap": ..., "job": ...} for a FinetuneJob named ``name``."""
    for key in REQUIRED:
        if not spec.get(key):
            raise SpecError(f"spec.{key} is required")
    for key in ("modelRevision", "datasetRevision"):
        if not SHA.match(str(spec[key])):
            raise SpecError(f"spec.{key} must be a commit id (40 hexadecimal digits)")
    program = train_spec(spec)
    labels = {LABEL: name, "app.kubernetes.io/name": "gitd-finetune", "app.kubernetes.io/instance": name}
    meta = client.V1ObjectMeta(name=name, namespace=namespace, labels=labels,
                               annotations={"gitd.dev/model": spec["model"], "gitd.dev/target": spec["target"]})
    configmap = client.V1ConfigMap(api_version="v1", kind="ConfigMap", metadata=meta, data={
        "train.py": TRAIN.read_text(), "spec.json": json.dumps(program, indent=1, sort_keys=True)})
    env = [client.V1EnvVar(name=k, value=v) for k, v in {
        "HF_ENDPOINT": spec["endpoint"].rstrip("/"), "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_DATASETS_OFFLINE": "1", "HF_HOME": f"{WORK_DIR}/hf", "HOME": WORK_DIR, "PYTHONUNBUFFERED": "1",
        "TOKENIZERS_PARALLELISM": "false"}.items()]
    env += [client.V1EnvVar(name=var, value_from=client.V1EnvVarSource(secret_key_ref=client.V1SecretKeySelector(
        name=spec["tokenSecret"], key=key))) for var, key in TOKEN_KEYS.items()]
    limits = {"memory": str(spec.get("memory") or "8Gi"), "cpu": str(spec.get("cpu") or "4")}
    container = client.V1Container(
        name="train", image=spec.get("image") or DEFAULT_IMAGE,
        command=["python", f"{PROGRAM_DIR}/train.py", f"{PROGRAM_DIR}/spec.json"], working_dir=WORK_DIR, env=env,
        termination_message_policy="FallbackToLogsOnError",  # a failed run's last words: its reason
        volume_mounts=[client.V1VolumeMount(name="program", mount_path=PROGRAM_DIR, read_only=True),
                       client.V1VolumeMount(name="work", mount_path=WORK_DIR)],
        resources=client.V1ResourceRequirements(limits=limits, requests={"memory": "512Mi", "cpu": "500m"}),
        security_context=client.V1SecurityContext(
            run_as_non_root=True, run_as_user=1000, run_as_group=1000, allow_privilege_escalation=False,
            capabilities=client.V1Capabilities(drop=["ALL"])))
    pod = client.V1PodSpec(
        restart_policy="Never", containers=[container], automount_service_account_token=False,
        enable_service_links=False, node_selector=spec.get("nodeSelector") or None,
        volumes=[client.V1Volume(name="program", config_map=client.V1ConfigMapVolumeSource(name=name)),
                 client.V1Volume(name="work", empty_dir=client.V1EmptyDirVolumeSource())])
    job = client.V1Job(
        api_version="batch/v1", kind="Job", metadata=meta,
        spec=client.V1JobSpec(backoff_limit=0, active_deadline_seconds=int(spec.get("timeoutSeconds") or 86400),
                              ttl_seconds_after_finished=86400,
                              template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels=labels),
                                                                spec=pod)))
    serialize = ApiClient().sanitize_for_serialization
    return {"configmap": serialize(configmap), "job": serialize(job)}


def status_of(job: dict[str, Any]) -> tuple[str, str | None]:
    """A FinetuneJob's status (pending, running, succeeded, failed) from its Job, and why it failed."""
    status = job.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return "succeeded", None
        if condition.get("type") == "Failed":
            return "failed", condition.get("message") or condition.get("reason") or "the Job failed"
    if status.get("succeeded"):
        return "succeeded", None
    if status.get("active"):
        return "running", None
    return "pending", None
