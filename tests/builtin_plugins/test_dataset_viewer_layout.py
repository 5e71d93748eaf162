"""The dataset viewer finds configs and splits the way the Hub does (card, then file names)."""

from __future__ import annotations

import pytest
from gitd_plugins.dataset_viewer import DatasetViewer
from gitd_plugins.dataset_viewer.layout import data_format, detect, glob_regex


@pytest.fixture
def layout_of(gitd_harness):
    h = gitd_harness(DatasetViewer, name="datasets")
    count = [0]

    def layout(files: dict[str, str]) -> dict[tuple[str, str], list[str] | str]:
        count[0] += 1
        repo = h.repo(f"alice/ds{count[0]}", type="dataset", files=files)
        view = h.view(repo)
        found = detect(view, view.head())
        if found.error:
            return {("", ""): found.error}
        return {(s.config, s.split): s.error or [f.path for f in s.files] for s in found.splits}

    return layout


def test_file_name_conventions(layout_of):
    assert layout_of({"data.csv": "a\n1\n", "README.md": "x"}) == {("default", "train"): ["data.csv"]}
    assert layout_of({"train.csv": "a\n", "test.csv": "a\n", "dev.csv": "a\n", "notes.txt": "x"}) == {
        ("default", "train"): ["train.csv"], ("default", "validation"): ["dev.csv"],
        ("default", "test"): ["test.csv"]}
    # split names inside file names, bounded by separators or digits; "contest" is not "test"
    assert layout_of({"my_train-01.jsonl": "{}", "my_train-02.jsonl": "{}", "contest.jsonl": "{}",
                      "eval.jsonl": "{}"}) == {
        ("default", "train"): ["my_train-01.jsonl", "my_train-02.jsonl"], ("default", "test"): ["eval.jsonl"]}
    # directories named after splits win over file names
    assert layout_of({"data/train/a.csv": "a\n", "data/train/b.csv": "a\n", "data/valid-v2/x.csv": "a\n",
                      "data/test.csv": "a\n"}) == {
        ("default", "train"): ["data/train/a.csv", "data/train/b.csv"],
        ("default", "validation"): ["data/valid-v2/x.csv"]}
    # the Hub's shards: data/{split}-00000-of-00002.*, any split name
    assert layout_of({"data/train-00000-of-00002.parquet": "x", "data/train-00001-of-00002.parquet": "x",
                      "data/extra-00000-of-00001.parquet": "x"}) == {
        ("default", "train"): ["data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"],
        ("default", "extra"): ["data/extra-00000-of-00001.parquet"]}


def test_formats_compression_hidden_files_and_the_most_common_format(layout_of):
    assert data_format("a/b.CSV") == ("csv", None)
    assert data_format("x.jsonl.gz") == ("json", "gzip")
    assert data_format("x.tsv.zst") == ("tsv", "zstd")
    assert data_format("x.gz") is None and data_format("model.bin") is None
    assert layout_of({"train.csv.gz": "x", "test.csv.bz2": "x", ".hidden/train.csv": "x", "__x/test.csv": "x"}) == {
        ("default", "train"): ["train.csv.gz"], ("default", "test"): ["test.csv.bz2"]}
    # two JSON Lines files and one CSV: the JSON Lines files are the dataset
    assert layout_of({"a.jsonl": "{}", "b.jsonl": "{}", "c.csv": "a\n"}) == {
        ("default", "train"): ["a.jsonl", "b.jsonl"]}
    assert layout_of({"README.md": "# nothing\n", "model.bin": "x"}) == {
        ("", ""): "no data files (Parquet, CSV, TSV, JSON Lines or Arrow)"}


def test_the_cards_configs(layout_of):
    card = """---
configs:
- config_name: en
  data_files:
  - split: train
    path: "en/train-*.csv"
  - split: test
    path: [en/test.csv]
  default: true
- config_name: fr
  data_files: "fr/*.jsonl"
- config_name: sub
  data_dir: sub
- config_name: none
  data_files: missing/*.csv
- config_name: bad split
  data_files: x.csv
---
# card
"""
    assert layout_of({"README.md": card, "en/train-0.csv": "a\n", "en/train-1.csv": "a\n", "en/test.csv": "a\n",
                      "fr/a.jsonl": "{}", "sub/train.csv": "a\n", "sub/test.csv": "a\n", "x.csv": "a\n"}) == {
        ("en", "train"): ["en/train-0.csv", "en/train-1.csv"], ("en", "test"): ["en/test.csv"],
        ("fr", "train"): ["fr/a.jsonl"], ("sub", "train"): ["sub/train.csv"], ("sub", "test"): ["sub/test.csv"],
        ("none", "train"): "no data file matches missing/*.csv",
        ("bad split", "train"): "README.md: config 'bad split' has no valid, unique config_name (letters, digits, "
                                "'_', '.', '-')"}


def test_a_broken_card_is_a_dataset_error(layout_of):
    assert layout_of({"README.md": "---\nconfigs: [\n---\n", "a.csv": "a\n"})[("", "")].startswith(
        "README.md: the YAML header does not parse")
    mixed = "---\nconfigs:\n- config_name: m\n  data_files: 'd/*'\n---\n"
    assert layout_of({"README.md": mixed, "d/a.csv": "a\n", "d/b.jsonl": "{}"}) == {
        ("m", "train"): "the split mixes formats (csv, json)"}


def test_globs_as_the_hub_reads_them():
    assert glob_regex("data/*.csv").match("data/a.csv")
    assert not glob_regex("data/*.csv").match("data/sub/a.csv")
    assert glob_regex("data/**/*.csv").match("data/a.csv") and glob_regex("data/**/*.csv").match("data/x/y/a.csv")
    assert glob_regex("**").match("a/b/c")
    assert glob_regex("part-[0-9].csv").match("part-3.csv") and not glob_regex("part-[!0-9].csv").match("part-3.csv")
    assert glob_regex("a+b(c).csv").match("a+b(c).csv") and not glob_regex("a.csv").match("abcsv")
