"""The dataset viewer end to end: real pushes (git + git-lfs, huggingface_hub) of CSV, JSON
Lines and Parquet datasets, a user's, an organisation's and a private one, then
``datasets.load_dataset`` on refs/convert/parquet, every viewer route over HTTP, the SQL
console, the Hub's Parquet listing, the command line, and the bad inputs."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import urllib.error
import urllib.parse
import urllib.request

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.e2e.hook_helpers import wait_for
from tests.support import Git, unique

V = "/api/plugins/datasets"


def get(url: str, token: str | None = None, *, data: bytes | None = None) -> tuple[int, object]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if data is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body or b"null")
        except ValueError:
            return exc.code, body.decode(errors="replace")


def viewer(hub, route: str, token: str | None = None, **params: object) -> tuple[int, object]:
    return get(f"{hub.url}{V}/{route}?{urllib.parse.urlencode(params)}", token)


def processed(hub, dataset: str, token: str | None, head: str) -> bool:
    """The viewer has processed ``head`` (its /parquet answer carries the commit)."""
    request = urllib.request.Request(f"{hub.url}{V}/parquet?dataset={dataset}",
                                     headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.headers.get("X-Revision") == head
    except urllib.error.HTTPError as exc:
        return exc.code == 422 and head in str(exc.read())  # a dataset-level error is processed too


def parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


CSV_TRAIN = "id,text,label\n" + "".join(f"{i},row number {i} {'even' if i % 2 == 0 else 'odd'},{i % 3}\n"
                                        for i in range(250))
CSV_TEST = "id,text,label\n1,a held out row,0\n2,another held out row,1\n"


@pytest.fixture(scope="module")
def pushed(hub, tmp_path_factory):
    """A user's CSV dataset pushed with git and git-lfs, an organisation's JSON Lines dataset
    and a private Parquet dataset uploaded with huggingface_hub."""
    d = hub.daemon
    user, token = hub.user()
    _, other_token = hub.user()
    org = unique("org")
    d.cli("org", "create", org, "--owner", user)

    git = Git(tmp_path_factory.mktemp("home"))
    csv_repo = d.repo(user, unique("csv"), repo_type="dataset")
    attributes = {".gitattributes": "*.csv filter=lfs diff=lfs merge=lfs -text\n"}
    work = git.init_work(tmp_path_factory.mktemp("w"), attributes)
    git("lfs", "install", "--local", cwd=work)
    git.commit(work, {"data/train.csv": CSV_TRAIN, "data/test.csv": CSV_TEST, "README.md": "# csv\n"},
               message="data")
    git("push", "-q", d.repo_url(csv_repo, token=token, repo_type="dataset"), "main", cwd=work)
    csv_head = git.out("rev-parse", "HEAD", cwd=work)

    api = hub.api(token)
    jsonl_repo = f"{org}/{unique('jsonl')}"
    api.create_repo(jsonl_repo, repo_type="dataset")
    lines = [{"q": f"question {i}", "a": i * 1.5, "ok": i % 2 == 0} for i in range(40)]
    jsonl = "".join(json.dumps(line) + "\n" for line in lines)
    bad_jsonl = '{"x": 1}\n{"x": "one"}\n'
    card = ("---\nconfigs:\n- config_name: qa\n  data_files:\n  - split: train\n    path: qa/*.jsonl\n"
            "- config_name: broken\n  data_files: broken.jsonl\n---\n# qa\n")
    api.upload_file(path_or_fileobj=card.encode(), path_in_repo="README.md", repo_id=jsonl_repo,
                    repo_type="dataset")
    api.upload_file(path_or_fileobj=bad_jsonl.encode(), path_in_repo="broken.jsonl", repo_id=jsonl_repo,
                    repo_type="dataset")
    info = api.upload_file(path_or_fileobj=jsonl.encode(), path_in_repo="qa/part-0.jsonl", repo_id=jsonl_repo,
                           repo_type="dataset")
    jsonl_head = info.oid

    private_repo = f"{user}/{unique('private')}"
    api.create_repo(private_repo, repo_type="dataset", private=True)
    table = pa.table({"n": list(range(30)), "s": [f"s{i}" for i in range(30)]})
    private_bytes = parquet_bytes(table)
    info = api.upload_file(path_or_fileobj=private_bytes, path_in_repo="train.parquet",
                           repo_id=private_repo, repo_type="dataset")
    private_head = info.oid

    for repo, head in ((csv_repo, csv_head), (jsonl_repo, jsonl_head), (private_repo, private_head)):
        wait_for(lambda r=repo, h=head: processed(hub, r, token, h), timeout=120, what=f"{repo} processed")
    return {"user": user, "token": token, "other_token": other_token, "csv": csv_repo, "jsonl": jsonl_repo,
            "private": private_repo, "private_bytes": private_bytes, "lines": lines}


def test_refs_convert_parquet_is_an_ordinary_ref_that_datasets_loads(hub, pushed, tmp_path):
    import datasets

    api = hub.api(pushed["token"])
    refs = api.list_repo_refs(pushed["csv"], repo_type="dataset", include_pull_requests=True)
    assert [r.ref for r in refs.converts] == ["refs/convert/parquet"]
    files = sorted(api.list_repo_files(pushed["csv"], repo_type="dataset", revision="refs/convert/parquet"))
    assert files == ["README.md", "default/test/0000.parquet", "default/train/0000.parquet"]
    loaded = datasets.load_dataset(pushed["csv"], revision="refs/convert/parquet", cache_dir=str(tmp_path))
    assert sorted(loaded) == ["test", "train"]
    assert loaded["train"]["id"] == list(range(250))
    assert loaded["test"]["text"] == ["a held out row", "another held out row"]

    qa = datasets.load_dataset(pushed["jsonl"], "qa", revision="refs/convert/parquet", split="train",
                               cache_dir=str(tmp_path))
    assert qa["q"] == [line["q"] for line in pushed["lines"]]

    # The private dataset: loaded with its owner's token, invisible without it.
    private = datasets.load_dataset(pushed["private"], revision="refs/convert/parquet", split="train",
                                    token=pushed["token"], cache_dir=str(tmp_path))
    assert private["n"] == list(range(30))


def test_every_viewer_route_answers(hub, pushed):
    repo, token = pushed["csv"], pushed["token"]
    assert viewer(hub, "is-valid", dataset=repo) == (200, {"preview": True, "viewer": True, "search": True,
                                                           "filter": True, "statistics": True, "errors": []})
    status, splits = viewer(hub, "splits", dataset=repo)
    assert status == 200 and [(s["config"], s["split"]) for s in splits["splits"]] == [("default", "train"),
                                                                                      ("default", "test")]
    status, first = viewer(hub, "first-rows", dataset=repo, config="default", split="train")
    assert status == 200 and len(first["rows"]) == 100 and first["truncated"] is True
    assert first["rows"][7]["row"] == {"id": 7, "text": "row number 7 odd", "label": 1}
    assert [f["name"] for f in first["features"]] == ["id", "text", "label"]

    status, page = viewer(hub, "rows", dataset=repo, config="default", split="train", offset=240, length=20)
    assert status == 200 and page["num_rows_total"] == 250
    assert [r["row_idx"] for r in page["rows"]] == list(range(240, 250))

    status, found = viewer(hub, "search", dataset=repo, config="default", split="train", query="NUMBER 12")
    assert status == 200
    # every word, case-insensitive, anywhere in a text cell: "12" is in "112" too
    assert [r["row"]["id"] for r in found["rows"]] == [12, 112, *range(120, 130), 212]
    assert [r["row_idx"] for r in found["rows"]] == [12, 112, *range(120, 130), 212]
    assert found["num_rows_total"] == 13

    status, filtered = viewer(hub, "filter", dataset=repo, config="default", split="train",
                              where="\"label\" = 2 AND id < 20 AND text LIKE '%even'", orderby="id DESC")
    assert status == 200 and [r["row"]["id"] for r in filtered["rows"]] == [14, 8, 2]
    assert [r["row_idx"] for r in filtered["rows"]] == [14, 8, 2] and filtered["num_rows_total"] == 3

    status, size = viewer(hub, "size", dataset=repo)
    assert status == 200 and size["size"]["dataset"]["num_rows"] == 252
    status, info = viewer(hub, "info", dataset=repo, config="default")
    assert status == 200 and info["dataset_info"]["splits"]["train"]["num_examples"] == 250

    status, stats = viewer(hub, "statistics", dataset=repo, config="default", split="train")
    assert status == 200 and stats["num_examples"] == 250
    by_name = {c["column_name"]: c for c in stats["statistics"]}
    assert by_name["id"]["column_type"] == "int"
    assert by_name["id"]["column_statistics"]["min"] == 0 and by_name["id"]["column_statistics"]["max"] == 249
    assert by_name["label"]["column_statistics"]["histogram"]["hist"] == [84, 83, 83]
    assert by_name["text"]["column_type"] == "string_text"

    status, parquet = viewer(hub, "parquet", dataset=repo)
    assert status == 200 and [f["filename"] for f in parquet["parquet_files"]] == ["0000.parquet", "0000.parquet"]
    with urllib.request.urlopen(parquet["parquet_files"][0]["url"], timeout=30) as resp:
        assert pq.read_table(io.BytesIO(resp.read())).column("id").to_pylist() == list(range(250))

    # The Hub's listing, and its file URLs, which redirect to the file on refs/convert/parquet.
    status, listing = get(f"{hub.url}/api/datasets/{repo}/parquet")
    assert status == 200 and sorted(listing["default"]) == ["test", "train"]
    status, urls = get(f"{hub.url}/api/datasets/{repo}/parquet/default/train")
    assert status == 200 and len(urls) == 1
    with urllib.request.urlopen(urls[0], timeout=30) as resp:  # follows the redirect
        assert pq.read_table(io.BytesIO(resp.read())).num_rows == 250
    assert token


def test_the_sql_console_runs_one_select_over_the_dataset_only(hub, pushed):
    repo, token = pushed["csv"], pushed["token"]
    query = "SELECT label, count(*) AS n FROM train GROUP BY label ORDER BY label"
    status, answer = viewer(hub, "sql", dataset=repo, sql=query)
    assert status == 200 and answer["rows"] == [[0, 84], [1, 83], [2, 83]]
    body = json.dumps({"dataset": repo, "sql": "WITH t AS (SELECT * FROM test) SELECT max(id) FROM t"}).encode()
    assert get(f"{hub.url}{V}/sql", token, data=body)[1]["rows"] == [[2]]
    for refused, message in [
        ("DROP VIEW train", "only SELECT"),
        ("SELECT 1; SELECT 2", "exactly one statement"),
        ("COPY train TO '/tmp/out.csv'", "only SELECT"),
        ("SELECT * FROM read_csv('/etc/passwd')", "disabled"),
        ("SELECT * FROM read_text('" + str(hub.daemon.data / "gitd.toml") + "')", "disabled"),
        ("INSTALL httpfs", "only SELECT"),
        ("SET enable_external_access = true", "only SELECT"),
    ]:
        status, answer = viewer(hub, "sql", dataset=repo, sql=refused)
        assert status == 400 and message in answer["error"], (refused, answer)


def test_org_and_private_datasets(hub, pushed):
    token, other = pushed["token"], pushed["other_token"]
    status, splits = viewer(hub, "splits", dataset=pushed["jsonl"])
    assert status == 200 and [s["config"] for s in splits["splits"]] == ["qa"]
    assert splits["failed"][0]["config"] == "broken"
    assert "changed from number to string" in splits["failed"][0]["error"]["error"]
    valid = viewer(hub, "is-valid", dataset=pushed["jsonl"])[1]
    assert valid["viewer"] is True and valid["errors"][0]["config"] == "broken"

    private = pushed["private"]
    routes = [("is-valid", {}), ("splits", {}), ("first-rows", {"config": "default", "split": "train"}),
              ("rows", {"config": "default", "split": "train"}),
              ("search", {"config": "default", "split": "train", "query": "s1"}),
              ("filter", {"config": "default", "split": "train", "where": "n > 3"}), ("size", {}), ("info", {}),
              ("parquet", {}), ("statistics", {"config": "default", "split": "train"}),
              ("sql", {"sql": "SELECT count(*) FROM train"})]
    for route, params in routes:
        assert viewer(hub, route, None, dataset=private, **params)[0] == 401, route
        assert viewer(hub, route, other, dataset=private, **params)[0] == 404, route
        assert viewer(hub, route, token, dataset=private, **params)[0] == 200, route
    for path in ("parquet", "parquet/default", "parquet/default/train", "parquet/default/train/0.parquet"):
        assert get(f"{hub.url}/api/datasets/{private}/parquet".replace("parquet", path), other)[0] == 404
    status, rows = viewer(hub, "rows", token, dataset=private, config="default", split="train", length=3)
    assert [r["row"] for r in rows["rows"]] == [{"n": 0, "s": "s0"}, {"n": 1, "s": "s1"}, {"n": 2, "s": "s2"}]
    # Already Parquet: committed as it is (the same bytes, stored in LFS), not converted again.
    api = hub.api(token)
    original = hashlib.sha256(pushed["private_bytes"]).hexdigest()
    converted = [f for f in api.list_repo_tree(private, repo_type="dataset", revision="refs/convert/parquet",
                                               recursive=True) if getattr(f, "lfs", None)]
    assert [(f.path, f.lfs.sha256) for f in converted] == [("default/train/0000.parquet", original)]


@pytest.fixture
def no_xet(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the README tells users who upload large files: HF_HUB_DISABLE_XET=1."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)


def test_bad_inputs_are_per_split_errors_and_the_rest_is_served(hub, no_xet, tmp_path):
    user, token = hub.user()
    api = hub.api(token)
    repo = f"{user}/{unique('bad')}"
    api.create_repo(repo, repo_type="dataset")
    wide = ",".join(f"c{i}" for i in range(10_000)) + "\n" + ",".join("1" for _ in range(10_000)) + "\n"
    corrupt = parquet_bytes(pa.table({"a": [1, 2, 3]}))
    corrupt = corrupt[:-12] + b"\xff\xff\xff\x7f" + b"XXXX" + b"PAR1"
    bomb = gzip.compress(b"a,b\n" + b"0,0\n" * 25_000_000, compresslevel=9)  # 100 MB of lines in a few hundred KB
    huge_line = b'{"a": "' + b"x" * (100 << 20) + b'"}\n'  # one JSON line of 100 MB
    files = {"good/data.csv": b"a,b\n1,x\n2,y\n", "ragged/data.csv": b"a,b\n1,2\n3,4,5\n",
             "mixed/data.jsonl": b'{"a": 1}\n{"a": [1, 2]}\n', "wide/data.csv": wide.encode(),
             "corrupt/data.parquet": corrupt, "bomb/data.csv.gz": bomb, "huge/data.jsonl": huge_line}
    card = "---\nconfigs:\n" + "".join(f"- config_name: {name.split('/')[0]}\n  data_files: {name}\n"
                                        for name in files) + "---\n"
    from huggingface_hub import CommitOperationAdd

    info = api.create_commit(repo, repo_type="dataset", commit_message="bad", operations=[
        CommitOperationAdd("README.md", card.encode()),
        *[CommitOperationAdd(path, data) for path, data in files.items()]])
    wait_for(lambda: processed(hub, repo, token, info.oid), timeout=180, what="the bad dataset processed")
    status, splits = viewer(hub, "splits", dataset=repo)
    assert status == 200
    assert [s["config"] for s in splits["splits"]] == ["good"]
    errors = {f["config"]: f["error"]["error"] for f in splits["failed"]}
    assert "Expected 2 columns, got 3" in errors["ragged"]
    assert "column types differ" in errors["mixed"]
    assert "10000 columns" in errors["wide"]
    assert "footer" in errors["corrupt"]
    assert "decompression bomb" in errors["bomb"]
    assert "longer than the read block" in errors["huge"]
    valid = viewer(hub, "is-valid", dataset=repo)[1]
    assert valid["viewer"] is True and sorted(e["config"] for e in valid["errors"]) == sorted(errors)
    assert viewer(hub, "rows", dataset=repo, config="good", split="train")[1]["num_rows_total"] == 2
    assert viewer(hub, "rows", dataset=repo, config="ragged", split="train")[0] == 422


def test_cli_refresh_and_the_jobs_list(hub, pushed):
    d = hub.daemon
    _, out, _ = d.cli("datasets", "refresh", pushed["csv"])
    assert "refresh queued as job" in out
    job = int(out.split("job ")[1].split()[0])

    def finished() -> str | None:
        _, listing, _ = d.cli("jobs", "list", "--limit", "200")
        line = next((row for row in listing.splitlines() if row.startswith(f"{job} ")), "")
        return line if " done " in line else None

    line = wait_for(finished, timeout=120, what="the refresh job")
    assert "2 split(s) served, 252 rows" in line
    _, status, _ = d.cli("datasets", "status", pushed["csv"])
    assert "default/train: 250 rows, 1 Parquet file(s)" in status
