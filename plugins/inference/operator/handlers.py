"""The kopf operator for gitd's ``InferenceEndpoint`` resources.

* create / update (of the spec) / resume: render the Deployment and Service, adopt them
  (owner references: deleting the resource deletes them), create or replace each, and set
  the status (``pending``, or ``stopped`` when ``spec.paused``; ``failed`` with the reason for
  a bad spec);
* a Deployment of an endpoint changes: its readiness becomes the endpoint's status
  (``running``, ``loading``, ``failed`` when its pods cannot progress, ``stopped`` at zero
  replicas), which the daemon reads back;
* delete: remove the children (owner references would too; this is immediate).

Every handler is idempotent: it renders the whole desired state from the spec each time.
``memo.applier`` is how it writes (``gitd.operator.applier.KubeApplier`` unless the caller,
or another gitd operator module in the same process, put one there).
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from gitd.operator.reconcile import apply_owned, deployment_state, install_applier, owner_of, reconciles

from .render import GROUP, KIND, LABEL, PLURAL, VERSION, SpecError, render

KINDS = ("Deployment", "Service")
STATUSES = {"stopped": "stopped", "ready": "running", "failed": "failed", "starting": "loading"}


kopf.on.startup()(install_applier)


@reconciles(GROUP, VERSION, PLURAL)
def reconcile(spec: kopf.Spec | dict, name: str, namespace: str, body: kopf.Body | dict, patch: kopf.Patch,
              memo: kopf.Memo, logger: logging.Logger | Any, **_: Any) -> dict[str, Any]:
    """The endpoint's Deployment and Service, owned by it; its status ``pending``, or ``stopped``
    when paused; ``failed`` for a bad spec."""
    try:
        manifests = render(dict(spec), name, namespace)
    except SpecError as exc:
        patch.status["status"] = "failed"
        patch.status["reason"] = str(exc)
        raise kopf.PermanentError(str(exc)) from None
    apply_owned(body, manifests.values(), memo.applier)
    paused = bool(spec.get("paused"))
    patch.status["status"] = "stopped" if paused else "pending"
    patch.status["reason"] = None
    patch.status["commit"] = spec["commit"]
    logger.info("endpoint %s: %s engine for %s at %s", name, spec["engine"], spec["repo"], spec["commit"][:12])
    return {"applied": sorted(manifests)}


def status_of(deployment: dict[str, Any]) -> tuple[str, str | None]:
    """An endpoint's status from its Deployment (and the reason, for a failure)."""
    state, reason = deployment_state(deployment)
    return STATUSES[state], reason


@kopf.on.event("apps", "v1", "deployments", labels={LABEL: kopf.PRESENT})
def deployment_event(body: kopf.Body | dict, memo: kopf.Memo, logger: logging.Logger | Any, **_: Any) -> None:
    owner = owner_of(body, KIND)
    if owner is None:
        return
    status, reason = status_of(dict(body))
    memo.applier.patch_status(PLURAL, owner, body["metadata"]["namespace"], {"status": status, "reason": reason})


@kopf.on.delete(GROUP, VERSION, PLURAL)
def delete(name: str, namespace: str, memo: kopf.Memo, logger: logging.Logger | Any, **_: Any) -> None:
    for kind in KINDS:
        memo.applier.delete(kind, name, namespace)
    logger.info("endpoint %s/%s: removed", namespace, name)
