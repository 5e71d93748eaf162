"""The dataset viewer's parts on their own: the filter grammar, the SQL console's limits, the
disk cache's bounds."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from gitd_plugins.dataset_viewer import console as console_module
from gitd_plugins.dataset_viewer.cache import DiskCache
from gitd_plugins.dataset_viewer.console import Console, ConsoleError
from gitd_plugins.dataset_viewer.where import FilterError, compile_orderby, compile_where

COLUMNS = ["id", "name", 'we"ird', "Score"]


def test_where_compiles_to_sql_with_every_value_a_parameter():
    assert compile_where("id = 3 AND name != 'x'", COLUMNS) == ('(("id" = ?) AND ("name" <> ?))', [3, "x"])
    assert compile_where("NOT (id < -2.5 OR \"we\"\"ird\" IS NOT NULL)", COLUMNS) == (
        '(NOT (("id" < ?) OR ("we""ird" IS NOT NULL)))', [-2.5])
    assert compile_where("score IN (1, 2e3, 'a''b') and name not like 'A%'", COLUMNS) == (
        '(("Score" IN (?, ?, ?)) AND ("name" NOT LIKE ?))', [1, 2000.0, "a'b", "A%"])
    assert compile_where("id BETWEEN 1 AND 5 OR id NOT BETWEEN name AND 3", COLUMNS) == (
        '(("id" BETWEEN ? AND ?) OR ("id" NOT BETWEEN "name" AND ?))', [1, 5, 3])
    assert compile_where("   ", COLUMNS) == ("TRUE", [])
    assert compile_orderby('Score DESC NULLS LAST, "name"', COLUMNS) == '"Score" DESC NULLS LAST, "name"'


@pytest.mark.parametrize("text", [
    "id = 1; DROP TABLE t", "id = 1 -- comment", "id = 1 /* x */", "name = \"x\" || 'y'", "id = (SELECT 1)",
    "read_csv('/etc/passwd') = 1", "id = 1 UNION SELECT 1", "id = 'unterminated", "\"no such\" = 1",
    "id = 1)", "id IN ()", "id LIKE 5", "(" * 40 + "id = 1" + ")" * 40, "NOT " * 40 + "id = 1",
    "id = 1" + " OR id = 1" * 2000])
def test_where_refuses_anything_outside_the_grammar(text):
    with pytest.raises(FilterError):
        compile_where(text, COLUMNS)


def test_where_only_names_the_splits_columns():
    sql, params = compile_where("NAME = 'a'", COLUMNS)  # an unquoted name matches case-insensitively
    assert sql == '("name" = ?)' and params == ["a"]
    with pytest.raises(FilterError, match="no column 'NAME'"):
        compile_where('"NAME" = 1', COLUMNS)  # a quoted one exactly
    with pytest.raises(FilterError):
        compile_orderby("id; DROP TABLE t", COLUMNS)


@pytest.fixture
def split(tmp_path: Path) -> dict[str, list[str]]:
    (tmp_path / "data").mkdir()
    train = tmp_path / "data" / "train.parquet"
    pq.write_table(pa.table({"n": list(range(100)), "s": [f"row {i}" for i in range(100)]}), train)
    other = tmp_path / "data" / "other.parquet"  # another dataset's file, next to this one's
    pq.write_table(pa.table({"secret": ["hidden"]}), other)
    return {"train": [str(train)]}


def make_console(tmp_path: Path, **limits) -> Console:
    (tmp_path / "cache" / "tmp").mkdir(parents=True, exist_ok=True)
    options = {"max_rows": 1000, "timeout": 10.0, "memory_limit": 256 << 20, "threads": 1, **limits}
    return Console(tmp_path / "cache", **options)


def test_the_console_answers_a_select(tmp_path, split):
    out = make_console(tmp_path).run("WITH t AS (SELECT * FROM train WHERE n % 10 = 0) SELECT n, s FROM t "
                                     "ORDER BY n DESC LIMIT 3", split)
    assert out == {"columns": [{"name": "n", "type": "BIGINT"}, {"name": "s", "type": "VARCHAR"}],
                   "rows": [[90, "row 90"], [80, "row 80"], [70, "row 70"]], "num_rows": 3, "truncated": False}
    capped = make_console(tmp_path, max_rows=7).run("FROM train", split)
    assert capped["num_rows"] == 7 and capped["truncated"] is True


@pytest.mark.parametrize("sql, message", [
    ("DROP VIEW train", "not DROP"), ("CREATE TABLE x AS SELECT 1", "not CREATE"),
    ("INSERT INTO train VALUES (1, 'x')", "not INSERT"), ("COPY train TO 'x.csv'", "not COPY"),
    ("ATTACH 'x.db'", "not ATTACH"), ("SET threads = 8", "not SET"), ("PRAGMA version", "not PRAGMA"),
    ("INSTALL httpfs", "not LOAD"), ("LOAD httpfs", "not LOAD"), ("EXPLAIN SELECT 1", "not EXPLAIN"),
    ("CALL pragma_version()", "not CALL"), ("SELECT 1; SELECT 2", "exactly one statement; this has 2"),
    ("SELECT 1; DROP VIEW train", "exactly one statement"), ("", "empty"), ("SELEC 1", "does not parse"),
    ("SELECT * FROM read_csv('/etc/passwd')", "file system operations are disabled"),
    ("SELECT * FROM read_text('/etc/hostname')", "file system operations are disabled"),
    ("SELECT * FROM glob('/*')", "file system operations are disabled"),
    ("SELECT * FROM read_parquet('OTHER')", "file system operations are disabled"),
    ("SELECT * FROM 'https://example.com/x.parquet'", "disabled"),
])
def test_the_console_refuses_other_statements_and_other_files(tmp_path, split, sql, message):
    other = str(Path(split["train"][0]).with_name("other.parquet"))
    with pytest.raises(ConsoleError, match=message.replace("(", r"\(")):
        make_console(tmp_path).run(sql.replace("OTHER", other), split)


def test_the_console_database_is_read_only_even_past_the_statement_check(tmp_path, split, monkeypatch):
    monkeypatch.setattr(console_module, "check", lambda sql: None)
    with pytest.raises(ConsoleError, match=r"read-only|Cannot execute statement"):
        make_console(tmp_path).run("CREATE TABLE t AS SELECT 1", split)
    with pytest.raises(ConsoleError, match="locked"):
        make_console(tmp_path).run("SET enable_external_access = true", split)


def test_the_console_stops_at_its_time_and_memory_limits(tmp_path, split):
    started = time.monotonic()
    with pytest.raises(ConsoleError, match=r"ran longer than 0\.5s"):
        make_console(tmp_path, timeout=0.5).run("SELECT count(*) FROM range(1000000000000) a(x) WHERE x % 7 = 3",
                                                split)
    assert time.monotonic() - started < 30
    with pytest.raises(ConsoleError, match="memory"):
        make_console(tmp_path, memory_limit=32 << 20).run(
            "SELECT string_agg(x::VARCHAR || repeat('y', 50), ',') FROM range(20000000) a(x)", split)


def test_regression_the_console_spills_nothing_to_disk(tmp_path, split):
    """DuckDB spills a sort past its memory limit into a temporary directory beside the database
    file, up to 90% of the free disk by default: a reader's statement could fill the disk."""
    console = make_console(tmp_path, memory_limit=48 << 20)
    with pytest.raises(ConsoleError, match="needs more than 48 MiB of memory"):
        console.run("SELECT count(*) FROM (SELECT md5(x::VARCHAR) AS m FROM range(3000000) a(x) ORDER BY m)", split)
    assert [p.name for p in console.work.iterdir()] == []  # neither its database nor a spill directory left


def test_the_disk_cache_stays_within_its_size_least_recently_used_first(tmp_path):
    cache = DiskCache(tmp_path / "c", max_bytes=10_000)
    for i in range(5):
        cache.put(f"a{i}", 1, bytes(900))
    produced: list[str] = []

    def produce(path: Path) -> None:
        produced.append(path.name)
        time.sleep(0.05)
        path.write_bytes(bytes(4000))

    threads = [threading.Thread(target=cache.file, args=("big.parquet", 1, produce)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(produced) == 1  # made once, however many asked
    assert cache.size() <= 10_000
    cache.put("newest", 2, bytes(900))
    cache.file("bigger.parquet", 2, lambda p: p.write_bytes(bytes(4000)))
    assert cache.size() <= 10_000
    assert cache.get("a0") is None and cache.get("newest") is not None  # the oldest went first
    assert not (tmp_path / "c" / "files" / "big.parquet").exists() or cache.has("big.parquet")
    cache.forget_repo(2)
    assert cache.get("newest") is None and not (tmp_path / "c" / "files" / "bigger.parquet").exists()
    cache.put("huge", 3, bytes(5000))  # over a tenth of the cache: not kept
    assert cache.get("huge") is None
