"""The spaces operator, without a cluster: its manifests are rendered from the kubernetes
client's typed models and read back by the client's own deserializer; its kopf handlers
are called with kopf's real Patch and Memo objects, writing through an in-memory applier
that records the objects as the API server would hold them (create-or-replace by kind,
namespace and name)."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import jsonschema
import kopf
import pytest
import yaml
from gitd_plugins.spaces.kube import KubernetesRuntime
from gitd_plugins.spaces.operator import handlers
from gitd_plugins.spaces.operator.render import env_secret, render, resource_name
from gitd_plugins.spaces.settings import Settings
from kubernetes.client import ApiClient

import gitd
from tests.operator_support import MemoryApplier, call

CRD = Path(handlers.__file__).with_name("crd.yaml")
COMMIT = "c0ffee" + "0" * 34
SPEC = {"repo": "alice/demo", "commit": COMMIT, "sdk": "gradio", "appFile": "app.py",
        "gitUrl": "http://gitd.gitd:8080/spaces/alice/demo.git", "tokenSecret": "gitd-space-reader",
        "image": "python:3.11-slim", "memory": "2Gi"}
MODELS = {"Deployment": "V1Deployment", "Service": "V1Service", "Ingress": "V1Ingress", "Job": "V1Job",
          "Secret": "V1Secret", "CustomResourceDefinition": "V1CustomResourceDefinition"}


def validated(manifest: dict):
    """The manifest read back into the client's model (required fields, enumerations checked)."""
    return ApiClient().deserialize(json.dumps(manifest), MODELS[manifest["kind"]], "application/json")


def space_body(spec: dict, name: str = "alice--demo") -> dict:
    return {"apiVersion": "gitd.dev/v1", "kind": "Space",
            "metadata": {"name": name, "namespace": "spaces", "uid": "0b5e55ed-0000-4000-8000-000000000001"},
            "spec": spec}


def test_crd_is_a_valid_custom_resource_definition_and_admits_what_the_daemon_writes():
    crd = yaml.safe_load(CRD.read_text())
    model = validated(crd)
    assert model.spec.group == "gitd.dev" and model.spec.names.kind == "Space"
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    runtime = KubernetesRuntime(Settings(runtime="kubernetes", public_url="http://gitd.gitd:8080",
                                         ingress_domain="spaces.example.com"), states=None)
    repo = gitd.RepoInfo(7, "alice", "Demo", "space", False, Path("/nowhere"))
    for readme in (b"---\nsdk: gradio\nsdk_version: 5.0.0\n---\n", b"---\nsdk: docker\napp_port: 8000\n---\n"):
        body = runtime.space_resource(repo, COMMIT, readme)
        jsonschema.validate(body, schema)
        assert body["metadata"]["name"] == "alice--demo"
    assert body["spec"]["host"] == "demo--alice.spaces.example.com" and body["spec"]["appPort"] == 8000
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"spec": {**SPEC, "sdk": "flask"}}, schema)


@pytest.mark.parametrize("sdk", ["gradio", "streamlit", "static"])
def test_rendered_manifests_validate_and_run_unprivileged(sdk):
    manifests = render({**SPEC, "sdk": sdk, "host": "demo.example.com"}, "alice--demo", "spaces")
    assert sorted(manifests) == ["deployment", "ingress", "service"]
    deployment = validated(manifests["deployment"])
    pod = deployment.spec.template.spec
    assert pod.init_containers[0].name == "fetch" and pod.automount_service_account_token is False
    token = next(e for e in pod.init_containers[0].env if e.name == "GITD_TOKEN")
    assert token.value is None and token.value_from.secret_key_ref.name == "gitd-space-reader"
    app = pod.containers[0]
    assert app.security_context.run_as_non_root and not app.security_context.allow_privilege_escalation
    assert app.resources.limits["memory"] == "2Gi" and app.readiness_probe.tcp_socket.port == 7860
    assert validated(manifests["service"]).spec.ports[0].target_port == "http"
    assert validated(manifests["ingress"]).spec.rules[0].host == "demo.example.com"
    broken = copy.deepcopy(manifests["deployment"])
    del broken["spec"]["template"]["spec"]["containers"][0]["name"]
    with pytest.raises(ValueError, match="name"):  # the check is real: a missing required field fails
        validated(broken)


