"""The built-in metadata plugin end to end: real pushes (huggingface_hub uploads with Git LFS,
and git with git-lfs) of real safetensors, GGUF and Parquet files written by their own
libraries, on local disk and on S3 (SeaweedFS); then huggingface_hub's model_info,
dataset_info, list_models and list_datasets show the derived values; private repositories
never leak through filters or lineage; bad files give warnings and the jobs complete."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import gguf
import numpy as np
import pytest
from huggingface_hub import HfApi
from safetensors import safe_open

from tests.e2e.hook_helpers import wait_for
from tests.lfs_support import Backend, lfs_git, lfs_work, write_settings
from tests.metadata_files import gguf_bytes, parquet_bytes, safetensors_bytes
from tests.support import Git, new_daemon, unique


@pytest.fixture
def no_xet(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)


@pytest.fixture(scope="module", params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def md(request: pytest.FixtureRequest, hub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """A daemon of its own per LFS backend; files above 1 KiB are uploaded to LFS."""
    root = tmp_path_factory.mktemp(f"hub-metadata-{request.param}")
    d = new_daemon(root, {"hub.regular_upload_max": "1KiB", "jobs.poll_interval": 0.2})
    backend = Backend("local", d)
    if request.param == "s3":
        seaweed = request.getfixturevalue("seaweed")
        bucket = seaweed.make_bucket(unique("hub-md").lower())
        write_settings(d.data, seaweed.gitd_settings(bucket))
        backend = Backend("s3", d, seaweed, bucket)
    d.start()
    yield backend
    d.stop()


def get(url: str, token: str | None = None) -> tuple[int, object]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def tagged(api: HfApi, repo: str, *, repo_type: str = "model", key: str = "metadataFlags"):
    """The info answer once the repository's metadata job has run on its head (its flags field
    is there, and the metadata route names the head: the first commit's job runs too)."""
    info = api.model_info if repo_type == "model" else api.dataset_info

    def ready():
        status, meta = get(f"{api.endpoint}/api/{repo_type}s/{repo}/metadata", api.token)
        i = info(repo)  # read after the metadata: it holds at least what the metadata says
        done = status == 200 and isinstance(meta, dict) and meta.get("commit") == i.sha
        # and the info answer already shows what the metadata holds
        done = done and (meta.get("last_job") or {}).get("commit") == i.sha
        done = done and set(meta.get("tags", [])) <= set(i.tags or [])
        done = done and all(getattr(i, k, None) is not None for k in ("safetensors", "gguf", "config")
                            if k in meta.get("fields", {}))
        return i if done and getattr(i, key, None) is not None else None

    return wait_for(ready, timeout=60, what=f"{repo} tagged")


def write(folder: Path, files: dict[str, bytes | str]) -> Path:
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    return folder


