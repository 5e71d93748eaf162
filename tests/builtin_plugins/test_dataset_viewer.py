"""The dataset viewer plugin through the harness: conversion onto refs/convert/parquet, the
viewer's answers, access, caching, partial splits and the command line."""

from __future__ import annotations

import io
import json
import statistics as pystats
import urllib.parse

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from gitd_plugins.dataset_viewer import DatasetViewer

from gitd.testing import LfsBytes

CARD = """---
configs:
- config_name: csv
  data_files:
  - split: train
    path: csv/train-*.csv
  - split: test
    path: csv/test.csv
- config_name: jsonl
  data_files: jsonl/*.jsonl
- config_name: pq
  data_files: pq/*.parquet
---
# three formats
"""


def parquet(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def viewer(h, route: str, user: str | None = None, **params: object):
    r = h.http("GET", f"/api/plugins/datasets/{route}?{urllib.parse.urlencode(params)}", user=user)
    return r.status, r.json()


def convert_files(h, repo) -> dict[str, bytes]:
    view = h.view(repo)
    commit = view.resolve("refs/convert/parquet")
    assert commit is not None
    return {e.path: view.read(commit, e.path) for e in view.files(commit)}


@pytest.fixture
def h(gitd_harness):
    return gitd_harness(DatasetViewer, name="datasets", config={"jobs.max_attempts": 1})


def test_csv_jsonl_and_parquet_configs_become_the_hubs_layout(h):
    table = pa.table({"n": [1, 2, 3], "s": ["x", "y", None]})
    repo = h.repo("alice/three", type="dataset", files={
        "README.md": CARD, "csv/train-0.csv": LfsBytes(b"a,b\n1,one\n2,two\n"), "csv/train-1.csv": "a,b\n3,three\n",
        "csv/test.csv": "a,b\n9,nine\n", "jsonl/part.jsonl": '{"q": "why", "k": [1, 2]}\n{"q": "how", "k": []}\n',
        "pq/data.parquet": LfsBytes(parquet(table))})
    h.run_jobs()
    files = convert_files(h, repo)
    assert sorted(files) == ["README.md", "csv/test/0000.parquet", "csv/train/0000.parquet",
                             "jsonl/train/0000.parquet", "pq/train/0000.parquet"]
    assert pq.read_table(io.BytesIO(files["csv/train/0000.parquet"])).to_pylist() == [
        {"a": 1, "b": "one"}, {"a": 2, "b": "two"}, {"a": 3, "b": "three"}]
    assert pq.read_table(io.BytesIO(files["jsonl/train/0000.parquet"])).to_pylist() == [
        {"q": "why", "k": [1, 2]}, {"q": "how", "k": []}]
    assert files["pq/train/0000.parquet"] == parquet(table)  # taken as it is, not converted
    view = h.view(repo)
    source = view.entry(view.head(), "pq/data.parquet")
    target = view.entry(view.resolve("refs/convert/parquet"), "pq/train/0000.parquet")
    assert source.lfs.oid == target.lfs.oid  # the same LFS object
    # the branch's card names each config's files, so datasets.load_dataset finds them there
    assert "config_name: csv" in files["README.md"].decode() and "path: csv/train/*.parquet" in files[
        "README.md"].decode()

    status, splits = viewer(h, "splits", dataset="alice/three")
    assert status == 200 and [(s["config"], s["split"]) for s in splits["splits"]] == [
        ("csv", "train"), ("csv", "test"), ("jsonl", "train"), ("pq", "train")]
    status, rows = viewer(h, "first-rows", dataset="alice/three", config="jsonl", split="train")
    assert rows["features"] == [
        {"feature_idx": 0, "name": "q", "type": {"dtype": "string", "_type": "Value"}},
        {"feature_idx": 1, "name": "k", "type": {"feature": {"dtype": "int64", "_type": "Value"}, "_type": "List"}}]
    assert [r["row"] for r in rows["rows"]] == [{"q": "why", "k": [1, 2]}, {"q": "how", "k": []}]
    status, size = viewer(h, "size", dataset="alice/three", config="csv")
    assert size["size"]["config"]["num_rows"] == 4 and [s["num_rows"] for s in size["size"]["splits"]] == [3, 1]


def test_shards_at_the_configured_size_and_rows_cross_them(gitd_harness):
    h = gitd_harness(DatasetViewer, name="datasets", settings={"shard_size": "64KiB", "row_group_rows": 500})
    csv = "id,text\n" + "".join(f"{i},some words number {i * 7919 % 100003}\n" for i in range(20_000))
    repo = h.repo("alice/big", type="dataset", files={"train.csv": LfsBytes(csv.encode())})
    h.run_jobs()
    shards = sorted(p for p in convert_files(h, repo) if p.endswith(".parquet"))
    assert len(shards) > 1 and shards[:2] == ["default/train/0000.parquet", "default/train/0001.parquet"]
    counts = [pq.read_metadata(io.BytesIO(convert_files(h, repo)[p])).num_rows for p in shards]
    assert sum(counts) == 20_000
    edge = counts[0]  # the first row of the second shard
    page = viewer(h, "rows", dataset="alice/big", config="default", split="train", offset=edge - 2, length=4)[1]
    assert [(r["row_idx"], r["row"]["id"]) for r in page["rows"]] == [(i, i) for i in range(edge - 2, edge + 2)]
    found = viewer(h, "filter", dataset="alice/big", config="default", split="train", where="id = 15000")[1]
    assert [(r["row_idx"], r["row"]["id"]) for r in found["rows"]] == [(15000, 15000)]
    found = viewer(h, "search", dataset="alice/big", config="default", split="train", query="number 100002")[1]
    assert found["num_rows_total"] == sum(1 for i in range(20_000) if "100002" in str(i * 7919 % 100003))
    assert all(r["row_idx"] == r["row"]["id"] for r in found["rows"])


ROWS = [{"id": i, "name": f"Item {i}" if i % 5 else None, "score": i / 4, "flag": i % 3 == 0,
         "tag": ["red", "green", "blue"][i % 3], "tokens": list(range(i % 4))} for i in range(60)]


@pytest.fixture
def items(h):
    repo = h.repo("alice/items", type="dataset", files={
        "data/train.jsonl": "".join(json.dumps(r) + "\n" for r in ROWS)})
    h.run_jobs()
    return repo


def ids(answer: dict) -> list[int]:
    return [r["row"]["id"] for r in answer["rows"]]


def test_rows_search_and_filter(h, items):
    q = {"dataset": "alice/items", "config": "default", "split": "train"}
    status, page = viewer(h, "rows", **q, offset=55, length=10)
    assert status == 200 and ids(page) == [55, 56, 57, 58, 59] and page["num_rows_total"] == 60
    assert page["rows"][0]["row"] == ROWS[55]
    assert viewer(h, "rows", **q, offset=100)[1]["rows"] == []
    for bad in ({"offset": -1}, {"length": 0}, {"length": 101}, {"offset": "x"}):
        assert viewer(h, "rows", **q, **bad)[0] == 422

    status, found = viewer(h, "search", **q, query="ITEM 1")  # every word, any case, anywhere
    assert ids(found) == [1, 11, 12, 13, 14, 16, 17, 18, 19, 21, 31, 41, 51] and found["num_rows_total"] == 13
    assert ids(viewer(h, "search", **q, query="item 1", offset=10, length=2)[1]) == [31, 41]
    assert viewer(h, "search", **q, query="")[0] == 422

    def where(expression: str, orderby: str = "") -> list[int]:
        status, answer = viewer(h, "filter", **q, where=expression, orderby=orderby)
        assert status == 200, answer
        return ids(answer)

    assert where("tag = 'red' AND score >= 10") == [42, 45, 48, 51, 54, 57]
    assert where("name IS NULL AND NOT flag") == [5, 10, 20, 25, 35, 40, 50, 55]
    assert where("\"tag\" IN ('green', 'blue') AND id < 6", "score DESC") == [5, 4, 2, 1]
    assert where("name LIKE 'Item 5%' OR id BETWEEN 1 AND 2") == [1, 2, 51, 52, 53, 54, 56, 57, 58, 59]
    assert where("name ILIKE 'item 3_'", "id DESC NULLS LAST") == [39, 38, 37, 36, 34, 33, 32, 31]
    assert where("id = -1 OR score = 0.5") == [2]
    assert where("", "flag DESC, id DESC")[:3] == [57, 54, 51]
    # a literal is a value, never SQL: this is the string  x' OR '1'='1
    assert where("name = 'x'' OR ''1''=''1'") == []
    for bad, message in [("id = 1; DROP TABLE x", "unexpected character ';'"), ("nope = 1", "no column 'nope'"),
                         ("id = ", "missing"), ("id == id OR", "missing"), ("(id = 1", "expected )"),
                         ("id IN (SELECT 1)", "expected a value"), ("name LIKE id", "quoted pattern"),
                         ("tag > 1", "does not apply")]:
        status, answer = viewer(h, "filter", **q, where=bad)
        assert status == 422 and message in answer["error"], (bad, answer)
    assert viewer(h, "filter", **q, orderby="id; DROP")[0] == 422


def test_statistics_describe_every_column(h, items):
    status, stats = viewer(h, "statistics", dataset="alice/items", config="default", split="train")
    assert status == 200 and stats["num_examples"] == 60 and stats["partial"] is False
    by = {c["column_name"]: c for c in stats["statistics"]}
    assert {name: c["column_type"] for name, c in by.items()} == {
        "id": "int", "name": "string_text", "score": "float", "flag": "bool", "tag": "string_label",
        "tokens": "list"}
    scores = [r["score"] for r in ROWS]
    s = by["score"]["column_statistics"]
    assert (s["min"], s["max"], s["nan_count"]) == (0.0, 14.75, 0)
    assert s["mean"] == pytest.approx(pystats.mean(scores), abs=1e-4)
    assert s["median"] == pytest.approx(pystats.median(scores), abs=1e-4)
    assert s["std"] == pytest.approx(pystats.stdev(scores), abs=1e-4)
    assert sum(s["histogram"]["hist"]) == 60 and len(s["histogram"]["bin_edges"]) == len(s["histogram"]["hist"]) + 1
    assert by["id"]["column_statistics"]["histogram"]["hist"] == [6] * 10
    name = by["name"]["column_statistics"]
    assert name["nan_count"] == 12 and name["nan_proportion"] == 0.2
    assert (name["min"], name["max"]) == (6, 7)  # lengths of "Item 1" .. "Item 59"
    assert by["tag"]["column_statistics"]["frequencies"] == {"red": 20, "green": 20, "blue": 20}
    assert by["flag"]["column_statistics"]["frequencies"] == {"False": 40, "True": 20}
    assert (by["tokens"]["column_statistics"]["min"], by["tokens"]["column_statistics"]["max"]) == (0, 3)


def test_a_private_dataset_is_404_to_non_readers_on_every_route(h):
    h.repo("alice/secret", type="dataset", private=True, files={"train.csv": "a,b\n1,x\n"})
    h.user("bob")
    h.run_jobs()
    split = {"config": "default", "split": "train"}
    routes = [("is-valid", {}), ("splits", {}), ("first-rows", split), ("rows", split),
              ("search", {**split, "query": "x"}), ("filter", {**split, "where": "a = 1"}), ("size", {}),
              ("info", {}), ("parquet", {}), ("statistics", split), ("sql", {"sql": "SELECT * FROM train"})]
    for route, params in routes:
        assert viewer(h, route, None, dataset="alice/secret", **params)[0] == 401, route
        assert viewer(h, route, "bob", dataset="alice/secret", **params)[0] == 404, route
        assert viewer(h, route, "alice", dataset="alice/secret", **params)[0] == 200, route
        assert viewer(h, route, "bob", dataset="alice/missing", **params)[0] == 404, route
    for path in ("", "/default", "/default/train", "/default/train/0.parquet"):
        assert h.http("GET", f"/api/datasets/alice/secret/parquet{path}", user="bob").status == 404
        assert h.http("GET", f"/api/datasets/alice/secret/parquet{path}", user="alice").status in (200, 302)


def test_answers_are_cached_per_commit_and_a_new_push_replaces_the_state(h):
    repo = h.repo("alice/moving", type="dataset", files={"train.csv": "a\n1\n2\n"})
    h.run_jobs()
    q = {"dataset": "alice/moving", "config": "default", "split": "train"}
    cache = h.plugin.cache
    before = cache.size()
    assert [r["row"]["a"] for r in viewer(h, "rows", **q)[1]["rows"]] == [1, 2]
    assert cache.size() > before  # the answer is in the cache now
    first_parquet = h.view(repo).resolve("refs/convert/parquet")

    h.commit(repo, {"train.csv": "a\n7\n8\n9\n"})
    h.run_jobs()
    assert [r["row"]["a"] for r in viewer(h, "rows", **q)[1]["rows"]] == [7, 8, 9]
    second_parquet = h.view(repo).resolve("refs/convert/parquet")
    assert second_parquet != first_parquet
    assert h.view(repo).commit(second_parquet).parents == (first_parquet,)  # the branch keeps its history

    # Jobs run at least once: a second run for the same commit changes nothing, and a forced
    # refresh of unchanged data makes no new commit.
    h.plugin.refresher.refresh(h.refresh(repo))
    h.plugin.refresher.refresh(h.refresh(repo), force=True)
    assert h.view(repo).resolve("refs/convert/parquet") == second_parquet


def test_partial_splits_stop_at_max_split_size(gitd_harness):
    h = gitd_harness(DatasetViewer, name="datasets", settings={"max_split_size": "20KiB", "shard_size": "8KiB",
                                                               "row_group_rows": 200})
    csv = "id,text\n" + "".join(f"{i},{'w' * (i % 50)} {i * 31 % 997}\n" for i in range(10_000))
    repo = h.repo("alice/partial", type="dataset", files={"train.csv": LfsBytes(csv.encode())})
    h.run_jobs()
    paths = [p for p in convert_files(h, repo) if p.endswith(".parquet")]
    assert paths and all(p.startswith("default/partial-train/") for p in paths)
    page = viewer(h, "rows", dataset="alice/partial", config="default", split="train")[1]
    assert page["partial"] is True and 0 < page["num_rows_total"] < 10_000
    assert viewer(h, "info", dataset="alice/partial")[1]["partial"] is True


def test_only_a_datasets_default_branch_is_converted(h):
    model = h.repo("alice/model", files={"train.csv": "a\n1\n"})
    repo = h.repo("alice/branches", type="dataset", files={"train.csv": "a\n1\n"})
    h.run_jobs()
    assert h.view(model).resolve("refs/convert/parquet") is None
    converted = h.view(repo).resolve("refs/convert/parquet")
    h.commit(repo, {"train.csv": "a\n5\n"}, branch="dev")
    h.run_jobs()
    assert h.view(repo).resolve("refs/convert/parquet") == converted
    assert viewer(h, "rows", dataset="alice/branches", config="default", split="train")[1]["rows"][0]["row"] == {
        "a": 1}


def test_deleting_a_dataset_forgets_it(h):
    repo = h.repo("alice/gone", type="dataset", files={"train.csv": "a\n1\n"})
    h.run_jobs()
    viewer(h, "rows", dataset="alice/gone", config="default", split="train")
    assert h.plugin.states.load(repo.id) is not None
    h.delete(repo)
    h.run_jobs()
    assert h.plugin.states.load(repo.id) is None
    db = h.plugin.cache._db()
    assert db.execute("SELECT count(*) FROM answers WHERE repo_id = ?", [repo.id]).fetchone()[0] == 0


def test_cli_refresh_queues_a_job_whose_progress_jobs_list_shows(h):
    h.repo("alice/cli", type="dataset", files={"train.csv": "a\n1\n", "test.csv": "a\n,\n2,3\n"})
    status, out = h.cli("datasets", "refresh", "alice/cli")
    assert status == 0 and "refresh queued as job" in out
    h.run_jobs()
    status, listing = h.cli("jobs", "list")
    task = next(line for line in listing.splitlines() if " task " in line)
    assert " done " in task and "1 split(s) served, 1 rows; 1 failed: default/test:" in task
    assert h.cli("datasets", "refresh", "alice/nope") == (1, "")
    status, shown = h.cli("datasets", "status", "alice/cli")
    assert "default/train: 1 rows, 1 Parquet file(s)" in shown and "default/test: error: test.csv:" in shown
