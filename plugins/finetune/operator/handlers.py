"""The kopf operator for gitd's ``FinetuneJob`` resources (run by ``gitd operator``, which
loads every enabled plugin's ``operator.handlers``).

* create / resume: render the ConfigMap (the training program and its spec) and the Job,
  adopt them (owner references: deleting the FinetuneJob, which is how gitd cancels a job,
  lets Kubernetes' garbage collector remove the Job, its pod and the ConfigMap), create them
  where missing, and set the status to ``pending`` (``failed`` with the reason for a bad spec);
* a Job of a FinetuneJob changes: its state becomes the FinetuneJob's status (``running``,
  ``succeeded``, ``failed`` with the Job's reason), which the daemon reads back.

Every handler is idempotent: it renders the whole desired state from the spec each time, and
a Job that exists is kept (a job runs once). ``memo.applier`` is how it writes
(``gitd.operator.applier.KubeApplier`` unless the caller put one there).
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from gitd.operator.reconcile import apply_owned, install_applier, owner_of, reconciles

from .render import GROUP, LABEL, PLURAL, VERSION, SpecError, render, status_of

kopf.on.startup()(install_applier)


@reconciles(GROUP, VERSION, PLURAL, updates=False)
def reconcile(spec: kopf.Spec | dict, name: str, namespace: str, body: kopf.Body | dict, patch: kopf.Patch,
              memo: kopf.Memo, logger: logging.Logger | Any, **_: Any) -> dict[str, Any]:
    """The job's ConfigMap and Job, owned by it (a Job that exists is kept); its phase ``pending``
    until the Job's events say more; ``failed`` for a bad spec."""
    try:
        manifests = render(dict(spec), name, namespace)
    except SpecError as exc:
        patch.status["phase"] = "failed"
        patch.status["message"] = str(exc)
        raise kopf.PermanentError(str(exc)) from None
    # the program first: the Job's pod mounts it
    apply_owned(body, (manifests["configmap"], manifests["job"]), memo.applier)
    if not (body.get("status") or {}).get("phase"):
        patch.status["phase"] = "pending"
        patch.status["message"] = None
    patch.status["job"] = name
    logger.info("finetune %s: %s + %s -> %s", name, spec["model"], spec["dataset"], spec["target"])
    return {"applied": ["ConfigMap", "Job"]}


@kopf.on.event("batch", "v1", "jobs", labels={LABEL: kopf.PRESENT})
def job_event(body: kopf.Body | dict, memo: kopf.Memo, logger: logging.Logger | Any, **_: Any) -> None:
    owner = owner_of(body, "FinetuneJob")
    if owner is None:
        return
    phase, message = status_of(dict(body))
    memo.applier.patch_status(PLURAL, owner, body["metadata"]["namespace"], {"phase": phase, "message": message})