def test_a_cards_python_version_picks_the_stock_python_images_tag():
    runtime = KubernetesRuntime(Settings(runtime="kubernetes", public_url="http://gitd.gitd:8080"), states=None)
    repo = gitd.RepoInfo(7, "alice", "Demo", "space", False, Path("/nowhere"))
    body = runtime.space_resource(repo, COMMIT, b"---\nsdk: gradio\npython_version: '3.10'\n---\n")
    jsonschema.validate(body, yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    assert body["spec"]["pythonVersion"] == "3.10"
    app = validated(render({**body["spec"], "tokenSecret": "t"}, "alice--demo", "spaces")["deployment"])
    assert app.spec.template.spec.containers[0].image == "python:3.10-slim"
    own = render({**SPEC, "image": "registry.example/team/py:1", "pythonVersion": "3.10"}, "alice--demo", "spaces")
    assert validated(own["deployment"]).spec.template.spec.containers[0].image == "registry.example/team/py:1"


def test_secrets_reach_the_pods_by_a_secret_reference_and_variables_by_the_spec():
    runtime = KubernetesRuntime(Settings(runtime="kubernetes", public_url="http://gitd.gitd:8080"), states=None)
    repo = gitd.RepoInfo(7, "alice", "Demo", "space", False, Path("/nowhere"))
    body = runtime.space_resource(repo, COMMIT, b"---\nsdk: gradio\n---\n", {"MODEL": "alice/m"}, "d1g3st")
    jsonschema.validate(body, yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    spec = body["spec"]
    assert spec["env"] == {"MODEL": "alice/m"} and spec["envSecret"] == "alice--demo-env"
    assert "s3cr3t" not in json.dumps(body)  # the resource never holds a secret's value
    secret = validated(env_secret("alice--demo", "spaces", {"API_KEY": "s3cr3t"}))
    assert secret.metadata.name == "alice--demo-env" and secret.string_data == {"API_KEY": "s3cr3t"}
    pod = validated(render(spec, "alice--demo", "spaces")["deployment"]).spec.template
    app = pod.spec.containers[0]
    assert app.env_from[0].secret_ref.name == "alice--demo-env"
    assert {e.name: e.value for e in app.env}["MODEL"] == "alice/m"
    assert pod.metadata.annotations["gitd.dev/env-digest"] == "d1g3st"  # new secrets: new pods
    plain = validated(render({**spec, "envSecret": None, "envDigest": None}, "alice--demo", "spaces")["deployment"])
    assert plain.spec.template.spec.containers[0].env_from is None


def test_a_docker_space_is_built_by_kaniko_into_the_image_it_runs():
    manifests = render({**SPEC, "sdk": "docker", "image": None, "registry": "registry.local:5000/spaces",
                        "appPort": 8000}, "alice--demo", "spaces")
    job = validated(manifests["build"])
    image = "registry.local:5000/spaces/alice--demo:" + COMMIT[:12]
    assert f"--destination={image}" in job.spec.template.spec.containers[0].args
    assert validated(manifests["deployment"]).spec.template.spec.containers[0].image == image


def test_reconcile_is_idempotent_follows_the_spec_and_cleans_up():
    memo = kopf.Memo(applier=MemoryApplier(validated))
    body = space_body({**SPEC, "host": "demo.example.com"})
    patch, result = call(handlers.reconcile, body, memo)
    assert result == {"applied": ["deployment", "ingress", "service"]}
    assert patch.status["stage"] == "BUILDING" and patch.status["commit"] == COMMIT
    first = copy.deepcopy(memo.applier.objects)
    assert all(o["metadata"]["ownerReferences"][0]["kind"] == "Space" for o in first.values())
    call(handlers.reconcile, body, memo)
    assert memo.applier.objects == first  # the same desired state, rendered again

    newer = "beef" + "1" * 36
    call(handlers.reconcile, space_body({**SPEC, "commit": newer, "paused": True}), memo)
    objects = memo.applier.objects
    assert ("Ingress", "spaces", "alice--demo") not in objects  # no host any more: no Ingress
    deployment = objects[("Deployment", "spaces", "alice--demo")]
    assert deployment["spec"]["replicas"] == 0 and deployment["metadata"]["annotations"]["gitd.dev/commit"] == newer

    handlers.delete(name="alice--demo", namespace="spaces", memo=memo, logger=logging.getLogger("test"))
    assert memo.applier.objects == {}


def test_a_bad_spec_is_a_permanent_error_with_its_reason_on_the_status():
    memo = kopf.Memo(applier=MemoryApplier(validated))
    body = space_body({**SPEC, "sdk": "docker", "image": None})
    patch = kopf.Patch()
    with pytest.raises(kopf.PermanentError, match=r"spec\.registry"):
        handlers.reconcile(spec=body["spec"], name="alice--demo", namespace="spaces", body=body, patch=patch,
                           memo=memo, logger=logging.getLogger("test"))
    assert patch.status["stage"] == "CONFIG_ERROR" and memo.applier.objects == {}


def test_deployment_readiness_becomes_the_space_stage():
    memo = kopf.Memo(applier=MemoryApplier(validated))
    call(handlers.reconcile, space_body(SPEC), memo)
    deployment = copy.deepcopy(memo.applier.objects[("Deployment", "spaces", "alice--demo")])
    handlers.deployment_event(body=deployment, memo=memo, logger=logging.getLogger("test"))
    assert memo.applier.statuses["spaces", "alice--demo"]["stage"] == "APP_STARTING"
    deployment["status"] = {"readyReplicas": 1, "updatedReplicas": 1}
    handlers.deployment_event(body=deployment, memo=memo, logger=logging.getLogger("test"))
    assert memo.applier.statuses["spaces", "alice--demo"]["stage"] == "RUNNING"
    deployment["status"] = {"conditions": [{"type": "Progressing", "status": "False",
                                            "message": "ProgressDeadlineExceeded"}]}
    handlers.deployment_event(body=deployment, memo=memo, logger=logging.getLogger("test"))
    assert memo.applier.statuses["spaces", "alice--demo"] == {"stage": "RUNTIME_ERROR",
                                                             "message": "ProgressDeadlineExceeded"}


def test_the_handlers_are_registered_with_kopf_for_spaces():
    registry = kopf.get_default_registry() if hasattr(kopf, "get_default_registry") else None
    if registry is None:
        pytest.skip("this kopf has no default registry accessor")
    names = {h.id for h in registry._changing.get_all_handlers()}
    assert {"reconcile", "delete"} <= {n.split("/")[0] for n in names}
    assert resource_name("Alice/My_Space") == "alice--my-space"
