"""The built-in metadata plugin through the ``gitd_harness`` fixture: real repositories,
the real hook chain, job queue, LFS store and HTTP application; real safetensors, GGUF
and Parquet files written by their own libraries."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
from gitd_plugins.metadata import MetadataPlugin
from safetensors import safe_open

import gitd
from gitd.testing import LfsBytes
from tests.metadata_files import gguf_bytes, parquet_bytes, safetensors_bytes, tiny_llama

CARD = """---
license: apache-2.0
language: [en, fr]
library_name: transformers
datasets: [alice/corpus]
base_model: alice/base
tags: [chat]
---
# A model
"""
CONFIG = '{"model_type": "llama", "architectures": ["LlamaForCausalLM"], "torch_dtype": "float16"}'


def harness(gitd_harness, **settings):
    return gitd_harness(MetadataPlugin, name="metadata", settings=settings)


def last_job(h, repo) -> dict:
    return h.storage.kv.get(f"last-job:{repo.id}")


def test_a_transformers_model_gets_the_hubs_fields_and_tags(gitd_harness, tmp_path):
    h = harness(gitd_harness)
    weights = safetensors_bytes(tiny_llama())
    repo = h.repo("alice/model", files={"README.md": CARD, "config.json": CONFIG, "tokenizer.json": "{}",
                                        "model.safetensors": LfsBytes(weights)})
    h.run_jobs()
    info = h.repo_info(repo)
    # the safetensors package reads the same file: the counts must agree with it
    (tmp_path / "m.safetensors").write_bytes(weights)
    with safe_open(tmp_path / "m.safetensors", "np") as f:
        expected: dict[str, int] = {}
        for name in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
            t = f.get_tensor(name)
            dtype = {"float16": "F16", "float32": "F32"}[str(t.dtype)]
            expected[dtype] = expected.get(dtype, 0) + t.size
    assert info["safetensors"] == {"parameters": expected, "total": sum(expected.values())}
    assert expected == {"F16": 2 * 8 * 16 + 16, "F32": 8 * 16}
    assert info["config"] == {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "torch_dtype": "float16"}
    assert info["transformersInfo"] == {"auto_model": "AutoModelForCausalLM", "pipeline_tag": "text-generation",
                                        "processor": "AutoTokenizer"}
    assert info["pipeline_tag"] == "text-generation" and info["library_name"] == "transformers"
    for tag in ("chat", "transformers", "safetensors", "text-generation", "llama", "en", "fr", "license:apache-2.0",
                "dataset:alice/corpus", "base_model:alice/base", "base_model:finetune:alice/base"):
        assert tag in info["tags"], tag
    assert not any(t.startswith("region:") for t in info["tags"])
    assert info["metadataCategories"] == {"task": ["text-generation"],
                                          "framework": ["transformers", "safetensors"],
                                          "language": ["en", "fr"], "license": ["apache-2.0"]}
    assert info["metadataFlags"] == []
    # The Hub's answer carries them: the card's values stay, the plugin's fill in and add.
    answer = h.http("GET", "/api/models/alice/model").json()
    assert answer["safetensors"]["total"] == sum(expected.values())
    assert answer["library_name"] == "transformers" and "llama" in answer["tags"]


def test_a_gguf_file_gives_architecture_parameters_quantisation_and_context(gitd_harness, tmp_path):
    h = harness(gitd_harness)
    data = gguf_bytes(context_length=8192)
    repo = h.repo("alice/q", files={"README.md": "---\nlicense: mit\nbase_model: alice/model\n---\n",
                                    "tiny-Q4_K_M.gguf": LfsBytes(data)})
    h.run_jobs()
    info = h.repo_info(repo)
    (tmp_path / "m.gguf").write_bytes(data)
    reader = gguf.GGUFReader(tmp_path / "m.gguf")  # the gguf package's own reading of the file
    total = sum(int(np.prod(t.shape)) for t in reader.tensors)
    assert info["gguf"] == {"total": total, "architecture": "llama", "context_length": 8192, "file_type": "Q4_K_M",
                            "quantizations": ["Q4_K_M"]}
    assert total == 2 * 32 * 8
    assert {"gguf", "base_model:quantized:alice/model"} <= set(info["tags"])
    assert info["library_name"] == "gguf"


def test_a_push_that_changes_one_readme_reads_only_that_file(gitd_harness):
    h = harness(gitd_harness)
    shards = {f"model-0000{i}-of-00003.safetensors": LfsBytes(safetensors_bytes({f"w{i}": np.zeros((4, 4), "f4")}))
              for i in range(1, 4)}
    repo = h.repo("alice/sharded", files={"README.md": CARD, "config.json": CONFIG, **shards})
    h.run_jobs()
    assert sorted(last_job(h, repo)["files_read"]) == sorted(["README.md", "config.json", *shards])
    h.commit(repo, {"README.md": CARD.replace("apache-2.0", "mit"), "notes.txt": "x"})
    h.run_jobs()
    assert last_job(h, repo)["files_read"] == ["README.md"]
    info = h.repo_info(repo)
    assert "license:mit" in info["tags"] and "license:apache-2.0" not in info["tags"]
    assert info["safetensors"]["total"] == 3 * 16  # from the stored facts of files not read again
    # Another branch changes nothing; the default branch's next commit reads only what it changed.
    h.commit(repo, {"config.json": "{}"}, branch="dev")
    h.run_jobs()
    assert last_job(h, repo)["files_read"] == ["README.md"]
    # A re-run (a job retried after a crash) finds nothing to do.
    h.context.submit(h.refresh(repo), "retag", {"rederive": False}, key="again")
    h.run_jobs()
    assert last_job(h, repo)["files_read"] == ["README.md"]


def test_deleting_files_removes_what_they_said(gitd_harness):
    h = harness(gitd_harness)
    repo = h.repo("alice/m", files={"README.md": "---\nlicense: mit\n---\n", "a.gguf": LfsBytes(gguf_bytes()),
                                    "model.onnx": b"onnx"})
    h.run_jobs()
    assert {"gguf", "onnx"} <= set(h.repo_info(repo)["tags"])
    h.commit(repo, {"a.gguf": None})
    h.run_jobs()
    info = h.repo_info(repo)
    assert "gguf" not in info["tags"] and "onnx" in info["tags"] and "gguf" not in info


def test_a_dataset_gets_formats_modalities_and_size_from_parquet_footers(gitd_harness):
    h = harness(gitd_harness)
    repo = h.repo("alice/ds", type="dataset", files={
        "README.md": "---\nlicense: cc-by-4.0\n---\n",
        "data/train-00000.parquet": LfsBytes(parquet_bytes(1500, image=True)),
        "data/test-00000.parquet": parquet_bytes(600),
        "extra/notes.csv": "a,b\n1,2\n"})
    h.run_jobs()
    tags = h.repo_info(repo)["tags"]
    for tag in ("format:parquet", "format:csv", "modality:image", "modality:text", "modality:tabular",
                "size_categories:1K<n<10K", "library:datasets", "license:cc-by-4.0"):
        assert tag in tags, tag
    assert h.http("GET", "/api/datasets?filter=size_categories:1K<n<10K").json()[0]["id"] == "alice/ds"


def test_an_image_folder_dataset(gitd_harness):
    h = harness(gitd_harness)
    repo = h.repo("alice/imgs", type="dataset", files={"train/cat/1.jpg": b"\xff\xd8", "train/dog/2.png": b"\x89P"})
    h.run_jobs()
    assert {"format:imagefolder", "modality:image"} <= set(h.repo_info(repo)["tags"])


def test_custom_categories_and_rules(gitd_harness):
    h = harness(gitd_harness, categories=["framework", "industry"],
                rules=["file:*.gguf -> framework:llama.cpp", "card:tags=medical -> industry:healthcare",
                       "card:extra_gated_prompt -> industry:gated"])
    repo = h.repo("alice/med", files={"README.md": "---\ntags: [Medical]\nextra_gated_prompt: agree\n---\n",
                                      "sub/m.gguf": LfsBytes(gguf_bytes())})
    h.run_jobs()
    info = h.repo_info(repo)
    assert {"framework:llama.cpp", "industry:healthcare", "industry:gated"} <= set(info["tags"])
    assert info["metadataCategories"]["industry"] == ["healthcare", "gated"]
    assert "llama.cpp" in info["metadataCategories"]["framework"]


@pytest.mark.parametrize(("rule", "error"), [
    ("file:*.gguf => framework:x", "is not 'file:GLOB"),
    ("file:*.gguf -> colour:red", "category 'colour' is not one of categories"),
])
def test_bad_rules_are_refused_naming_the_rule(gitd_harness, rule, error):
    with pytest.raises(gitd.SettingsError, match=r"plugins\.metadata\.rules\[0\]: .*" + error):
        harness(gitd_harness, rules=[rule])


def test_licenses_are_checked(gitd_harness):
    h = harness(gitd_harness)
    none = h.repo("alice/none", files={"README.md": "# no card\n"})
    odd = h.repo("alice/odd", files={"README.md": "---\nlicense: my-own-license\n---\n"})
    other = h.repo("alice/other", files={"README.md": "---\nlicense: other\n---\n"})
    spdx = h.repo("alice/spdx", files={"README.md": "---\nlicense: Apache-2.0\n---\n"})
    h.run_jobs()

    def messages(repo):
        return [f["message"] for f in h.repo_info(repo)["metadataFlags"] if f["kind"] == "license"]

    assert messages(none) == ["the card names no license (add `license:` to README.md's front matter)"]
    assert messages(odd) == ["license `my-own-license` is neither an SPDX identifier nor one the Hub knows"]
    assert messages(other) == ["license is `other` but the card gives no `license_name`"]
    assert messages(spdx) == []


def test_a_fine_tune_licensed_against_its_base_model_is_flagged(gitd_harness):
    h = harness(gitd_harness)
    h.repo("alice/base", files={"README.md": "---\nlicense: cc-by-nc-4.0\n---\n"})
    child = h.repo("bob/tune", files={"README.md": "---\nlicense: apache-2.0\nbase_model: alice/base\n---\n"})
    fine = h.repo("bob/fine", files={"README.md": "---\nlicense: cc-by-nc-sa-4.0\nbase_model: alice/base\n---\n"})
    h.run_jobs()
    flags = [f["message"] for f in h.repo_info(child)["metadataFlags"]]
    assert flags == ["the base model alice/base is licensed cc-by-nc-4.0 is non-commercial: a derivative keeps "
                     "that license, not apache-2.0"]
    assert h.repo_info(fine)["metadataFlags"] == []


def test_a_base_models_new_license_retags_its_fine_tunes(gitd_harness):
    h = harness(gitd_harness)
    child = h.repo("bob/tune", files={"README.md": "---\nlicense: apache-2.0\nbase_model: alice/base\n---\n"})
    h.run_jobs()
    assert h.repo_info(child)["metadataFlags"] == []  # the base is not here yet
    h.repo("alice/base", files={"README.md": "---\nlicense: llama3\n---\n"})
    h.run_jobs()
    assert "llama3 is with its own terms of use" in h.repo_info(child)["metadataFlags"][0]["message"]


def test_regression_a_private_base_models_license_does_not_show_on_a_public_fine_tune(gitd_harness):
    h = harness(gitd_harness)
    base = h.repo("alice/secret-base", private=True, files={"README.md": "---\nlicense: cc-by-nc-4.0\n---\n"})
    child = h.repo("bob/tune", files={"README.md": "---\nlicense: apache-2.0\nbase_model: alice/secret-base\n---\n"})
    h.run_jobs()
    assert h.repo_info(child)["metadataFlags"] == []
    h.set_private(base, False)  # once public, the check may use it
    h.run_jobs()
    assert len(h.repo_info(child)["metadataFlags"]) == 1
    h.set_private(base, True)
    h.run_jobs()
    assert h.repo_info(child)["metadataFlags"] == []


def test_the_cli_shows_tags_and_flags_and_queues_a_retag(gitd_harness):
    h = harness(gitd_harness)
    h.repo("alice/m", files={"README.md": "---\nlicense: nope\ntags: [x]\n---\n"})
    h.run_jobs()
    code, out = h.cli("metadata", "tags", "alice/m")
    assert code == 0
    assert out.splitlines()[1:] == ["x", "license:nope",
                                    "! license: license `nope` is neither an SPDX identifier nor one the Hub knows"]
    code, out = h.cli("metadata", "retag", "alice/m", "--full")
    assert code == 0 and out.startswith("queued job ")
    assert h.run_jobs() == 1
    assert h.storage.kv.get(f"last-job:{h.context.find_repo('alice/m').id}")["files_read"] == ["README.md"]
    assert h.cli("metadata", "tags", "alice/nothing")[0] != 0


def test_the_http_routes_describe_and_retag(gitd_harness):
    h = harness(gitd_harness)
    h.user("eve")
    repo = h.repo("alice/m", files={"README.md": "---\nlicense: mit\n---\n", "w.safetensors": b"garbage"})
    h.run_jobs()
    d = h.http("GET", "/api/models/alice/m/metadata").json()
    assert d["commit"] == h.view(repo).head()
    assert d["files"][1] == {"path": "w.safetensors", "reader": "safetensors",
                             "warning": "w.safetensors: 7 bytes is too short for a safetensors file"}
    assert d["flags"] == [{"kind": "file", "path": "w.safetensors", "message": d["files"][1]["warning"]}]
    assert h.http("POST", "/api/models/alice/m/metadata/retag").status == 401
    assert h.http("POST", "/api/models/alice/m/metadata/retag", user="eve").status == 403
    assert h.http("POST", "/api/models/alice/m/metadata/retag", user="alice").json()["queued"] is True


def test_regression_a_job_publishing_older_facts_does_not_overwrite_newer_tags(gitd_harness):
    """Two jobs of one repository at once (a push while the previous push's job runs): the
    older job derived its tags from the facts it read, the newer job saved newer facts and
    published them before the older one wrote. The older job's publish must not win (it
    left stale tags and fields behind, seen under load in the e2e metadata tests)."""
    h = harness(gitd_harness)
    repo = h.repo("alice/m", files={"README.md": "---\nlicense: mit\n---\n"})
    h.run_jobs()
    assert "license:mit" in h.repo_info(repo)["tags"]
    store, tagger = h.plugin.store, h.plugin.tagger
    read_stored = store.stored

    def newer_job_runs_meanwhile(repo_id: int, repo_type: str):
        stored = read_stored(repo_id, repo_type)  # the older job has read its facts
        store.stored = read_stored
        h.commit(repo, {"README.md": "---\nlicense: apache-2.0\n---\n"})
        h.run_jobs()  # the newer job saves and publishes apache-2.0
        assert "license:apache-2.0" in h.repo_info(repo)["tags"]
        return stored

    store.stored = newer_job_runs_meanwhile
    try:
        tagger.publish(h.refresh(repo))  # the older job publishes what it derived (mit)
    finally:
        store.stored = read_stored
    tags = h.repo_info(repo)["tags"]
    assert "license:apache-2.0" in tags and "license:mit" not in tags
    assert h.plugin.describe(h.refresh(repo))["commit"] == h.view(repo).head()


def test_the_metadata_route_names_the_commit_its_tags_describe(gitd_harness):
    """The facts of a new commit are saved a moment before its tags are published: in
    between, the route still names the commit of the tags it answers with."""
    h = harness(gitd_harness)
    repo = h.repo("alice/m", files={"README.md": "---\nlicense: mit\n---\n"})
    h.run_jobs()
    first = h.view(repo).head()
    store, tagger = h.plugin.store, h.plugin.tagger
    seen = []
    publish = tagger.publish

    def look_then_publish(r):
        seen.append(h.plugin.describe(r))  # facts saved, tags not yet published
        publish(r)

    tagger.publish = look_then_publish
    h.commit(repo, {"README.md": "---\nlicense: apache-2.0\n---\n"})
    tagger.tag(h.refresh(repo))
    assert store.state(repo.id).commit == h.view(repo).head() != first
    assert seen[0]["commit"] == first and "license:mit" in seen[0]["tags"]
    assert h.plugin.describe(h.refresh(repo))["commit"] == h.view(repo).head()
