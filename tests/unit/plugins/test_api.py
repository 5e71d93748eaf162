"""The public plugin API, end to end in-process: a plugin using every contribution point,
run by the harness on the real store, hook chain, job queue, LFS store and HTTP app."""

from __future__ import annotations

import argparse
import sqlite3
from dataclasses import dataclass, field

import pytest

import gitd
from gitd.plugin_api import (
    CliCommand,
    Duration,
    HTTPError,
    PluginContext,
    PluginRequest,
    RepoRoute,
    Response,
    Route,
    Size,
    hookimpl,
)
from gitd.testing import LfsBytes

WEIGHTS = bytes(range(256)) * 64  # 16 KiB


ONE_MIB = Size(1 << 20)
MINUTE = Duration(60)


@dataclass(frozen=True)
class Settings:
    label: str = "demo"
    limit: Size = ONE_MIB
    every: Duration = MINUTE
    types: list[str] = field(default_factory=lambda: ["model", "dataset"])
    strict: bool = False


class Indexer:
    """Counts files per push in its own table, answers routes, adds info fields and a CLI."""

    def __init__(self, context: PluginContext):
        self.ctx = context
        self.settings = context.settings(Settings)
        context.storage.migrate([
            "CREATE TABLE {prefix}files (repo_id INTEGER, commit_sha TEXT, path TEXT, size INTEGER, lfs INTEGER, "
            "PRIMARY KEY (repo_id, commit_sha, path))",
            "CREATE TABLE {prefix}events (repo_id INTEGER, kind TEXT, detail TEXT)",
        ])
        self.seen: list[gitd.PushEvent] = []

    @hookimpl
    def gitd_post_receive(self, event: gitd.PushEvent) -> None:
        update = event.default_branch_update()
        if update is None or update.is_delete:
            return
        view = event.view
        changes = view.diff(None if update.is_create else update.old, update.new)
        with self.ctx.storage.transaction() as db:
            for change in changes:
                entry = change.new
                if entry is not None:
                    db.execute("INSERT OR REPLACE INTO {prefix}files VALUES (?, ?, ?, ?, ?)",
                               [event.repo.id, update.new, entry.path, entry.size, entry.lfs is not None])
        self.seen.append(event)

    @hookimpl
    def gitd_repo_renamed(self, event: gitd.RepoRenamed) -> None:
        self.ctx.storage.execute("INSERT INTO {prefix}events VALUES (?, 'renamed', ?)",
                                 [event.repo.id, f"{event.old_full_name}->{event.repo.full_name}"])

    @hookimpl
    def gitd_repo_visibility_changed(self, repo: gitd.RepoInfo) -> None:
        self.ctx.storage.execute("INSERT INTO {prefix}events VALUES (?, 'visibility', ?)",
                                 [repo.id, "private" if repo.private else "public"])

    @hookimpl
    def gitd_task(self, event: gitd.TaskEvent) -> None:
        assert event.repo is not None
        self.ctx.storage.kv.set(f"task:{event.repo.full_name}", {"task": event.task, **event.payload})

    @hookimpl
    def gitd_repo_info(self, repo: gitd.RepoInfo, commit: str | None) -> dict:
        rows = self.ctx.storage.query("SELECT count(*) AS n FROM {prefix}files WHERE repo_id = ? AND commit_sha = ?",
                                      [repo.id, commit])
        return {"indexed_files": rows[0]["n"], "tags": [f"label:{self.settings.label}"], "description": "filled"}

    @hookimpl
    def gitd_http_routes(self) -> list:
        return [
            Route("GET", "/hello/{who}", self.hello),
            Route("GET", "/whoami", self.whoami, signed_in=True),
            Route("GET", "/lookup", self.lookup),
            RepoRoute("GET", "/files/{rev}", self.files),
            RepoRoute("GET", "/header/{path*}", self.header, types=("model",)),
            RepoRoute("POST", "/reindex", self.reindex, access="write"),
        ]

    def hello(self, request: PluginRequest) -> dict:
        return {"hello": request.params["who"], "label": self.settings.label}

    def whoami(self, request: PluginRequest) -> dict:
        return {"user": request.user}

    def lookup(self, request: PluginRequest) -> dict:
        repo = request.repository(request.query["repo"], request.query.get("type", "model"))
        return {"id": repo.id}

    def files(self, request: PluginRequest) -> list:
        commit = request.view.resolve(request.params["rev"])
        if commit is None:
            raise HTTPError(404, "no such revision")
        return [{"path": e.path, "size": e.size, "lfs": e.lfs.oid if e.lfs else None}
                for e in request.view.files(commit)]

    async def header(self, request: PluginRequest) -> Response:
        view = request.view
        data = view.read_range(view.head(), request.params["path"], 0, 8)
        return Response(data, content_type="application/octet-stream", headers={"X-Plugin": "yes"})

    def reindex(self, request: PluginRequest) -> dict:
        assert request.repo is not None
        return {"job": self.ctx.submit(request.repo, "reindex", {"by": request.user}, key=request.repo.full_name)}

    @hookimpl
    def gitd_cli_commands(self) -> list:
        def args(parser: argparse.ArgumentParser) -> None:
            parser.add_argument("repo")

        def run(ns: argparse.Namespace) -> int:
            repo = self.ctx.find_repo(ns.repo)
            if repo is None:
                raise gitd.PluginError(f"no repository {ns.repo}")
            print(f"{repo.full_name}: {len(self.ctx.storage.query('SELECT * FROM {prefix}files'))} files")
            return 0

        return [CliCommand("indexer", "count", "count indexed files", run, args)]


