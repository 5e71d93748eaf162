"""The kubernetes runtime, the daemon's side: a push writes the space's ``Space`` resource
(create, or replace its spec); the operator (``operator/handlers.py``) reconciles it and
writes its stage into the resource's status, which the runtime API reads back."""

from __future__ import annotations

from typing import Any

from gitd.plugin_api import RepoInfo, RepoView

from .card import CardError, parse_card
from .local import _read_or_none
from .operator.render import GROUP, KIND, PLURAL, VERSION, resource_name
from .settings import Settings
from .state import BUILDING, CONFIG_ERROR, PAUSED, SpaceRow, SpaceStates


class KubernetesRuntime:
    def __init__(self, settings: Settings, states: SpaceStates):
        self.settings = settings
        self.states = states
        self._custom: Any = None

    def api(self) -> Any:
        if self._custom is None:
            from kubernetes import client, config

            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            self._custom = client.CustomObjectsApi()
        return self._custom

    def space_resource(self, repo: RepoInfo, commit: str, readme: bytes | None) -> dict[str, Any]:
        """The ``Space`` resource for ``repo`` at ``commit``; CardError for a bad card."""
        card = parse_card(readme)
        s = self.settings
        name = resource_name(repo.full_name)
        spec: dict[str, Any] = {
            "repo": repo.full_name, "commit": commit, "sdk": card.sdk, "appFile": card.app_file,
            "appPort": card.app_port if card.sdk == "docker" else 7860,
            "gitUrl": f"{s.public_url.rstrip('/')}/spaces/{repo.full_name}.git", "tokenSecret": s.token_secret,
            "memory": _quantity(int(s.memory)), "paused": False,
        }
        if card.sdk_version:
            spec["sdkVersion"] = card.sdk_version
        if card.sdk != "docker":
            spec["image"] = s.image
        elif s.registry:
            spec["registry"] = s.registry
        if s.ingress_domain:
            spec["host"] = f"{repo.name}--{repo.namespace}.{s.ingress_domain}".lower()
        return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
                "metadata": {"name": name, "namespace": s.namespace, "labels": {"gitd.dev/repo-id": str(repo.id)}},
                "spec": spec}

    def deploy(self, repo: RepoInfo, view: RepoView, commit: str) -> SpaceRow:
        try:
            body = self.space_resource(repo, commit, _read_or_none(view, commit, "README.md"))
        except CardError as exc:
            return self.states.set(repo.id, repo.full_name, stage=CONFIG_ERROR, error=str(exc), commit_id=commit,
                                   runtime="kubernetes")
        self._apply(body)
        return self.states.set(repo.id, repo.full_name, stage=BUILDING, error=None, commit_id=commit,
                               sdk=body["spec"]["sdk"], runtime="kubernetes")

    def _apply(self, body: dict[str, Any]) -> None:
        from kubernetes.client import ApiException

        api, meta = self.api(), body["metadata"]
        try:
            api.create_namespaced_custom_object(GROUP, VERSION, meta["namespace"], PLURAL, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            api.patch_namespaced_custom_object(GROUP, VERSION, meta["namespace"], PLURAL, meta["name"],
                                               {"spec": body["spec"]})

    def stop(self, repo: RepoInfo, stage: str) -> None:
        self.api().patch_namespaced_custom_object(GROUP, VERSION, self.settings.namespace, PLURAL,
                                                  resource_name(repo.full_name), {"spec": {"paused": True}})
        self.states.set(repo.id, repo.full_name, stage=PAUSED if stage == PAUSED else stage)

    def delete(self, repo: RepoInfo) -> None:
        from kubernetes.client import ApiException

        try:
            self.api().delete_namespaced_custom_object(GROUP, VERSION, self.settings.namespace, PLURAL,
                                                       resource_name(repo.full_name))
        except ApiException as exc:
            if exc.status != 404:
                raise

    def refresh(self, repo: RepoInfo) -> SpaceRow | None:
        """The stage the operator reported onto the resource."""
        status = (self.api().get_namespaced_custom_object(GROUP, VERSION, self.settings.namespace, PLURAL,
                                                          resource_name(repo.full_name)) or {}).get("status") or {}
        if not status.get("stage"):
            return self.states.get(repo.id)
        return self.states.set(repo.id, repo.full_name, stage=status["stage"], error=status.get("message"))


def _quantity(size: int) -> str:
    return f"{size >> 20}Mi"
