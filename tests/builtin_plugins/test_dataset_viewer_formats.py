"""Every data format the viewer reads, end to end (detected, converted, served): TSV, Arrow
IPC streams and files (Feather v2), and each compression pyarrow reads (gzip, bzip2, zstd,
lz4); and the statistics a label column gets: ClassLabel features (from a card's
``dataset_info`` or a Parquet file written by ``datasets``) and text lengths."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import urllib.parse

import datasets
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
from gitd_plugins.dataset_viewer import DatasetViewer

from gitd.testing import LfsBytes

ROWS = [{"id": i, "text": f"row {i}", "score": i / 2} for i in range(25)]
TABLE = pa.Table.from_pylist(ROWS)


def viewer(h, route: str, **params: object):
    r = h.http("GET", f"/api/plugins/datasets/{route}?{urllib.parse.urlencode(params)}")
    return r.status, r.json()


def converted(h, repo, path: str) -> list[dict]:
    view = h.view(repo)
    return pq.read_table(io.BytesIO(view.read(view.resolve("refs/convert/parquet"), path))).to_pylist()


def delimited(sep: str) -> bytes:
    return ("".join(sep.join(("id", "text", "score")) + "\n")
            + "".join(sep.join((str(r["id"]), r["text"], str(r["score"]))) + "\n" for r in ROWS)).encode()


def arrow_stream(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        for batch in table.to_batches(max_chunksize=10):
            writer.write_batch(batch)
    return sink.getvalue()


def arrow_file(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_file(sink, table.schema) as writer:
        for batch in table.to_batches(max_chunksize=10):
            writer.write_batch(batch)
    return sink.getvalue()


def compress(data: bytes, codec: str) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, codec) as out:
        out.write(data)
    return sink.getvalue().to_pybytes()


def push_each_as_a_config(h, name: str, files: dict[str, bytes]):
    """Push ``files`` (in LFS), each one config; check each converts to ROWS and is served."""
    card = "---\nconfigs:\n" + "".join(f"- config_name: {p.split('/')[0]}\n  data_files: {p}\n" for p in files)
    repo = h.repo(name, type="dataset",
                  files={"README.md": card + "---\n", **{p: LfsBytes(data) for p, data in files.items()}})
    h.run_jobs()
    status, splits = viewer(h, "splits", dataset=name)
    assert status == 200 and splits["failed"] == []
    assert [s["config"] for s in splits["splits"]] == [p.split("/")[0] for p in files]
    for path in files:
        config = path.split("/")[0]
        assert converted(h, repo, f"{config}/train/0000.parquet") == ROWS, config
        page = viewer(h, "rows", dataset=name, config=config, split="train", offset=20, length=10)[1]
        assert [r["row"] for r in page["rows"]] == ROWS[20:] and page["num_rows_total"] == 25, config
    return repo


@pytest.fixture
def h(gitd_harness):
    return gitd_harness(DatasetViewer, name="datasets", config={"jobs.max_attempts": 1})


def test_regression_arrow_ipc_files_are_read_not_only_streams(h):
    """An Arrow IPC *file* (``pa.ipc.new_file``, Feather v2) was read as a stream and failed
    ("Expected to read 1330795073 metadata bytes": its ARROW1 magic taken for a length)."""
    feather_buf = io.BytesIO()
    feather.write_feather(TABLE, feather_buf)  # the IPC file format, lz4-compressed buffers
    push_each_as_a_config(h, "alice/arrowfiles", {
        "ipcfile/data.arrow": arrow_file(TABLE),
        "feather/data.arrow": feather_buf.getvalue(),
        "ipcfile_zst/data.arrow.zst": compress(arrow_file(TABLE), "zstd"),  # read streaming, compressed
    })


def test_tsv_arrow_streams_and_compressed_files_are_read_end_to_end(h):
    push_each_as_a_config(h, "alice/formats", {
        "tsv/train.tsv": delimited("\t"),
        "stream/data.arrow": arrow_stream(TABLE),
        "csv_gz/data.csv.gz": gzip.compress(delimited(",")),
        "tsv_bz2/data.tsv.bz2": bz2.compress(delimited("\t")),
        "jsonl_zst/data.jsonl.zst": compress("".join(json.dumps(r) + "\n" for r in ROWS).encode(), "zstd"),
        "csv_lz4/data.csv.lz4": compress(delimited(","), "lz4"),  # the lz4 frame format, as the lz4 tool writes
    })

    # TSV found by file-name conventions alone, as CSV would be
    tsv = h.repo("alice/tsv", type="dataset", files={"train.tsv": delimited("\t"),
                                                     "test.tsv": "id\ttext\tscore\n99\tlast\t1.5\n"})
    h.run_jobs()
    assert [s["split"] for s in viewer(h, "splits", dataset="alice/tsv")[1]["splits"]] == ["train", "test"]
    assert converted(h, tsv, "default/test/0000.parquet") == [{"id": 99, "text": "last", "score": 1.5}]
    first = viewer(h, "first-rows", dataset="alice/tsv", config="default", split="train")[1]
    assert [r["row"] for r in first["rows"]] == ROWS


LABEL_CARD = """---
dataset_info:
  features:
  - name: text
    dtype: string
  - name: label
    dtype:
      class_label:
        names:
          '0': negative
          '1': neutral
          '2': positive