@pytest.fixture
def h(gitd_harness):
    return gitd_harness(Indexer, name="indexer", settings={"label": "x1", "types": "model, dataset"})


def test_typed_settings_convert_strings_and_defaults(h):
    s = h.plugin.settings
    assert (s.label, s.limit, s.every, s.types, s.strict) == ("x1", 1 << 20, 60.0, ["model", "dataset"], False)


@pytest.mark.parametrize(("settings", "message"), [
    ({"limit": "lots"}, r"plugins\.indexer\.limit: expected a size"),
    ({"every": "soon"}, r"plugins\.indexer\.every: expected a duration"),
    ({"strict": "maybe"}, r"plugins\.indexer\.strict: expected true or false"),
    ({"labl": "x"}, r"plugins\.indexer\.labl: unknown setting \(known: every, label, limit, strict, types\)"),
])
def test_bad_settings_name_the_key(gitd_harness, settings, message):
    with pytest.raises(gitd.SettingsError, match=message):
        gitd_harness(Indexer, name="indexer", settings=settings)


def test_post_receive_sees_ref_level_events_and_reads_lfs_files_through_the_view(h):
    repo = h.repo("alice/model", files={"README.md": "# hi\n"})
    event = h.commit(repo, {"weights.bin": LfsBytes(WEIGHTS), "config.json": "{}"}, message="weights")
    [update] = event.updates
    assert (update.kind, update.ref_type, update.short_name, update.is_branch) == ("update", "branch", "main", True)
    h.run_jobs()
    rows = h.storage.query("SELECT path, size, lfs FROM {prefix}files WHERE commit_sha = ? ORDER BY path",
                           [update.new])
    assert rows == [{"path": "config.json", "size": 2, "lfs": 0},
                    {"path": "weights.bin", "size": len(WEIGHTS), "lfs": 1}]
    view = h.view(repo)
    assert view.read(update.new, "weights.bin") == WEIGHTS
    assert view.read_range(update.new, "weights.bin", 300, 310) == WEIGHTS[300:310]
    with view.open(update.new, "weights.bin") as f:
        f.seek(1000)
        assert f.read(24) == WEIGHTS[1000:1024]
    with pytest.raises(gitd.LimitExceeded):
        view.read(update.new, "weights.bin", max_size=100)
    event = h.commit(repo, {"tag-me": "x"}, branch="dev")
    assert event.updates[0].kind == "create" and event.default_branch_update() is None


