"""Bad data files: each is a clear error of its own split, read with bounded memory and time,
while the dataset's other splits are still converted and served."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import time
import urllib.parse

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from gitd_plugins.dataset_viewer import DatasetViewer
from gitd_plugins.dataset_viewer.layout import DataFile
from gitd_plugins.dataset_viewer.sources import Limits, SplitError, batches

from gitd.testing import LfsBytes

SETTINGS = {"block_size": "64KiB", "max_columns": 1000, "max_json_document": "64KiB"}


def parquet(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def card(names: list[str]) -> str:
    return "---\nconfigs:\n" + "".join(f"- config_name: {n.split('/')[0]}\n  data_files: {n}\n" for n in names) + \
        "---\n"


def errors_of(h, files: dict[str, bytes | str | LfsBytes], served: tuple[str, ...] = ()) -> dict[str, str]:
    """Push ``files`` (each its own config, next to a good one); the per-config errors."""
    name = f"alice/bad{time.monotonic_ns()}"
    h.repo(name, type="dataset", files={"README.md": card(["good/data.csv", *files]),
                                        "good/data.csv": "a,b\n1,x\n2,y\n", **files})
    h.run_jobs()
    r = h.http("GET", f"/api/plugins/datasets/splits?dataset={name}")
    assert r.status == 200
    answer = r.json()
    assert [s["config"] for s in answer["splits"]] == ["good", *served]  # the good splits are still served
    rows = h.http("GET", f"/api/plugins/datasets/rows?dataset={name}&config=good&split=train").json()
    assert [row["row"] for row in rows["rows"]] == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    valid = h.http("GET", f"/api/plugins/datasets/is-valid?{urllib.parse.urlencode({'dataset': name})}").json()
    failed = {f["config"]: f["error"]["error"] for f in answer["failed"]}
    assert {e["config"]: e["error"] for e in valid["errors"]} == failed and valid["viewer"] is True
    return failed


@pytest.fixture
def h(gitd_harness):
    return gitd_harness(DatasetViewer, name="datasets", settings=SETTINGS)


def test_csv_with_ragged_rows_or_mixed_types(h):
    mixed = "n,s\n" + "".join(f"{i},x\n" for i in range(20_000)) + "many,x\n"  # past the first 64 KiB block
    errors = errors_of(h, {"ragged/data.csv": "a,b\n1,2\n3,4,5\n", "mixed/data.csv": LfsBytes(mixed.encode()),
                           "twice/data.csv": "a,a\n1,2\n"})
    assert errors["ragged"] == "ragged/data.csv: CSV parse error: Expected 2 columns, got 3: 3,4,5"
    assert errors["mixed"].startswith("mixed/data.csv: column types differ within the file (")
    assert "many" in errors["mixed"]
    assert errors["twice"] == "the column name 'a' appears more than once"


def test_json_lines_with_mixed_types_a_line_longer_than_the_block_or_a_big_document(h):
    long_line = json.dumps({"a": "x" * (300 << 10)}) + "\n"  # 300 KiB: more than two 64 KiB blocks
    document = json.dumps([{"a": i, "b": "y" * 100} for i in range(1000)])  # a 100 KiB JSON array
    errors = errors_of(h, {"mixed/data.jsonl": '{"a": 1}\n{"a": "one"}\n', "long/data.jsonl": LfsBytes(
        b'{"a": "y"}\n' + long_line.encode()), "doc/data.json": document, "notjson/data.json": "[1, 2]"})
    assert errors["mixed"] == ("mixed/data.jsonl: column types differ within the file (JSON parse error: "
                               "Column(/a) changed from number to string in row 1)")
    assert errors["long"] == ("long/data.jsonl: a line is longer than the read block (JSON lines must be shorter "
                              "than the block size)")
    assert errors["doc"].startswith("doc/data.json: a JSON document (not JSON Lines) of ")
    assert errors["notjson"] == "notjson/data.json: a JSON document must be an array of objects"


def test_parquet_with_a_corrupted_footer(h):
    good = parquet(pa.table({"a": [1, 2, 3]}))
    errors = errors_of(h, {
        "nomagic/data.parquet": LfsBytes(good[:-4] + b"XXXX"),
        "length/data.parquet": LfsBytes(good[:-8] + (1 << 30).to_bytes(4, "little") + b"PAR1"),
        "garbage/data.parquet": LfsBytes(good[:4] + b"\0" * (len(good) - 12) + good[-8:]),
        "missing/data.parquet": LfsBytes(good + b"!", upload=False)})
    assert errors["nomagic"] == "nomagic/data.parquet: not a Parquet file, or its footer is corrupted (no PAR1 magic)"
    assert errors["length"] == "length/data.parquet: the Parquet footer is corrupted (it claims 1073741824 bytes)"
    assert errors["garbage"].startswith("garbage/data.parquet: the Parquet file does not open (")
    assert "is not on this server" in errors["missing"]


def test_ten_thousand_columns(h):
    wide = ",".join(f"c{i}" for i in range(10_000)) + "\n" + ",".join(["1"] * 10_000) + "\n"
    wide_parquet = parquet(pa.table({f"c{i}": [1] for i in range(1500)}))
    errors = errors_of(h, {"wide/data.csv": LfsBytes(wide.encode()), "widepq/data.parquet": LfsBytes(wide_parquet)})
    assert errors["wide"] == ("wide/data.csv: 10000 columns; the viewer reads at most 1000 (setting "
                              "plugins.datasets.max_columns)")
    assert errors["widepq"].startswith("widepq/data.parquet: 1500 columns")


def test_decompression_bombs_are_stopped(h):
    bomb = gzip.compress(b"a,b\n" + b"0,0\n" * 25_000_000, compresslevel=9)  # 100 MB in a few hundred KB
    assert len(bomb) < 1 << 20
    started = time.monotonic()
    errors = errors_of(h, {"bomb/data.csv.gz": LfsBytes(bomb),
                           "fine/data.csv.bz2": LfsBytes(bz2.compress(b"a\n1\n"))}, served=("fine",))
    assert errors == {"bomb": "bomb/data.csv.gz: decompresses to more than 100 times its size: refused as a "
                              "possible decompression bomb"}
    assert time.monotonic() - started < 60


def test_a_split_that_takes_too_long_is_stopped(gitd_harness):
    h = gitd_harness(DatasetViewer, name="datasets", settings={**SETTINGS, "split_timeout": "1ms"})
    slow = "a,b\n" + "".join(f"{i},{i}\n" for i in range(200_000))
    h.repo("alice/slow", type="dataset", files={"data.csv": LfsBytes(slow.encode())})
    h.run_jobs()
    answer = h.http("GET", "/api/plugins/datasets/splits?dataset=alice/slow").json()
    assert answer["failed"][0]["error"]["error"] == "data.csv: reading took longer than the split's time limit"


def test_reading_stops_at_the_first_error(h):
    """pyarrow's streaming readers read ahead on a thread of their own, and closing one can
    read on to the end of its input: once a read fails, the guard answers end of file and the
    file is closed, so a bad file costs a few blocks, not its whole size."""
    repo = h.repo("alice/ahead", type="dataset", files={
        "data.jsonl": LfsBytes(b'{"a": 1}\n{"a": "' + b"z" * (40 << 20) + b'"}\n')})
    view = h.view(repo)
    f = DataFile("data.jsonl", 40 << 20, "json", None, "", None)
    limits = Limits(block_size=64 << 10, max_columns=10, max_source_size=1 << 40, max_compression_ratio=100,
                    max_json_document=1 << 20, deadline=time.monotonic() + 60)
    opened: list = []
    original = view.open

    def spy(commit: str, path: str):
        stream = original(commit, path)
        opened.append(stream)
        return stream

    view.open = spy  # type: ignore[method-assign]
    with pytest.raises(SplitError, match="longer than the read block"):
        list(batches(view, view.head(), f, limits))
    time.sleep(0.5)  # the read-ahead thread would be reading now
    assert opened and all(s.closed for s in opened)
    assert max(s.raw.pos for s in opened) < 8 << 20  # a few 64 KiB blocks, not the 40 MiB file