def test_model_info_and_list_models_carry_what_a_uploaded_models_files_say(md, no_xet, tmp_path):
    d = md.daemon
    user, token = d.user()
    api = HfApi(endpoint=d.url, token=token)
    repo = f"{user}/{unique('llama')}"
    api.create_repo(repo)
    shards = {f"model-0000{i}-of-00002.safetensors": safetensors_bytes(
        {f"layers.{i}.w": np.zeros((64, 64), dtype=np.float16), f"layers.{i}.b": np.zeros((64,), dtype=np.float32)})
        for i in (1, 2)}
    write(tmp_path / "up", {
        "README.md": f"---\nlicense: apache-2.0\nlanguage: [en]\nbase_model: {user}/base\ndatasets: [org/corpus]\n"
                     "---\n# tiny\n",
        "config.json": json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"],
                                   "torch_dtype": "float16"}),
        "tokenizer.json": "{}", **shards})
    api.upload_folder(repo_id=repo, folder_path=tmp_path / "up")
    info = tagged(api, repo)
    expected: dict[str, int] = {}
    for name, data in shards.items():  # the safetensors package's own reading of the files
        (tmp_path / name).write_bytes(data)
        with safe_open(tmp_path / name, "np") as f:
            for key in f.keys():  # noqa: SIM118
                t = f.get_tensor(key)
                dtype = {"float16": "F16", "float32": "F32"}[str(t.dtype)]
                expected[dtype] = expected.get(dtype, 0) + t.size
    assert info.safetensors.parameters == expected and info.safetensors.total == sum(expected.values())
    assert info.pipeline_tag == "text-generation" and info.library_name == "transformers"
    assert info.config == {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "torch_dtype": "float16"}
    assert info.transformers_info.auto_model == "AutoModelForCausalLM"
    assert info.transformers_info.processor == "AutoTokenizer"
    for tag in ("transformers", "safetensors", "text-generation", "llama", "en", "license:apache-2.0",
                "dataset:org/corpus", f"base_model:{user}/base", f"base_model:finetune:{user}/base"):
        assert tag in info.tags, tag
    assert info.card_data.license == "apache-2.0"
    assert info.base_models == {"relation": "finetune", "models": [{"id": f"{user}/base"}]}

    anon = HfApi(endpoint=d.url, token=False)
    found = list(anon.list_models(filter=["safetensors", f"base_model:finetune:{user}/base"], limit=50))
    assert [m.id for m in found] == [repo]
    assert found[0].pipeline_tag == "text-generation" and "llama" in found[0].tags
    assert [m.id for m in anon.list_models(pipeline_tag="text-generation", author=user)] == [repo]
    assert list(anon.list_models(filter="gguf", author=user)) == []
    (m,) = anon.list_models(author=user, search=repo.split("/")[1], expand=["safetensors", "config", "tags"])
    assert m.safetensors.total == sum(expected.values()) and m.config["model_type"] == "llama"
    (m,) = anon.list_models(author=user, search=repo.split("/")[1], fetch_config=True)  # the ?config= parameter
    assert m.config["model_type"] == "llama"
    assert next(iter(anon.list_models(author=user, sort="lastModified", limit=5))).id == repo

    # A push that changes only the README re-reads only the README.
    api.upload_file(repo_id=repo, path_or_fileobj=b"---\nlicense: mit\n---\n", path_in_repo="README.md")
    head = api.model_info(repo).sha
    wait_for(lambda: get(f"{d.url}/api/models/{repo}/metadata", token)[1]["commit"] == head, timeout=60,
             what="retagged")
    assert "license:apache-2.0" not in api.model_info(repo).tags
    _, out, _ = d.cli("metadata", "tags", repo)
    assert "license:mit" in out.splitlines() and "safetensors" in out.splitlines()
    status, meta = get(f"{d.url}/api/models/{repo}/metadata", token)
    assert status == 200 and meta["last_job"]["files_read"] == ["README.md"]


def test_a_gguf_model_pushed_with_git_lfs(md, git: Git, tmp_path):
    d = md.daemon
    user, token = d.user()
    repo = f"{user}/{unique('gguf')}"
    d.cli("repo", "create", repo, "--empty")
    data = gguf_bytes(context_length=2048)
    work = lfs_work(lfs_git(git), tmp_path / "w", {"model-Q4_K_M.gguf": data,
                                                   "README.md": b"---\nlicense: llama3\nbase_model: meta/llama\n---\n"},
                    track="*.gguf")
    git("push", "-q", d.repo_url(repo, token=token), "main", cwd=work)
    info = tagged(HfApi(endpoint=d.url, token=token), repo)
    (tmp_path / "m.gguf").write_bytes(data)
    total = sum(int(np.prod(t.shape)) for t in gguf.GGUFReader(tmp_path / "m.gguf").tensors)
    assert info.gguf == {"total": total, "architecture": "llama", "context_length": 2048, "file_type": "Q4_K_M",
                         "quantizations": ["Q4_K_M"]}
    assert {"gguf", "license:llama3", "base_model:quantized:meta/llama"} <= set(info.tags)
    anon = HfApi(endpoint=d.url, token=False)
    assert [m.id for m in anon.list_models(filter="gguf", author=user)] == [repo]
    (m,) = anon.list_models(filter="gguf", author=user, expand=["gguf"])
    assert m.gguf["architecture"] == "llama"


def test_a_dataset_with_parquet_files(md, no_xet, tmp_path):
    d = md.daemon
    user, token = d.user()
    api = HfApi(endpoint=d.url, token=token)
    repo = f"{user}/{unique('ds')}"
    api.create_repo(repo, repo_type="dataset")
    write(tmp_path / "up", {"README.md": "---\nlicense: cc-by-4.0\n---\n",
                            "data/train-00000-of-00001.parquet": parquet_bytes(20_000)})
    api.upload_folder(repo_id=repo, folder_path=tmp_path / "up", repo_type="dataset")
    info = tagged(api, repo, repo_type="dataset")
    assert {"format:parquet", "modality:text", "size_categories:10K<n<100K", "license:cc-by-4.0"} <= set(info.tags)
    found = HfApi(endpoint=d.url, token=False).list_datasets(filter="size_categories:10K<n<100K", author=user)
    assert [x.id for x in found] == [repo]