def test_an_lfs_pointer_without_its_object_reads_as_missing(h):
    repo = h.repo("alice/model", files={"README.md": "x"})
    h.commit(repo, {"lost.bin": LfsBytes(b"not uploaded", upload=False)})
    view = h.view(repo)
    entry = view.entry(view.head(), "lost.bin")
    assert entry is not None and entry.lfs is not None and entry.lfs.held is False
    with pytest.raises(gitd.LfsObjectMissing):
        view.read(view.head(), "lost.bin")


def test_lifecycle_events_and_tasks_reach_the_plugin(h):
    repo = h.repo("alice/model")
    h.rename(repo, "renamed")
    h.set_private(repo, True)
    h.set_private(repo, True)  # no change: no event
    h.run_jobs()
    events = h.storage.query("SELECT kind, detail FROM {prefix}events ORDER BY rowid")
    assert events == [{"kind": "renamed", "detail": "alice/model->alice/renamed"},
                      {"kind": "visibility", "detail": "private"}]
    repo = h.refresh(repo)
    assert h.context.submit(repo, "reindex", {"n": 1}, key="k") is not None
    assert h.context.submit(repo, "reindex", {"n": 2}, key="k") is None  # still queued: not queued twice
    h.run_jobs()
    assert h.storage.kv.get("task:alice/renamed") == {"task": "reindex", "n": 1}
    # Once it ran, the same key queues again (it only blocks a task that is still waiting).
    assert h.context.submit(repo, "reindex", {"n": 3}, key="k") is not None
    h.run_jobs()
    assert h.storage.kv.get("task:alice/renamed") == {"task": "reindex", "n": 3}


def test_plugin_storage_cannot_touch_gitds_tables_or_other_plugins(h):
    storage = h.storage
    h.user("bob")
    for sql in ("SELECT * FROM tokens", "SELECT * FROM accounts", "DELETE FROM repos",
                "CREATE TABLE plugin_other_x (a)", "ATTACH DATABASE ':memory:' AS other",
                "PRAGMA writable_schema = 1", "DELETE FROM sqlite_sequence",
                "INSERT INTO sqlite_master VALUES ('table', 'x', 'x', 0, '')"):
        with pytest.raises(sqlite3.DatabaseError):
            storage.execute(sql)
    assert storage.table("files").count == 0  # sqlite-utils works on the plugin's own tables
    storage.table("notes").insert({"id": 1, "text": "mine"}, pk="id")
    assert storage.query("SELECT text FROM {prefix}notes") == [{"text": "mine"}]
    # Migrations are numbered by position: the first two ran when the plugin started, so only
    # the third runs now (the first would fail: its table exists).
    assert storage.migrate(["CREATE TABLE {prefix}files (a)", "CREATE TABLE {prefix}events (b)",
                            "CREATE TABLE {prefix}more (c)"]) == 3
    assert {r["name"] for r in storage.query("SELECT name FROM sqlite_master WHERE name LIKE 'plugin_%'")} >= {
        "plugin_indexer_files", "plugin_indexer_more", "plugin_indexer_schema"}


