"""The fine-tune operator, without a cluster: the FinetuneJob CRD is a valid CustomResourceDefinition
that admits what the daemon writes; the ConfigMap and Job it renders are read back by the
kubernetes client's own deserializer; its kopf handlers are called with kopf's real Patch and
Memo objects, writing through an in-memory applier that keeps objects as the API server would."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import jsonschema
import kopf
import pytest
import yaml
from gitd_plugins.finetune.kube import KubernetesJobs
from gitd_plugins.finetune.operator import handlers
from gitd_plugins.finetune.operator.render import TRAIN, render, status_of, train_spec
from gitd_plugins.finetune.settings import Settings
from gitd_plugins.finetune.state import Job
from kubernetes.client import ApiClient

from tests.operator_support import MemoryApplier, call

CRD = Path(handlers.__file__).with_name("crd.yaml")
MODEL_SHA, DATA_SHA = "a" * 40, "b" * 40
MODELS = {"Job": "V1Job", "ConfigMap": "V1ConfigMap", "Secret": "V1Secret",
          "CustomResourceDefinition": "V1CustomResourceDefinition"}


def validated(manifest: dict):
    return ApiClient().deserialize(json.dumps(manifest), MODELS[manifest["kind"]], "application/json")


def a_job(**overrides) -> Job:
    fields = dict(id=7, owner="alice", model="alice/tiny", model_id=1, model_revision=MODEL_SHA,
                  dataset="alice/texts", dataset_id=2, dataset_revision=DATA_SHA, target="alice/tiny-lora-1",
                  target_id=3, config={"method": "lora", "epochs": 2, "learning_rate": 1e-3, "max_steps": 5,
                                       "batch_size": 4, "max_length": 128, "text_column": "", "lora_r": 8,
                                       "lora_alpha": 16, "seed": 0},
                  endpoint="http://gitd.gitd:8080", status="pending", runtime="kubernetes", created=0.0, updated=0.0)
    return Job(**{**fields, **overrides})


def runtime() -> KubernetesJobs:
    tokens = {"GITD_MODEL_TOKEN": "gitds.m", "GITD_DATASET_TOKEN": "gitds.d", "GITD_TARGET_TOKEN": "gitds.t"}
    return KubernetesJobs(Settings(runtime="kubernetes", endpoint="http://gitd.gitd:8080", image="trainer:1"),
                          jobs=None, tokens=lambda job: tokens)


def resource_body() -> dict:
    body = runtime().resource(a_job())
    body["metadata"]["uid"] = "0b5e55ed-0000-4000-8000-000000000007"
    return body


def test_the_crd_is_valid_and_admits_what_the_daemon_writes_and_the_secret_holds_the_tokens():
    crd = yaml.safe_load(CRD.read_text())
    model = validated(crd)
    assert model.spec.group == "gitd.dev" and model.spec.names.kind == "FinetuneJob"
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    body = resource_body()
    jsonschema.validate(body, schema)
    assert body["spec"]["training"] == {"method": "lora", "epochs": 2, "learningRate": 1e-3, "maxSteps": 5,
                                        "batchSize": 4, "maxLength": 128, "loraR": 8, "loraAlpha": 16, "seed": 0}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**body, "spec": {**body["spec"], "modelRevision": "main"}}, schema)  # pinned only
    secret = validated(runtime().secret(a_job()))
    assert sorted(secret.data) == ["dataset", "model", "target"]
    assert "gitds" not in json.dumps(body)  # no credential in the resource


def test_the_job_runs_the_training_program_once_unprivileged_with_its_tokens_from_the_secret():
    body = resource_body()
    manifests = render(body["spec"], "finetune-7", "gitd-finetune")
    configmap, job = validated(manifests["configmap"]), validated(manifests["job"])
    assert configmap.data["train.py"] == TRAIN.read_text()
    spec = json.loads(configmap.data["spec.json"])
    assert spec == train_spec(body["spec"])
    assert (spec["model"], spec["model_revision"], spec["method"], spec["max_steps"]) == ("alice/tiny", MODEL_SHA,
                                                                                         "lora", 5)
    assert job.spec.backoff_limit == 0 and job.spec.template.spec.restart_policy == "Never"
    pod = job.spec.template.spec
    assert pod.automount_service_account_token is False
    (container,) = pod.containers
    assert container.image == "trainer:1" and container.command[-2:] == ["/gitd/train.py", "/gitd/spec.json"]
    sc = container.security_context
    assert sc.run_as_non_root and not sc.allow_privilege_escalation and sc.capabilities.drop == ["ALL"]
    env = {e.name: e for e in container.env}
    assert env["HF_ENDPOINT"].value == "http://gitd.gitd:8080"
    assert {env[k].value_from.secret_key_ref.key for k in ("GITD_MODEL_TOKEN", "GITD_DATASET_TOKEN",
                                                            "GITD_TARGET_TOKEN")} == {"model", "dataset", "target"}
    assert container.resources.limits == {"memory": "8192Mi", "cpu": "4"}


def test_reconcile_is_idempotent_and_adopts_its_children():
    memo, body = kopf.Memo(), resource_body()
    memo.applier = MemoryApplier(validated)
    patch, result = call(handlers.reconcile, body, memo)
    assert result == {"applied": ["ConfigMap", "Job"]} and patch.status["phase"] == "pending"
    kinds = sorted(k for k, _, _ in memo.applier.objects)
    assert kinds == ["ConfigMap", "Job"]
    for (_, _, _), manifest in memo.applier.objects.items():
        (owner,) = manifest["metadata"]["ownerReferences"]
        assert owner["kind"] == "FinetuneJob" and owner["uid"] == body["metadata"]["uid"]
    before = copy.deepcopy(memo.applier.objects)
    patch, _ = call(handlers.reconcile, {**body, "status": {"phase": "running"}}, memo)  # resume
    assert memo.applier.creates == 2 and memo.applier.objects == before and "phase" not in patch.status


def test_a_bad_spec_is_a_permanent_failure_with_its_reason():
    memo, body = kopf.Memo(), resource_body()
    memo.applier = MemoryApplier(validated)
    del body["spec"]["endpoint"]
    with pytest.raises(kopf.PermanentError, match=r"spec\.endpoint is required"):
        call(handlers.reconcile, body, memo)
    body = resource_body()
    body["spec"]["training"]["method"] = "qlora"
    patch = kopf.Patch()
    with pytest.raises(kopf.PermanentError):
        handlers.reconcile(spec=body["spec"], name="x", namespace="n", body=body, patch=patch, memo=memo,
                           logger=logging.getLogger("t"))
    assert patch.status["phase"] == "failed" and "full or lora" in patch.status["message"]
    assert memo.applier.objects == {}


def test_the_jobs_state_becomes_the_finetunejobs_status():
    memo = kopf.Memo()
    memo.applier = MemoryApplier(validated)
    owner = [{"kind": "FinetuneJob", "name": "finetune-7", "uid": "u", "apiVersion": "gitd.dev/v1"}]
    for status, expected in (({}, ("pending", None)), ({"active": 1}, ("running", None)),
                             ({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]},
                              ("succeeded", None)),
                             ({"failed": 1, "conditions": [{"type": "Failed", "status": "True",
                                                            "reason": "DeadlineExceeded",
                                                            "message": "Job was active longer than specified"}]},
                              ("failed", "Job was active longer than specified"))):
        job = {"metadata": {"name": "finetune-7", "namespace": "gitd-finetune", "ownerReferences": owner},
               "status": status}
        assert status_of(job) == expected
        handlers.job_event(body=job, memo=memo, logger=logging.getLogger("t"))
        assert memo.applier.statuses["finetunejobs", "finetune-7"] == {"phase": expected[0], "message": expected[1]}


def test_the_handlers_are_registered_with_kopf_for_finetunejobs():
    registry = kopf.get_default_registry()
    names = {h.fn.__name__ for h in registry._changing.get_all_handlers()} | {
        h.fn.__name__ for h in registry._watching.get_all_handlers()}
    assert {"reconcile", "job_event"} <= names


def test_gitd_operator_runs_the_finetune_handlers_with_the_other_plugins(tmp_path):
    from tests.support import run_cli

    data = tmp_path / "data"
    run_cli(data, "init", str(data))
    _, listed, _ = run_cli(data, "operator", "--list")
    assert "gitd_plugins.finetune.operator.handlers" in listed.split()