def test_regression_private_repositories_leak_through_no_filter_or_lineage(md, no_xet, tmp_path):
    d = md.daemon
    owner, token = d.user()
    _, stranger = d.user()
    api = HfApi(endpoint=d.url, token=token)
    base, secret = f"{owner}/{unique('base')}", f"{owner}/{unique('secret')}"
    api.create_repo(base)
    api.create_repo(secret, private=True)
    api.upload_file(repo_id=base, path_or_fileobj=b"---\nlicense: mit\n---\n", path_in_repo="README.md")
    tag = unique("secret-tag")
    api.upload_file(repo_id=secret, path_or_fileobj=f"---\nlicense: mit\nbase_model: {base}\ntags: [{tag}]\n---\n"
                    .encode(), path_in_repo="README.md")
    tagged(api, secret)
    tagged(api, base)
    assert [m.id for m in api.list_models(filter=tag)] == [secret]
    for who in (False, stranger):
        other = HfApi(endpoint=d.url, token=who)
        assert list(other.list_models(filter=tag)) == []
        assert list(other.list_models(filter=f"base_model:{base}")) == []
        status, lineage = get(f"{d.url}/api/models/{base}/lineage", who or None)
        assert status == 200 and lineage["descendants"] == []
        assert get(f"{d.url}/api/models/{secret}/lineage", who or None)[0] in (401, 404)
        assert get(f"{d.url}/api/models/{secret}/metadata", who or None)[0] in (401, 404)
    status, lineage = get(f"{d.url}/api/models/{base}/lineage", token)
    assert [c["id"] for c in lineage["descendants"]] == [secret]


def test_bad_files_give_warnings_and_the_jobs_complete(md, no_xet, tmp_path):
    d = md.daemon
    user, token = d.user()
    api = HfApi(endpoint=d.url, token=token)
    repo = f"{user}/{unique('bad')}"
    api.create_repo(repo)
    # An alias bomb's first rungs: the plugin refuses anchors outright (the daemon's own card
    # reader answers model_info from the same README, so the bomb is kept small here; the
    # harness tests feed the plugin a full one).
    bomb = "\n".join([f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 3) + "]" for i in range(1, 3)])
    write(tmp_path / "up", {
        "huge-header.safetensors": (100 * 10**9).to_bytes(8, "little") + b"{}" + b"\0" * 2048,
        "truncated.gguf": gguf_bytes()[:1500],
        "million-keys.gguf": b"GGUF" + (3).to_bytes(4, "little") + (0).to_bytes(8, "little")
                             + (10**6).to_bytes(8, "little") + b"\0" * 2048})
    api.upload_folder(repo_id=repo, folder_path=tmp_path / "up")
    # huggingface_hub refuses to upload a card with anchors (the daemon's validate-yaml says so);
    # the native API's commit, like a git push, does not ask, so the plugin meets it.
    readme = "---\nlicense: mit\na0: &a0 [lol]\n" + bomb + "\n---\n"
    body = json.dumps({"message": "bomb", "files": [
        {"path": "README.md", "action": "create", "content": base64.b64encode(readme.encode()).decode()}]}).encode()
    request = urllib.request.Request(f"{d.url}/api/v1/models/{repo}/commit/main", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as resp:
        assert resp.status == 200
        head = json.loads(resp.read())["data"]["commit"]
    # The upload's metadata job may answer first: wait for the job of the README's commit.
    wait_for(lambda: get(f"{d.url}/api/models/{repo}/metadata", token)[1]["commit"] == head, timeout=60,
             what="README commit tagged")
    info = tagged(api, repo)
    messages = {f["path"]: f["message"] for f in info.metadataFlags if f["kind"] == "file"}
    assert messages["README.md"] == "README.md: the card uses a YAML anchor (&name); cards may not"
    assert "claims 100000000000 bytes of JSON" in messages["huge-header.safetensors"]
    assert messages["truncated.gguf"].startswith("truncated.gguf: truncated")
    assert "claims 1000000 metadata keys" in messages["million-keys.gguf"]
    assert "gguf" in info.tags and "safetensors" in info.tags  # present, if unreadable
    _, failed, _ = d.cli("jobs", "list", "--failed")
    assert "metadata" not in failed  # no failed job of the plugin's
