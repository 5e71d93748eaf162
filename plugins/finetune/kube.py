"""The kubernetes runtime, the daemon's side: a job becomes a Secret (its three tokens) and a
``FinetuneJob`` resource; the operator (``operator/handlers.py``) runs it as a Job and writes
its phase into the resource's status, which ``refresh`` reads back. Cancelling deletes both."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

from gitd.operator.client import custom_and_core

from .operator.render import GROUP, KIND, LABEL, PLURAL, TOKEN_KEYS, TRAINING, VERSION, resource_name
from .settings import Settings
from .state import ACTIVE, CANCELLED, FAILED, PENDING, RUNNING, SUCCEEDED, Job, JobStore

PHASES = {"pending": PENDING, "running": RUNNING, "succeeded": SUCCEEDED, "failed": FAILED}
SNAKE = {v: k for k, v in TRAINING.items()}


class KubernetesJobs:
    def __init__(self, settings: Settings, jobs: JobStore, tokens: Callable[[Job], dict[str, str]]):
        self.settings = settings
        self.jobs = jobs
        self.tokens = tokens
        self._apis: tuple[Any, Any] | None = None

    def apis(self) -> tuple[Any, Any]:
        if self._apis is None:
            self._apis = custom_and_core()
        return self._apis

    def secret(self, job: Job) -> dict[str, Any]:
        """The job's tokens as a Secret (keys model, dataset, target)."""
        tokens = self.tokens(job)
        return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": f"{resource_name(job.id)}-tokens", "namespace": self.settings.namespace,
                             "labels": {LABEL: resource_name(job.id)}},
                "data": {key: base64.b64encode(tokens[var].encode()).decode() for var, key in TOKEN_KEYS.items()}}

    def resource(self, job: Job) -> dict[str, Any]:
        s = self.settings
        name = resource_name(job.id)
        training = {SNAKE[k]: v for k, v in job.config.items() if k in SNAKE and v not in ("", None)}
        return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
                "metadata": {"name": name, "namespace": s.namespace, "labels": {"gitd.dev/job-id": str(job.id)}},
                "spec": {"model": job.model, "modelRevision": job.model_revision, "dataset": job.dataset,
                         "datasetRevision": job.dataset_revision, "target": job.target, "endpoint": job.endpoint,
                         "tokenSecret": f"{name}-tokens", "image": s.image, "memory": f"{int(s.job_memory) >> 20}Mi",
                         "cpu": s.job_cpu, "timeoutSeconds": int(s.timeout), "training": training}}

    def submit(self, job: Job) -> None:
        from kubernetes.client import ApiException

        custom, core = self.apis()
        secret = self.secret(job)
        try:
            core.create_namespaced_secret(self.settings.namespace, secret)
        except ApiException as exc:
            if exc.status != 409:
                raise
            core.replace_namespaced_secret(secret["metadata"]["name"], self.settings.namespace, secret)
        try:
            custom.create_namespaced_custom_object(GROUP, VERSION, self.settings.namespace, PLURAL,
                                                   self.resource(job))
        except ApiException as exc:
            if exc.status != 409:
                raise
        self.jobs.update(job.id, when=(PENDING,), started=time.time(), phase="submitted")

    def refresh(self, job: Job) -> Job:
        custom, _ = self.apis()
        found = custom.get_namespaced_custom_object(GROUP, VERSION, self.settings.namespace, PLURAL,
                                                    resource_name(job.id)) or {}
        status = found.get("status") or {}
        phase = PHASES.get(status.get("phase") or "")
        if phase is not None and phase != job.status:
            fields: dict[str, Any] = {"status": phase, "reason": status.get("message")}
            if phase not in ACTIVE:
                fields["finished"] = time.time()
            self.jobs.update(job.id, when=ACTIVE, **fields)
        return self.jobs.get(job.id) or job

    def cancel(self, job: Job) -> None:
        from kubernetes.client import ApiException

        custom, core = self.apis()
        name = resource_name(job.id)
        for call in (lambda: custom.delete_namespaced_custom_object(GROUP, VERSION, self.settings.namespace, PLURAL,
                                                                   name),
                     lambda: core.delete_namespaced_secret(f"{name}-tokens", self.settings.namespace)):
            try:
                call()
            except ApiException as exc:
                if exc.status != 404:
                    raise
        self.jobs.update(job.id, when=ACTIVE, status=CANCELLED, reason="cancelled", finished=time.time())

    def logs(self, job: Job) -> bytes:
        _, core = self.apis()
        pods = core.list_namespaced_pod(self.settings.namespace, label_selector=f"job-name={resource_name(job.id)}")
        if not pods.items:
            return b""
        return core.read_namespaced_pod_log(pods.items[-1].metadata.name, self.settings.namespace,
                                            tail_lines=500).encode()
