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

from gitd.operator.applier import KubeApplier

from .render import GROUP, KIND, LABEL, PLURAL, VERSION, SpecError, render

KINDS = ("Deployment", "Service")


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
        patch.status["status"] = "failed"
        patch.status["reason"] = str(exc)
        raise kopf.PermanentError(str(exc)) from None
    for manifest in manifests.values():
        kopf.adopt(manifest, owner=body)
        memo.applier.apply(manifest)
    paused = bool(spec.get("paused"))
    patch.status["status"] = "stopped" if paused else "pending"
    patch.status["reason"] = None
    patch.status["commit"] = spec["commit"]
    logger.info("endpoint %s: %s engine for %s at %s", name, spec["engine"], spec["repo"], spec["commit"][:12])
    return {"applied": sorted(manifests)}


def status_of(deployment: dict[str, Any]) -> tuple[str, str | None]:
    """An endpoint's status from its Deployment (and the reason, for a failure)."""
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    if spec.get("replicas") == 0:
        return "stopped", None
    if (status.get("readyReplicas") or 0) >= 1 and (status.get("updatedReplicas") or 0) >= 1:
        return "running", None
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("status") == "False":
            return "failed", condition.get("message") or condition.get("reason")
    return "loading", None


@kopf.on.event("apps", "v1", "deployments", labels={LABEL: kopf.PRESENT})
def deployment_event(body: kopf.Body | dict, memo: kopf.Memo, logger: logging.Logger | Any, **_: Any) -> None:
    meta = body.get("metadata") or {}
    owner = [ref for ref in meta.get("ownerReferences") or [] if ref.get("kind") == KIND]
    if not owner:
        return
    status, reason = status_of(dict(body))
    memo.applier.patch_status(PLURAL, owner[0]["name"], meta["namespace"], {"status": status, "reason": reason})


@kopf.on.delete(GROUP, VERSION, PLURAL)
def delete(name: str, namespace: str, memo: kopf.Memo, logger: logging.Logger | Any, **_: Any) -> None:
    for kind in KINDS:
        memo.applier.delete(kind, name, namespace)
    logger.info("endpoint %s/%s: removed", namespace, name)
