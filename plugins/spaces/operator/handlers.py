"""The kopf operator for gitd's ``Space`` resources.

* create / update (of the spec) / resume: render the Deployment, Service and (when
  ``spec.host`` is set) Ingress, adopt them (owner references: deleting the Space deletes
  them), create or replace each, delete an Ingress no longer wanted, and set the Space's
  status (``BUILDING``, or ``PAUSED``; ``CONFIG_ERROR`` with the reason for a bad spec);
* a Deployment of a Space changes: its readiness becomes the Space's stage (``RUNNING``,
  ``APP_STARTING``, ``RUNTIME_ERROR`` when its pods crash-loop, ``PAUSED``), which the
  daemon reads back for the runtime API;
* delete: remove the children (owner references would too; this is immediate).

Every handler is idempotent: it renders the whole desired state from the spec each time.
``memo.applier`` is how it writes (``KubeApplier`` unless the caller put one there).
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from gitd.operator.reconcile import apply_owned, deployment_state, install_applier, owner_of, reconciles

from .render import GROUP, LABEL, PLURAL, VERSION, SpecError, render

KINDS = ("Deployment", "Service", "Ingress")  # build Jobs go with their owner (and their TTL)
STAGES = {"stopped": "PAUSED", "ready": "RUNNING", "failed": "RUNTIME_ERROR", "starting": "APP_STARTING"}


kopf.on.startup()(install_applier)


@reconciles(GROUP, VERSION, PLURAL)
def reconcile(spec: kopf.Spec | dict, name: str, namespace: str, body: kopf.Body | dict, patch: kopf.Patch,
              memo: kopf.Memo, logger: logging.Logger | Any, **_: Any) -> dict[str, Any]:
    """The Space's Deployment, Service and Ingress (when it has a host), owned by it; its stage
    ``BUILDING``, or ``PAUSED``; ``CONFIG_ERROR`` for a bad spec."""
    try:
        manifests = render(dict(spec), name, namespace)
    except SpecError as exc:
        patch.status["stage"] = "CONFIG_ERROR"
        patch.status["message"] = str(exc)
        raise kopf.PermanentError(str(exc)) from None
    apply_owned(body, manifests.values(), memo.applier)
    if "ingress" not in manifests:
        memo.applier.delete("Ingress", name, namespace)
    paused = bool(spec.get("paused"))
    patch.status["stage"] = "PAUSED" if paused else "BUILDING"
    patch.status["message"] = None
    patch.status["commit"] = spec["commit"]
    logger.info("space %s: %s at %s", spec["repo"], ", ".join(sorted(manifests)), spec["commit"][:12])
    return {"applied": sorted(manifests)}


def stage_of(deployment: dict[str, Any]) -> tuple[str, str | None]:
    """A Space's stage from its Deployment (and the reason, for an error)."""
    state, reason = deployment_state(deployment)
    return STAGES[state], reason


@kopf.on.event("apps", "v1", "deployments", labels={LABEL: kopf.PRESENT})
def deployment_event(body: kopf.Body | dict, memo: kopf.Memo, logger: logging.Logger | Any,
                     **_: Any) -> None:
    owner = owner_of(body, "Space")
    if owner is None:
        return
    stage, message = stage_of(dict(body))
    memo.applier.patch_space_status(owner, body["metadata"]["namespace"], {"stage": stage, "message": message})


@kopf.on.delete(GROUP, VERSION, PLURAL)
def delete(name: str, namespace: str, memo: kopf.Memo, logger: logging.Logger | Any, **_: Any) -> None:
    for kind in KINDS:
        memo.applier.delete(kind, name, namespace)
    logger.info("space %s/%s: removed", namespace, name)
