"""The inference operator, without a cluster: its Deployments and Services are rendered from
the kubernetes client's typed models and read back by the client's own deserializer; its
kopf handlers are called with kopf's real Patch and Memo objects, writing through an
in-memory applier that holds objects as the API server would (create-or-replace by kind,
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
from gitd_plugins.inference.kube import KubernetesRuntime
from gitd_plugins.inference.operator import handlers
from gitd_plugins.inference.operator.render import render, resource_name
from gitd_plugins.inference.settings import Settings
from gitd_plugins.inference.store import Endpoint
from kubernetes.client import ApiClient

from tests.operator_support import MemoryApplier, call

CRD = Path(handlers.__file__).with_name("crd.yaml")
COMMIT = "c0ffee" + "0" * 34
SPEC = {"repo": "alice/tiny", "commit": COMMIT, "engine": "vllm", "hubUrl": "http://gitd.gitd:8080",
        "tokenSecret": "ie-3-tiny-token", "gpus": 2, "nodeSelector": {"gpu": "h100"}, "memory": "32Gi"}
MODELS = {"Deployment": "V1Deployment", "Service": "V1Service", "Secret": "V1Secret",
          "CustomResourceDefinition": "V1CustomResourceDefinition"}
NAME, NS = "ie-3-tiny", "inference"
LOG = logging.getLogger("test")


def validated(manifest: dict):
    """The manifest read back into the client's model (required fields, enumerations checked)."""
    return ApiClient().deserialize(json.dumps(manifest), MODELS[manifest["kind"]], "application/json")


def body(spec: dict) -> dict:
    return {"apiVersion": "gitd.dev/v1", "kind": "InferenceEndpoint",
            "metadata": {"name": NAME, "namespace": NS, "uid": "0b5e55ed-0000-4000-8000-000000000003"}, "spec": spec}


def reconcile(spec: dict, memo: kopf.Memo) -> tuple[kopf.Patch, object]:
    return call(handlers.reconcile, body(spec), memo)


def test_crd_is_valid_and_admits_what_the_daemon_writes():
    crd = yaml.safe_load(CRD.read_text())
    assert validated(crd).spec.names.kind == "InferenceEndpoint"
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    runtime = KubernetesRuntime(Settings(runtime="kubernetes", public_url="http://gitd.gitd:8080",
                                         image="registry.local/gitd-inference:1"), None, lambda e: "gitds.token")
    endpoint = Endpoint(3, "Tiny", "alice", 7, "alice/tiny", "main", COMMIT, "transformers", "pending",
                        resources={"gpus": 1, "node_selector": {"gpu": "l4"}, "memory": 1 << 30})
    resource = runtime.resource(endpoint, paused=False)
    jsonschema.validate(resource, schema)
    assert resource["metadata"]["name"] == "ie-3-tiny" and resource["spec"]["tokenSecret"] == "ie-3-tiny-token"
    assert resource["spec"]["nodeSelector"] == {"gpu": "l4"} and resource["spec"]["image"].endswith(":1")
    secret = validated(runtime.secret(endpoint))
    assert secret.data["token"] and secret.metadata.name == "ie-3-tiny-token"
    # the daemon's resource renders as it is
    assert validated(render(resource["spec"], "ie-3-tiny", NS)["deployment"]).spec.replicas == 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"spec": {**SPEC, "engine": "llamacpp"}}, schema)


@pytest.mark.parametrize(("engine", "flag"), [("vllm", "--tensor-parallel-size"), ("tgi", "--num-shard"),
                                              ("transformers", "--max-memory")])
def test_each_engine_renders_a_gpu_deployment_that_fetches_from_gitd(engine, flag):
    spec = {**SPEC, "engine": engine, **({"image": "registry.local/gitd-inference:1"} if engine == "transformers"
                                         else {})}
    manifests = render(spec, NAME, NS)
    deployment = validated(manifests["deployment"])
    pod = deployment.spec.template.spec
    container = pod.containers[0]
    assert flag in container.args and COMMIT in container.args and "alice/tiny" in container.args
    env = {e.name: e for e in container.env}
    assert env["HF_ENDPOINT"].value == "http://gitd.gitd:8080"
    assert env["HF_TOKEN"].value is None and env["HF_TOKEN"].value_from.secret_key_ref.name == "ie-3-tiny-token"
    assert container.resources.limits["nvidia.com/gpu"] == "2" and container.resources.limits["memory"] == "32Gi"
    assert pod.node_selector == {"gpu": "h100"} and pod.tolerations[0].key == "nvidia.com/gpu"
    assert container.readiness_probe.http_get.path == "/health" and pod.automount_service_account_token is False
    assert not container.security_context.allow_privilege_escalation
    assert validated(manifests["service"]).spec.ports[0].target_port == "http"
    broken = copy.deepcopy(manifests["deployment"])
    del broken["spec"]["template"]["spec"]["containers"][0]["image"]
    assert validated(broken).spec.template.spec.containers[0].image is None  # optional in the model...
    del broken["spec"]["selector"]
    with pytest.raises(ValueError, match="selector"):  # ...a required field is checked for real
        validated(broken)