def test_routes_are_behind_the_daemons_auth_and_access_checks(h):
    h.user("bob")
    public = h.repo("alice/model", files={"w.bin": LfsBytes(WEIGHTS), "README.md": "hi"})
    private = h.repo("alice/secret", private=True, files={"README.md": "s"})
    data = h.repo("alice/table", type="dataset", files={"a.csv": "x\n"})

    assert h.http("GET", "/api/plugins/indexer/hello/world").json() == {"hello": "world", "label": "x1"}
    assert h.http("GET", "/api/plugins/indexer/whoami").status == 401
    assert h.http("GET", "/api/plugins/indexer/whoami", user="bob").json() == {"user": "bob"}
    assert h.http("GET", "/api/plugins/indexer/whoami", headers={"Authorization": "Bearer nope"}).status == 401

    listing = h.http("GET", "/api/models/alice/model/files/main")
    assert listing.status == 200
    assert {f["path"]: f["lfs"] is not None for f in listing.json()} == {"README.md": False, "w.bin": True}
    assert h.http("GET", "/api/models/alice/model/files/nope").status == 404
    head = h.http("GET", "/api/models/alice/model/header/w.bin")
    assert head.body == WEIGHTS[:8] and head.headers["X-Plugin"] == "yes"
    assert h.http("GET", "/api/datasets/alice/table/files/main").json() == [{"path": "a.csv", "size": 2, "lfs": None}]
    assert h.http("GET", "/api/datasets/alice/table/header/a.csv").status == 404  # a model-only route

    # A private repository is a 404 to anyone who may not read it, on every plugin route.
    assert h.http("GET", "/api/models/alice/secret/files/main").status == 401  # anonymous: sign in
    assert h.http("GET", "/api/models/alice/secret/files/main", user="bob").status == 404
    assert h.http("GET", "/api/models/alice/secret/files/main", user="alice").status == 200
    assert h.http("GET", "/api/plugins/indexer/lookup?repo=alice/secret", user="bob").status == 404
    assert h.http("GET", "/api/plugins/indexer/lookup?repo=alice/secret", user="alice").json() == {"id": private.id}

    # Writes need write access: bob can read the public repository but not reindex it.
    assert h.http("POST", "/api/models/alice/model/reindex", user="bob").status == 403
    assert h.http("POST", "/api/models/alice/model/reindex", user="alice").json()["job"] is not None
    h.run_jobs()
    assert h.storage.kv.get("task:alice/model") == {"task": "reindex", "by": "alice"}
    assert public.id != data.id


def test_info_fields_are_merged_without_replacing_the_daemons_values(h):
    repo = h.repo("alice/model", files={"README.md": "---\ntags: [mine]\n---\n# hi\n", "a.txt": "a"})
    h.run_jobs()
    info = h.http("GET", "/api/models/alice/model").json()
    assert info["indexed_files"] == 2
    assert info["tags"] == ["mine", "label:x1"]  # merged after the card's tags
    assert info["id"] == "alice/model"
    native = h.http("GET", "/api/v1/models/alice/model").json()["data"]
    assert native["indexed_files"] == 2
    assert h.repo_info(repo)["indexed_files"] == 2


def test_cli_subcommands_come_from_the_plugin(h):
    h.repo("alice/model", files={"a.txt": "a"})
    h.run_jobs()
    assert h.cli("indexer", "count", "alice/model") == (0, "alice/model: 1 files\n")
    code, _ = h.cli("indexer", "count", "alice/none")
    assert code == 1


@pytest.mark.s3
def test_views_read_lfs_files_on_s3_with_ranged_reads(gitd_harness, seaweed):
    bucket = seaweed.make_bucket("harness-view")
    h = gitd_harness(Indexer, name="indexer", config=seaweed.gitd_settings(bucket, presign=False))

    async def ensure() -> None:
        await h.parts.lfs.storage.ensure_bucket()

    h.parts.portal.run(ensure)
    big = bytes(range(251)) * 40_000  # about 10 MB
    repo = h.repo("alice/model", files={"model.safetensors": LfsBytes(big)})
    view = h.view(repo)
    commit = view.head()
    assert view.read_range(commit, "model.safetensors", 5_000_000, 5_000_100) == big[5_000_000:5_000_100]
    with view.open(commit, "model.safetensors") as f:
        assert f.read(8) == big[:8]
        f.seek(-16, 2)
        assert f.read() == big[-16:]
    assert h.parts.lfs.local_path(repo.id, view.entry(commit, "model.safetensors").lfs.oid) is None  # really S3


