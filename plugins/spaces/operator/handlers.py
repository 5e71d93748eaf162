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

from gitd.operator.applier import KubeApplier

from .render import GROUP, LABEL, PLURAL, VERSION, SpecError, render

KINDS = ("Deployment", "Service", "Ingress")  # build Jobs go with their owner (and their TTL)


@kopf.on.startup()
def startup(memo: kopf.Memo, **_: Any) -> None:
    if getattr(memo, "applier", None) is None:
        memo.applier = KubeApplier()


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
def reconcile(spec: kopf.Spec | dict, name: str, namespace: str, body: kopf.Body | dict, patch: kopf.Patch,
              memo: kopf.Memo, logger: logging.Logger | Any, **_: Any) -> dict[str, Any]:
    try:
        manifests = render(dict(spec), name, namespace)
    except SpecError as exc:
        patch.status["stage"] = "CONFIG_ERROR"
        patch.status["message"] = str(exc)
        raise kopf.PermanentError(str(exc)) from None
    for manifest in manifests.values():
        kopf.adopt(manifest, owner=body)
        memo.applier.apply(manifest)
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
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    if spec.get("replicas") == 0:
        return "PAUSED", None
    if (status.get("readyReplicas") or 0) >= 1 and (status.get("updatedReplicas") or 0) >= 1:
        return "RUNNING", None
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("status") == "False":
            return "RUNTIME_ERROR", condition.get("message") or condition.get("reason")
    return "APP_STARTING", None


@kopf.on.event("apps", "v1", "deployments", labels={LABEL: kopf.PRESENT})
def deployment_event(body: kopf.Body | dict, memo: kopf.Memo, logger: logging.Logger | Any,
                     **_: Any) -> None:
    meta = body.get("metadata") or {}
    owner = [ref for ref in meta.get("ownerReferences") or [] if ref.get("kind") == "Space"]
    if not owner:
        return
    stage, message = stage_of(dict(body))
    memo.applier.patch_space_status(owner[0]["name"], meta["namespace"], {"stage": stage, "message": message})


@kopf.on.delete(GROUP, VERSION, PLURAL)
def delete(name: str, namespace: str, memo: kopf.Memo, logger: logging.Logger | Any, **_: Any) -> None:
    for kind in KINDS:
        memo.applier.delete(kind, name, namespace)
    logger.info("space %s/%s: removed", namespace, name)