def test_a_cpu_endpoint_asks_for_no_gpu():
    spec = {**SPEC, "engine": "transformers", "image": "registry.local/gitd-inference:1", "gpus": 0,
            "nodeSelector": None}
    pod = validated(render(spec, NAME, NS)["deployment"]).spec.template.spec
    assert "nvidia.com/gpu" not in pod.containers[0].resources.limits and pod.tolerations is None
    assert pod.node_selector is None and "cpu" in pod.containers[0].args


def test_reconcile_is_idempotent_follows_the_spec_and_cleans_up():
    memo = kopf.Memo(applier=MemoryApplier(validated))
    patch, result = reconcile(SPEC, memo)
    assert result == {"applied": ["deployment", "service"]}
    assert patch.status["status"] == "pending" and patch.status["commit"] == COMMIT
    first = copy.deepcopy(memo.applier.objects)
    assert all(o["metadata"]["ownerReferences"][0]["kind"] == "InferenceEndpoint" for o in first.values())
    reconcile(SPEC, memo)
    assert memo.applier.objects == first  # the same desired state, rendered again

    patch, _ = reconcile({**SPEC, "paused": True}, memo)  # stopped: scaled to zero, the Service kept
    assert memo.applier.objects[("Deployment", NS, NAME)]["spec"]["replicas"] == 0
    assert patch.status["status"] == "stopped" and ("Service", NS, NAME) in memo.applier.objects

    handlers.delete(name=NAME, namespace=NS, memo=memo, logger=LOG)
    assert memo.applier.objects == {}


@pytest.mark.parametrize(("change", "message"), [({"engine": "llamacpp"}, "spec.engine"),
                                                 ({"commit": "main"}, "spec.commit"),
                                                 ({"engine": "transformers"}, "spec.image"),
                                                 ({"hubUrl": ""}, "spec.hubUrl")])
def test_a_bad_spec_fails_permanently_with_its_reason(change, message):
    memo = kopf.Memo(applier=MemoryApplier(validated))
    b, patch = body({**SPEC, **change}), kopf.Patch()
    with pytest.raises(kopf.PermanentError, match=message.replace(".", r"\.")):
        handlers.reconcile(spec=b["spec"], name=NAME, namespace=NS, body=b, patch=patch, memo=memo, logger=LOG)
    assert patch.status["status"] == "failed" and message in patch.status["reason"]
    assert memo.applier.objects == {}


def test_deployment_readiness_becomes_the_endpoint_status():
    memo = kopf.Memo(applier=MemoryApplier(validated))
    reconcile(SPEC, memo)
    deployment = copy.deepcopy(memo.applier.objects[("Deployment", NS, NAME)])
    key = ("inferenceendpoints", NAME)
    handlers.deployment_event(body=deployment, memo=memo, logger=LOG)
    assert memo.applier.statuses[key]["status"] == "loading"
    deployment["status"] = {"readyReplicas": 1, "updatedReplicas": 1}
    handlers.deployment_event(body=deployment, memo=memo, logger=LOG)
    assert memo.applier.statuses[key]["status"] == "running"
    deployment["status"] = {"conditions": [{"type": "Progressing", "status": "False",
                                            "message": "ProgressDeadlineExceeded"}]}
    handlers.deployment_event(body=deployment, memo=memo, logger=LOG)
    assert memo.applier.statuses[key] == {"status": "failed", "reason": "ProgressDeadlineExceeded"}
    deployment["spec"]["replicas"] = 0
    handlers.deployment_event(body=deployment, memo=memo, logger=LOG)
    assert memo.applier.statuses[key]["status"] == "stopped"
    # a Deployment owned by something else is not an endpoint's
    other = copy.deepcopy(deployment)
    other["metadata"]["ownerReferences"][0]["kind"] = "Space"
    memo.applier.statuses.clear()
    handlers.deployment_event(body=other, memo=memo, logger=LOG)
    assert memo.applier.statuses == {}


def test_resource_names_are_dns_labels():
    assert resource_name(12, "My_Model.v2") == "ie-12-my-model-v2"
    assert len(resource_name(1, "x" * 100)) <= 63


def test_gitd_operator_runs_every_plugins_operator_in_one_kopf_registry(tmp_path):
    from gitd_plugins.spaces import SpacesPlugin

    from gitd.operator.run import operator_modules
    from gitd.testing import PluginHarness
    from tests.support import run_cli

    run_cli(tmp_path / "data", "init", str(tmp_path / "data"))
    _, out, _ = run_cli(tmp_path / "data", "operator", "--list")
    assert out.split() == ["gitd_plugins.finetune.operator.handlers", "gitd_plugins.inference.operator.handlers",
                           "gitd_plugins.spaces.operator.handlers"]
    h = PluginHarness(SpacesPlugin, tmp_path / "h", name="spaces")  # a plugin without one lists none of the others
    assert operator_modules(h.parts.plugins) == ["gitd_plugins.spaces.operator.handlers"]
    # Both modules' handlers sit side by side in kopf's registry, each on its own resource.
    import gitd_plugins.spaces.operator.handlers  # noqa: F401

    registry = kopf.get_default_registry()
    plurals = {h.selector.any_name for h in registry._changing.get_all_handlers() if h.selector}
    assert {"spaces", "inferenceendpoints"} <= plurals
