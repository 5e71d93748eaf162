"""The kubernetes runtime, the daemon's side: a push writes the space's ``Space`` resource
(create, or replace its spec); the operator (``operator/handlers.py``) reconciles it and
writes its stage into the resource's status, which the runtime API reads back. The logs
endpoints read the space's pods' logs from the API server (``log_sources``, ``SpaceLog``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from gitd.operator.client import custom_and_core
from gitd.plugin_api import RepoInfo, RepoView

from .card import CardError, parse_card
from .env import SECRET, VARIABLE, SpaceEnv
from .local import _read_or_none
from .logstream import CHUNK, Lines
from .operator.render import (
    GROUP,
    KIND,
    LABEL,
    PLURAL,
    VERSION,
    build_job_name,
    env_secret,
    env_secret_name,
    resource_name,
)
from .settings import Settings
from .state import BUILDING, CONFIG_ERROR, PAUSED, SpaceRow, SpaceStates


class KubernetesRuntime:
    def __init__(self, settings: Settings, states: SpaceStates, env: SpaceEnv | None = None):
        self.settings = settings
        self.states = states
        self.env = env
        self._custom: Any = None
        self._core: Any = None

    def api(self) -> Any:
        if self._custom is None:
            self._custom, self._core = custom_and_core(self.settings.kubeconfig)
        return self._custom

    def core(self) -> Any:
        self.api()
        return self._core

    def space_resource(self, repo: RepoInfo, commit: str, readme: bytes | None,
                       variables: dict[str, str] | None = None, secrets_digest: str | None = None) -> dict[str, Any]:
        """The ``Space`` resource for ``repo`` at ``commit``; CardError for a bad card. The
        space's variables go into ``spec.env``; its secrets only by reference: the Secret
        ``spec.envSecret`` (``env_secret``), and a digest of their names and update times
        (never of the values) that rolls the pods when they change."""
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
        if card.python_version and card.sdk in ("gradio", "streamlit"):
            spec["pythonVersion"] = card.python_version
        if card.sdk != "docker":
            spec["image"] = s.image
        elif s.registry:
            spec["registry"] = s.registry
        if variables:
            spec["env"] = dict(variables)
        if secrets_digest:
            spec["envSecret"] = env_secret_name(name)
            spec["envDigest"] = secrets_digest
        if s.ingress_domain:
            spec["host"] = f"{repo.name}--{repo.namespace}.{s.ingress_domain}".lower()
        return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
                "metadata": {"name": name, "namespace": s.namespace, "labels": {"gitd.dev/repo-id": str(repo.id)}},
                "spec": spec}

    def deploy(self, repo: RepoInfo, view: RepoView, commit: str) -> SpaceRow:
        secrets = self.env.environment(repo.id, SECRET) if self.env is not None else {}
        variables = self.env.environment(repo.id, VARIABLE) if self.env is not None else {}
        digest = self.env.secrets_digest(repo.id) if secrets and self.env is not None else None
        try:
            body = self.space_resource(repo, commit, _read_or_none(view, commit, "README.md"), variables, digest)
        except CardError as exc:
            return self.states.set(repo.id, repo.full_name, stage=CONFIG_ERROR, error=str(exc), commit_id=commit,
                                   runtime="kubernetes")
        name = body["metadata"]["name"]
        if secrets:  # written before the Space, so its pods find it
            self._apply_secret(env_secret(name, self.settings.namespace, secrets))
        else:
            self._delete_secret(env_secret_name(name))
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

    def _apply_secret(self, manifest: dict[str, Any]) -> None:
        from kubernetes.client import ApiException

        core, meta = self.core(), manifest["metadata"]
        try:
            core.create_namespaced_secret(meta["namespace"], manifest)
        except ApiException as exc:
            if exc.status != 409:
                raise
            core.replace_namespaced_secret(meta["name"], meta["namespace"], manifest)

    def _delete_secret(self, name: str) -> None:
        from kubernetes.client import ApiException

        try:
            self.core().delete_namespaced_secret(name, self.settings.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise

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
        self._delete_secret(env_secret_name(resource_name(repo.full_name)))

    def refresh(self, repo: RepoInfo) -> SpaceRow | None:
        """The stage the operator reported onto the resource."""
        status = (self.api().get_namespaced_custom_object(GROUP, VERSION, self.settings.namespace, PLURAL,
                                                          resource_name(repo.full_name)) or {}).get("status") or {}
        if not status.get("stage"):
            return self.states.get(repo.id)
        return self.states.set(repo.id, repo.full_name, stage=status["stage"], error=status.get("message"))

    def log_sources(self, repo: RepoInfo, kind: str) -> list[tuple[str, str]]:
        """(pod, container) pairs whose logs, in this order, are the space's ``kind`` log. The
        build: the docker build Job's pod for the space's commit (the fetch, then kaniko), or
        else the newest app pod's fetch container; the run: the newest app pod's app container.
        Pods being deleted count only when there is no other."""
        name = resource_name(repo.full_name)
        pods = self.core().list_namespaced_pod(self.settings.namespace, label_selector=f"{LABEL}={name}").items
        row = self.states.get(repo.id)
        if kind == "build" and row is not None and row.sdk == "docker" and row.commit_id:
            job = build_job_name(name, row.commit_id)
            built = _newest(p for p in pods if (p.metadata.labels or {}).get("job-name") == job)
            return [(built, "fetch"), (built, "build")] if built else []
        app = _newest(p for p in pods if "pod-template-hash" in (p.metadata.labels or {}))
        if app is None:
            return []
        return [(app, "fetch")] if kind == "build" else [(app, "app")]

    def pod_log(self, pod: str, container: str, *, tail: int | None, timeout: float) -> PodLog:
        """The log of ``container`` in ``pod``, followed until the container ends."""
        resp = self.core().read_namespaced_pod_log(
            pod, self.settings.namespace, container=container, follow=True, timestamps=True,
            tail_lines=tail, _preload_content=False, _request_timeout=(10, timeout))
        return PodLog(resp)


class PodLog:
    """A followed container log as (line, timestamp) pairs: the API server's ``timestamps``
    prefix (RFC 3339, nanoseconds) becomes the Hub's (milliseconds). ``close`` (from any thread)
    ends it, a blocked read included."""

    def __init__(self, resp: Any):
        self.resp = resp
        self.closed = threading.Event()

    def lines(self) -> Iterator[tuple[bytes, str]]:
        lines = Lines()
        try:
            for chunk in self.resp.stream(CHUNK, decode_content=True):
                if self.closed.is_set():
                    return
                for line in lines.feed(chunk):
                    yield _stamped(line)
            for line in lines.flush():
                yield _stamped(line)
        except Exception:
            if not self.closed.is_set():
                raise
        finally:
            self.closed.set()
            self.resp.close()  # the connection is not reused: a followed log may have been cut

    def close(self) -> None:
        """End ``lines``, from any thread."""
        if self.closed.is_set():
            return
        self.closed.set()
        shutdown = getattr(self.resp, "shutdown", None)  # urllib3 2.3+: unblocks a read in another thread
        if shutdown is not None:
            shutdown()


class SpaceLog:
    """The container logs that make one space log (``log_sources``), one after another; a
    container not started yet, or a pod gone meanwhile, is passed over. ``close`` ends it."""

    def __init__(self, runtime: KubernetesRuntime, sources: list[tuple[str, str]], *, tail: int | None,
                 timeout: float):
        self.runtime, self.sources, self.tail, self.timeout = runtime, sources, tail, timeout
        self.closed = threading.Event()
        self.current: PodLog | None = None

    def lines(self) -> Iterator[tuple[bytes, str]]:
        from kubernetes.client import ApiException

        for pod, container in self.sources:
            if self.closed.is_set():
                return
            try:
                log = self.runtime.pod_log(pod, container, tail=self.tail, timeout=self.timeout)
            except ApiException as exc:
                if exc.status in (400, 404):  # waiting to start (400), or deleted
                    continue
                raise
            self.current = log
            if self.closed.is_set():
                log.close()
                return
            yield from log.lines()

    def close(self) -> None:
        self.closed.set()
        if self.current is not None:
            self.current.close()


def _stamped(line: bytes) -> tuple[bytes, str]:
    """``2026-12-06T02:32:16.123456789Z text`` as (``text``, ``2026-12-06T02:32:16.123Z``); a
    line without the prefix keeps its bytes and gets no timestamp (empty)."""
    stamp, sep, text = line.partition(b" ")
    when = stamp.decode("ascii", "replace")
    if not sep or len(when) < 20 or when[10:11] != "T" or not when.endswith("Z"):
        return line, ""
    seconds, _, fraction = when[:-1].partition(".")
    return text, f"{seconds}.{(fraction + '000')[:3]}Z"


def _newest(pods: Any) -> str | None:
    """The name of the newest of ``pods`` not being deleted, else of the newest one."""
    ranked = sorted(pods, key=lambda p: (p.metadata.deletion_timestamp is None,
                                          p.metadata.creation_timestamp.timestamp()
                                          if p.metadata.creation_timestamp else 0.0))
    return ranked[-1].metadata.name if ranked else None


def _quantity(size: int) -> str:
    return f"{size >> 20}Mi"
