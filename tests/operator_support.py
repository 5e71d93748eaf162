"""What the operator tests share: an in-memory applier that holds objects as the API server would
(create-or-replace by kind, namespace and name; a Job that exists is kept, as
``gitd.operator.applier.KubeApplier`` keeps it), and a kopf handler called with kopf's real Patch."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

import kopf


class MemoryApplier:
    def __init__(self, validate: Callable[[dict[str, Any]], object]) -> None:
        self.validate = validate  # each manifest is read back (the kubernetes client's deserializer) first
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.statuses: dict[tuple[str, str], dict[str, Any]] = {}  # by (plural, name)
        self.creates = 0

    def apply(self, manifest: dict[str, Any]) -> None:
        self.validate(manifest)
        meta = manifest["metadata"]
        key = (manifest["kind"], meta["namespace"], meta["name"])
        if key not in self.objects or manifest["kind"] != "Job":
            self.creates += key not in self.objects
            self.objects[key] = copy.deepcopy(manifest)

    def delete(self, kind: str, name: str, namespace: str) -> None:
        self.objects.pop((kind, namespace, name), None)

    def patch_status(self, plural: str, name: str, namespace: str, status: dict[str, Any]) -> None:
        self.statuses.setdefault((plural, name), {}).update(status)

    def patch_space_status(self, name: str, namespace: str, status: dict[str, Any]) -> None:
        self.patch_status("spaces", name, namespace, status)


def call(handler: Callable[..., Any], body: dict[str, Any], memo: kopf.Memo) -> tuple[kopf.Patch, Any]:
    """``handler`` run on ``body`` as kopf runs it: the patch it wrote and what it returned."""
    patch = kopf.Patch()
    result = handler(spec=body["spec"], name=body["metadata"]["name"], namespace=body["metadata"]["namespace"],
                     body=body, patch=patch, memo=memo, logger=logging.getLogger("test"))
    return patch, result