configs:
- config_name: default
  data_files:
  - split: train
    path: train.csv
  - split: test
    path: test.csv
---
"""


def test_class_labels_from_the_card_or_from_datasets_and_text_lengths(h, tmp_path):
    # the card declares label a ClassLabel: names in the CSV become indexes, as `datasets` loads them
    labels = ["positive"] * 5 + ["negative"] * 3 + ["neutral"] * 2
    texts = ["a" * n for n in (1, 2, 3, 4, 5, 10, 20, 30, 40, 50)]
    train = "text,label\n" + "".join(f"{t},{lab}\n" for t, lab in zip(texts, labels, strict=True))
    repo = h.repo("alice/labelled", type="dataset", files={
        "README.md": LABEL_CARD, "train.csv": train, "test.csv": "text,label\nfine,positive\nbad,awful\n"})
    h.run_jobs()
    splits = viewer(h, "splits", dataset="alice/labelled")[1]
    assert [s["split"] for s in splits["splits"]] == ["train"]
    assert splits["failed"][0]["error"]["error"] == (
        "test.csv: 'awful' in column 'label' is not one of its class labels (negative, neutral, positive)")
    names = ["negative", "neutral", "positive"]
    assert converted(h, repo, "default/train/0000.parquet")[:2] == [{"text": "a", "label": 2}, {"text": "aa",
                                                                                               "label": 2}]
    features = viewer(h, "first-rows", dataset="alice/labelled", config="default", split="train")[1]["features"]
    assert features[1] == {"feature_idx": 1, "name": "label", "type": {"names": names, "_type": "ClassLabel"}}
    stats = viewer(h, "statistics", dataset="alice/labelled", config="default", split="train")[1]["statistics"]
    by = {c["column_name"]: c for c in stats}
    assert by["label"]["column_type"] == "class_label"
    assert by["label"]["column_statistics"] == {
        "nan_count": 0, "nan_proportion": 0.0, "no_label_count": 0, "no_label_proportion": 0.0, "n_unique": 3,
        "frequencies": {"positive": 5, "negative": 3, "neutral": 2}}
    # a text column of few distinct values is a label column too (the Hub's string_label)
    assert by["text"]["column_type"] == "string_label"
    assert by["text"]["column_statistics"]["frequencies"] == {t: 1 for t in texts}
    # datasets reads the converted file back with the class label
    view = h.view(repo)
    (tmp_path / "converted.parquet").write_bytes(view.read(view.resolve("refs/convert/parquet"),
                                                           "default/train/0000.parquet"))
    back = datasets.Dataset.from_parquet(str(tmp_path / "converted.parquet"))
    assert back.features["label"] == datasets.ClassLabel(names=names)
    assert back.features["label"].int2str(back[0]["label"]) == "positive"

    # A Parquet file written by `datasets` keeps its ClassLabel (with -1 for "no label"), and
    # a column of long, varied text gets the histogram of its lengths.
    long = [f"{'word ' * (i % 40)}{i}" for i in range(60)]
    ds = datasets.Dataset.from_dict(
        {"text": long, "label": [i % 3 if i % 10 else -1 for i in range(60)]},
        features=datasets.Features({"text": datasets.Value("string"),
                                    "label": datasets.ClassLabel(names=["cat", "dog", "fish"])}))
    path = tmp_path / "train.parquet"
    ds.to_parquet(str(path))
    h.repo("alice/pets", type="dataset", files={"data/train.parquet": LfsBytes(path.read_bytes())})
    h.run_jobs()
    stats = viewer(h, "statistics", dataset="alice/pets", config="default", split="train")[1]["statistics"]
    by = {c["column_name"]: c for c in stats}
    label = by["label"]["column_statistics"]
    assert by["label"]["column_type"] == "class_label"
    expected = {"cat": 0, "dog": 0, "fish": 0}
    for i in range(60):
        if i % 10:
            expected[["cat", "dog", "fish"][i % 3]] += 1
    assert label["frequencies"] == expected and label["no_label_count"] == 6 and label["no_label_proportion"] == 0.1
    text = by["text"]["column_statistics"]
    lengths = [len(t) for t in long]
    assert by["text"]["column_type"] == "string_text"
    assert (text["min"], text["max"]) == (min(lengths), max(lengths))
    edges = text["histogram"]["bin_edges"]
    width = edges[1] - edges[0]
    assert edges[0] == min(lengths) and edges[-1] == max(lengths) and len(edges) == 11
    hist = [0] * 10
    for n in lengths:
        hist[min((n - min(lengths)) // width, 9)] += 1
    assert text["histogram"]["hist"] == hist and sum(hist) == 60


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
