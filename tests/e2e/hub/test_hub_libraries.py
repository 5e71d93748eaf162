"""transformers and datasets (pinned) load from gitd exactly as from the Hub."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support import unique


def tiny_tokenizer_json() -> str:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, "[PAD]": 1, "hello": 2, "world": 3, "gitd": 4}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok.to_str()


@pytest.fixture(scope="module")
def tiny_model(hub, daemon, tmp_path_factory):
    from tests.support import Git

    user, token = hub.user()
    repo = daemon.repo(user, unique("tiny"))
    git = Git(tmp_path_factory.mktemp("home"))
    work = tmp_path_factory.mktemp("tiny")
    config = {"model_type": "bert", "vocab_size": 5, "hidden_size": 8, "num_hidden_layers": 1,
              "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 32}
    git.init_work(work, {
        "config.json": json.dumps(config),
        "tokenizer.json": tiny_tokenizer_json(),
        "tokenizer_config.json": json.dumps({"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]",
                                             "pad_token": "[PAD]", "model_max_length": 32}),
        "README.md": "---\nlibrary_name: transformers\npipeline_tag: feature-extraction\n---\n# tiny\n",
    })
    git("push", daemon.repo_url(repo, token=token), "main", cwd=work)
    return repo


def test_transformers_auto_classes(hub, tiny_model, tmp_path):
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(tiny_model, cache_dir=tmp_path)
    assert config.model_type == "bert" and config.hidden_size == 8
    tokenizer = AutoTokenizer.from_pretrained(tiny_model, cache_dir=tmp_path)
    assert tokenizer("hello gitd world")["input_ids"] == [2, 4, 3]
    assert tokenizer.pad_token == "[PAD]"
    sha = hub.api(False).model_info(tiny_model).sha
    snapshot = tmp_path / f"models--{tiny_model.replace('/', '--')}"
    assert (snapshot / "refs" / "main").read_text() == sha
    # optional tokenizer files the repo lacks are remembered as missing at that commit
    assert (snapshot / ".no_exist" / sha).is_dir()


@pytest.fixture(scope="module")
def tabular(hub, tmp_path_factory):
    from huggingface_hub import CommitOperationAdd

    user, token = hub.user()
    api = hub.api(token)
    repo = f"{user}/{unique('table')}"
    api.create_repo(repo, repo_type="dataset")
    folder = tmp_path_factory.mktemp("table")
    pq.write_table(pa.table({"text": ["a", "b", "c"], "label": [0, 1, 0]}), folder / "train.parquet")
    card = (
        "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train.parquet\n"
        "---\n# table\n"
    )
    api.create_commit(repo, repo_type="dataset", commit_message="data", operations=[
        CommitOperationAdd("README.md", card.encode()),
        CommitOperationAdd("data/train.parquet", (folder / "train.parquet").read_bytes()),
        CommitOperationAdd("extra/one.csv", b"city,pop\nparis,2\n"),
        CommitOperationAdd("extra/two.csv", b"city,pop\nrome,3\n"),
    ])
    return repo


def test_datasets_load_dataset(hub, tabular, tmp_path):
    import datasets

    train = datasets.load_dataset(tabular, split="train", cache_dir=str(tmp_path))
    assert train.column_names == ["text", "label"] and train["text"] == ["a", "b", "c"]
    extra = datasets.load_dataset(tabular, data_files="extra/*.csv", split="train", cache_dir=str(tmp_path))
    assert sorted(zip(extra["city"], extra["pop"], strict=True)) == [("paris", 2), ("rome", 3)]