class Converter:
    """Writes a generated branch (as a dataset viewer's Parquet conversion does)."""

    def __init__(self, context: PluginContext):
        self.ctx = context
        self.seen: list[tuple[str, str]] = []

    @hookimpl
    def gitd_post_receive(self, event: gitd.PushEvent) -> None:
        self.seen.extend((event.via, u.ref) for u in event.updates)
        update = event.default_branch_update()
        if update is None or event.via == "plugin":
            return
        data = event.view.read(update.new, "data.csv")
        writer = self.ctx.writer(event.repo)
        writer.commit("refs/convert/upper", {"data/upper.csv": data.upper(), "big.bin": gitd.LfsUpload(data * 1000)},
                      message=f"convert {update.new[:7]}", replace=True)

    @hookimpl
    def gitd_pre_receive(self, event: gitd.PushEvent) -> None:
        if event.via == "plugin" and "refs/convert/forbidden" in [u.ref for u in event.updates]:
            raise gitd.PushRejected("not there")


def test_plugins_write_commits_and_lfs_objects_through_the_hook_chain(gitd_harness, tmp_path):
    h = gitd_harness(Converter, name="converter")
    repo = h.repo("alice/table", type="dataset", files={"data.csv": "a,b\n1,2\n"})
    h.run_jobs()
    view = h.view(repo)
    converted = view.resolve("refs/convert/upper")
    assert converted is not None
    assert [e.path for e in view.files(converted)] == ["big.bin", "data/upper.csv"]  # replaced, not merged
    assert view.read(converted, "data/upper.csv") == b"A,B\n1,2\n"
    big = view.entry(converted, "big.bin")
    assert big is not None and big.lfs is not None and big.lfs.held
    assert view.read(converted, "big.bin") == b"a,b\n1,2\n" * 1000
    # The plugin's own commit went through the chain: its post-receive job saw it, via "plugin".
    assert ("plugin", "refs/convert/upper") in h.plugin.seen
    writer = h.context.writer(repo)
    with pytest.raises(gitd.PushRejected, match="not there"):
        writer.commit("refs/convert/forbidden", {"x": b"x"}, message="x")
    assert view.resolve("refs/convert/forbidden") is None
    with pytest.raises(gitd.RefConflict):  # compare-and-swap: the ref is not at this parent
        writer.commit("refs/convert/upper", {"y": b"y"}, message="y", parent=view.head())
    with pytest.raises(ValueError):
        writer.update_refs([], via="http")
    source = tmp_path / "src.bin"
    source.write_bytes(b"streamed" * 10_000)
    pointer = writer.lfs_object(gitd.LfsUpload(source))
    assert b"size 80000" in pointer


def test_regression_a_tree_bomb_diff_is_bounded(gitd_harness):
    """git's own diff builds the whole difference first: 10**8 paths from 9 small trees kept a
    plugin's job (and the daemon's CPU) busy without end. The view's diff stops at its limit."""
    import time

    import pygit2

    h = gitd_harness(Indexer, name="indexer")
    repo = h.repo("alice/bomb", files={"README.md": "x"})
    repository = pygit2.Repository(str(repo.path))
    tree = repository.TreeBuilder()
    tree.insert("f", repository.create_blob(b"x"), pygit2.GIT_FILEMODE_BLOB)
    node = tree.write()
    for _ in range(8):  # each level: 10 entries naming the level below
        level = repository.TreeBuilder()
        for i in range(10):
            level.insert(f"d{i}", node, pygit2.GIT_FILEMODE_TREE)
        node = level.write()
    sig = pygit2.Signature("a", "a@example.com")
    bomb = str(repository.create_commit(None, sig, sig, "bomb", node, []))
    view = h.view(repo)
    started = time.monotonic()
    with pytest.raises(gitd.LimitExceeded):
        view.diff(None, bomb, limit=50_000)
    assert time.monotonic() - started < 10
    assert len(view.diff(bomb, bomb)) == 0  # the same tree: nothing visited at all


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000, b'{"n": ' + b"1" * 5000 + b"}", b"\xff{}"])
def test_regression_plugin_request_json_is_a_400_for_any_bad_body(body):
    """A body nested too deep: json.loads raised RecursionError out of PluginRequest.json (a 500)."""
    request = PluginRequest(method="POST", path="/x", query={}, headers={}, params={}, user=None, body=body)
    with pytest.raises(HTTPError, match="not valid JSON") as caught:
        request.json()
    assert caught.value.status == 400
