"""Fine-tune jobs end to end on the local runtime: a tiny model and a private dataset pushed to a
live gitd, jobs created through the plugin's API, trained by a supervised subprocess that
downloads both from gitd and pushes one commit, and the result read back with huggingface_hub
and transformers (the metadata plugin's lineage in model_info)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.e2e.finetune.conftest import JOBS, World


def wait_lineage(w: World, repo: str, tag: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        info = w.api().model_info(repo)
        if tag in (info.tags or []):
            return info
        assert time.monotonic() < deadline, info.tags
        time.sleep(0.3)


def test_lora_and_full_jobs_push_models_whose_info_names_the_base_model(world: World, tmp_path: Path):
    w = world
    lora = w.create(config={"method": "lora", "max_steps": 3, "batch_size": 8, "learning_rate": 1e-3})
    full = w.create(target=f"{w.user}/full-tune", config={"method": "full", "max_steps": 2, "batch_size": 8})
    assert lora["status"] in ("pending", "running") and lora["target"].startswith(f"{w.model}-lora-")
    assert len(lora["model_revision"]) == 40 and len(lora["dataset_revision"]) == 40  # pinned
    listed = {j["id"] for j in w.http("GET", JOBS)[1]}
    assert {lora["id"], full["id"]} <= listed

    done = {name: w.finished(job["id"]) for name, job in (("lora", lora), ("full", full))}
    for name, job in done.items():
        assert job["status"] == "succeeded", (name, job, w.http("GET", f"{JOBS}/{job['id']}/logs")[1])
        assert job["reason"] is None and len(job["result_commit"]) == 40
        assert isinstance(job["loss"], float)
    assert (done["lora"]["step"], done["full"]["step"]) == (3, 2)
    log = w.http("GET", f"{JOBS}/{lora['id']}/logs")[1]
    assert "step 3/3" in log and f"pushed {done['lora']['result_commit']}" in log

    # The cards set the lineage; the metadata plugin records it and model_info shows it.
    info = wait_lineage(w, lora["target"], f"base_model:adapter:{w.model}")
    assert info.card_data.base_model == w.model and info.card_data.base_model_relation == "adapter"
    assert info.card_data.datasets == [w.dataset]
    assert info.private is True  # trained on a private dataset: private by default
    assert [c.commit_id for c in w.api().list_repo_commits(lora["target"])] == [done["lora"]["result_commit"]]
    adapter = json.loads(Path(w.api().hf_hub_download(lora["target"], "adapter_config.json",
                                                      cache_dir=tmp_path)).read_text())
    assert adapter["base_model_name_or_path"] == w.model
    info = wait_lineage(w, full["target"], f"base_model:finetune:{w.model}")
    assert info.card_data.base_model_relation == "finetune"

    # The full fine-tune is a model transformers loads from gitd, with different weights.
    import torch
    from transformers import AutoModelForCausalLM

    tuned = AutoModelForCausalLM.from_pretrained(w.api().snapshot_download(full["target"], local_dir=tmp_path / "t"))
    base = AutoModelForCausalLM.from_pretrained(w.api().snapshot_download(w.model, local_dir=tmp_path / "b"))
    name, weight = next(iter(tuned.state_dict().items()))
    assert weight.shape == base.state_dict()[name].shape and not torch.equal(weight, base.state_dict()[name])


def test_jobs_are_their_owners(world: World):
    w = world
    job = w.http("GET", JOBS)[1][0]
    _, stranger = w.daemon.user()
    assert w.http("GET", f"{JOBS}/{job['id']}", token=stranger)[0] == 404
    assert w.http("POST", f"{JOBS}/{job['id']}/cancel", token=stranger)[0] == 404
    assert w.http("GET", JOBS, token=stranger) == (200, [])
