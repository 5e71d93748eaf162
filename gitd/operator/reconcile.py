"""What the plugins' kopf handlers (``PACKAGE.operator.handlers``) share: the ``memo.applier``
they write through, the registration of a handler that renders a resource's whole desired state,
and the writing of the children it renders. kopf (the ``operator`` extra) is imported on use."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from gitd.operator.applier import Applier, KubeApplier

Handler = TypeVar("Handler", bound=Callable[..., Any])


def install_applier(memo: Any, **_: Any) -> None:
    """A kopf startup handler: ``memo.applier`` is a ``KubeApplier`` unless the caller (or another
    plugin's operator in the same process) put one there."""
    if getattr(memo, "applier", None) is None:
        memo.applier = KubeApplier()


def reconciles(group: str, version: str, plural: str, *, updates: bool = True) -> Callable[[Handler], Handler]:
    """Register a handler of ``group/version`` ``plural`` for when the operator starts (resume), for
    a new resource and, with ``updates``, for each change of its spec."""
    import kopf

    def register(fn: Handler) -> Handler:
        if updates:
            kopf.on.update(group, version, plural, field="spec")(fn)
        kopf.on.create(group, version, plural)(fn)
        kopf.on.resume(group, version, plural)(fn)
        return fn

    return register


def apply_owned(owner: Mapping[str, Any], manifests: Iterable[dict[str, Any]], applier: Applier) -> None:
    """Adopt each manifest (an owner reference to ``owner``, whose deletion deletes it; its
    namespace) and write it through ``applier``, in order."""
    import kopf

    for manifest in manifests:
        kopf.adopt(manifest, owner=owner)
        applier.apply(manifest)


def owner_of(body: Mapping[str, Any], kind: str) -> str | None:
    """The name of the ``kind`` resource that owns ``body`` (its first such owner reference), or None."""
    refs = (body.get("metadata") or {}).get("ownerReferences") or []
    return next((ref["name"] for ref in refs if ref.get("kind") == kind), None)


def deployment_state(deployment: Mapping[str, Any]) -> tuple[str, str | None]:
    """Where a Deployment stands: ``stopped`` (zero replicas), ``ready`` (a pod of its current
    template is ready), ``failed`` (it cannot progress; with the reason) or ``starting``."""
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    if spec.get("replicas") == 0:
        return "stopped", None
    if (status.get("readyReplicas") or 0) >= 1 and (status.get("updatedReplicas") or 0) >= 1:
        return "ready", None
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("status") == "False":
            return "failed", condition.get("message") or condition.get("reason")
    return "starting", None
