"""The spaces plugin in-process (gitd's harness): cards, builds, only the newest commit,
the runtime API and commands. The apps themselves run end to end in tests/e2e/spaces."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from gitd_plugins.spaces import SpacesPlugin
from gitd_plugins.spaces.card import CardError, parse_card
from gitd_plugins.spaces.local import base_python

import gitd


def card(sdk: str, extra: str = "") -> str:
    return f"---\nsdk: {sdk}\n{extra}---\n# space\n"


@pytest.mark.parametrize(("readme", "message"), [
    (None, "has no README.md"),
    (b"# no front matter\n", "no YAML front matter"),
    (b"---\nsdk: [unclosed\n---\n", "not valid YAML"),
    (b"---\nsdk: flask\n---\n", "sdk must be one of"),
    (b"---\nsdk: gradio\napp_file: ../../etc/passwd\n---\n", "app_file must be a path inside"),
    (b"---\nsdk: docker\napp_port: 99999\n---\n", "app_port must be a port"),
    (b"---\nsdk: gradio\npython_version: latest\n---\n", "python_version must be a Python 3 version"),
])
def test_bad_cards_are_named(readme, message):
    with pytest.raises(CardError, match=message):
        parse_card(readme)


def test_card_defaults():
    c = parse_card(b"---\nsdk: streamlit\nsdk_version: 1.40.0\n---\n")
    assert (c.sdk, c.app_file, c.sdk_version) == ("streamlit", "app.py", "1.40.0")
    assert parse_card(b"---\nsdk: static\n---\n").app_file == "index.html"


def test_a_static_space_deploys_only_the_newest_of_two_quick_pushes(gitd_harness):
    h = gitd_harness(SpacesPlugin, name="spaces")
    repo = h.repo("alice/site", type="space", files={"README.md": card("static"), "index.html": "one"})
    h.commit(repo, {"index.html": "two"})
    second = h.view(repo).head()
    h.run_jobs()
    row = h.plugin.states.get(repo.id)
    assert (row.stage, row.commit_id) == ("RUNNING", second)
    build_log = h.plugin.runner.log(repo.id, "build").tail().decode()
    assert build_log.count("building") == 1 and second in build_log  # the first job left it to the second
    assert h.http("GET", "/spaces/alice/site/app/", user="alice").body == b"two"
    assert h.http("GET", "/spaces/alice/site/app", user="alice").status == 307
    assert h.http("GET", "/api/spaces/alice/site/runtime").json()["stage"] == "RUNNING"
    status, out = h.cli("spaces", "list")
    assert status == 0 and "alice/site\tRUNNING\tstatic" in out


def test_regression_static_space_serves_nothing_outside_its_build(gitd_harness):
    h = gitd_harness(SpacesPlugin, name="spaces")
    h.repo("alice/site", type="space", files={"README.md": card("static"), "index.html": "ok"})
    h.run_jobs()
    up = "..%2F" * 6  # from DATA/plugins/spaces/local/builds/ID/COMMIT to DATA
    for path in (up + "gitd.db", up.replace("..", "%2E%2E") + "gitd.db", up.lower() + "plugins"):
        response = h.http("GET", f"/spaces/alice/site/app/{path}", user="alice")
        assert response.status == 404, (path, response.status)


def test_requirements_that_fail_to_install_are_a_build_error(gitd_harness):
    h = gitd_harness(SpacesPlugin, name="spaces", settings={"python": "venv", "pip_args": ["--no-index"]})
    repo = h.repo("alice/app", type="space", files={"README.md": card("gradio"), "app.py": "print(1)\n",
                                                   "requirements.txt": "no-such-package-for-gitd==1.0\n"})
    h.run_jobs()
    row = h.plugin.states.get(repo.id)
    assert row.stage == "BUILD_ERROR" and "failed to install" in row.error
    assert not list((h.plugin.runner.venvs).iterdir())  # the broken virtualenv is not kept


def test_a_python_version_this_host_lacks_is_a_build_error_naming_it(gitd_harness):
    """The card's python_version picks the interpreter the space's virtualenv is made from;
    one the host does not have is a clear build error (not silently the daemon's Python)."""
    h = gitd_harness(SpacesPlugin, name="spaces", settings={"python": "venv", "pip_args": ["--no-index"]})
    repo = h.repo("alice/old", type="space", files={"README.md": card("gradio", "python_version: 3.4\n"),
                                                   "app.py": "print(1)\n"})
    h.run_jobs()
    row = h.plugin.states.get(repo.id)
    assert row.stage == "BUILD_ERROR" and "python_version 3.4" in row.error and "python3.4" in row.error
    assert "python_version 3.4" in h.plugin.runner.log(repo.id, "build").tail().decode()
    assert base_python(None) == sys.executable
    assert base_python(f"{sys.version_info.major}.{sys.version_info.minor}.0") == sys.executable


def test_config_errors_and_missing_app_file_are_stages(gitd_harness):
    h = gitd_harness(SpacesPlugin, name="spaces")
    bad = h.repo("alice/bad", type="space", files={"README.md": "no card\n"})
    missing = h.repo("alice/missing", type="space", files={"README.md": card("gradio", "app_file: main.py\n")})
    h.run_jobs()
    assert h.plugin.states.get(bad.id).stage == "CONFIG_ERROR"
    row = h.plugin.states.get(missing.id)
    assert row.stage == "NO_APP_FILE" and "main.py" in row.error
    response = h.http("GET", "/spaces/alice/bad/app/", user="alice")
    assert response.status == 503 and "front matter" in response.json()["error"]


def test_models_are_not_spaces_and_pause_needs_write(gitd_harness):
    h = gitd_harness(SpacesPlugin, name="spaces")
    model = h.repo("alice/model", files={"README.md": card("static"), "index.html": "x"})
    h.repo("alice/site", type="space", files={"README.md": card("static"), "index.html": "x"})
    h.run_jobs()
    assert h.plugin.states.get(model.id) is None
    assert h.http("GET", "/alice/model/app/").status == 404
    h.user("bob")
    assert h.http("POST", "/api/spaces/alice/site/pause", user="bob").status == 403
    assert h.http("POST", "/api/spaces/alice/site/pause", user="alice").json()["stage"] == "PAUSED"
    assert h.http("GET", "/spaces/alice/site/app/", user="alice").status == 503


def test_repo_mounted_routes_are_checked():
    async def handler(request):
        return None

    with pytest.raises(ValueError, match="literal segment"):
        gitd.RepoRoute("GET", "/info/x", handler, mount="repo")
    with pytest.raises(ValueError, match="literal segment"):
        gitd.RepoRoute("GET", "/{x}", handler, mount="repo")
    with pytest.raises(ValueError, match="async handler"):
        gitd.RepoRoute("GET", "/app", lambda r: None, stream=True)
    with pytest.raises(ValueError, match="only a RepoRoute"):
        gitd.Route("*", "/x", handler)
    assert tuple(int(n) for n in gitd.API_VERSION.split(".")) >= (1, 2)


def test_regression_secrets_need_write_variables_follow_read_and_private_spaces_are_404(gitd_harness):
    h = gitd_harness(SpacesPlugin, name="spaces")
    h.repo("alice/site", type="space", files={"README.md": card("static"), "index.html": "x"})
    h.repo("alice/hidden", type="space", private=True, files={"README.md": card("static"), "index.html": "x"})
    h.user("bob")
    base = "/api/spaces/alice/site"
    secret = {"key": "API_KEY", "value": "s3cr3t"}
    assert h.http("POST", f"{base}/secrets", user="alice", json_body=secret).status == 200
    assert h.http("POST", f"{base}/variables", user="alice",
                  json_body={"key": "MODEL", "value": "alice/m", "description": "which"}).json()["MODEL"]["value"] \
        == "alice/m"
    # readers see variables, never secrets; writing either needs write access
    assert h.http("GET", f"{base}/variables", user="bob").json()["MODEL"]["description"] == "which"
    assert h.http("GET", f"{base}/variables").status == 200  # anonymous reader of a public space
    assert h.http("GET", f"{base}/secrets", user="bob").status == 403
    assert h.http("POST", f"{base}/secrets", user="bob", json_body={"key": "X", "value": "y"}).status == 403
    assert h.http("DELETE", f"{base}/variables", user="bob", json_body={"key": "MODEL"}).status == 403
    listed = h.http("GET", f"{base}/secrets", user="alice").json()
    assert set(listed) == {"API_KEY"} and "value" not in listed["API_KEY"] and "s3cr3t" not in str(listed)
    for path in ("secrets", "variables"):  # a private space: as if missing, to a non-reader
        assert h.http("GET", f"/api/spaces/alice/hidden/{path}", user="bob").status == 404
        assert h.http("POST", f"/api/spaces/alice/hidden/{path}", user="bob",
                      json_body={"key": "K", "value": "v"}).status == 404
    # encrypted at rest: the table holds no plain value
    rows = h.plugin.context.storage.query("SELECT kind, value FROM {prefix}space_env")
    assert {r["kind"] for r in rows} == {"secret", "variable"}
    assert all("s3cr3t" not in r["value"] for r in rows)
    repo = h.plugin.context.find_repo("alice/site", "space")
    assert h.plugin.env.environment(repo.id) == {"API_KEY": "s3cr3t", "MODEL": "alice/m"}


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"key": "PORT", "value": "1"}, 400, "set by the space's runtime"),
    ({"key": "GRADIO_SERVER_NAME", "value": "0.0.0.0"}, 400, "set by the space's runtime"),
    ({"key": "gitd_token", "value": "1"}, 400, "set by the space's runtime"),
    ({"key": "1BAD", "value": "1"}, 400, "environment variable name"),
    ({"key": "OK", "value": 5}, 400, "value must be a string"),
    ({"key": "OK", "value": "a\u0000b"}, 400, "NUL"),
    ({"key": "OK", "value": "x" * 70000}, 400, "at most"),
    ({"key": "SHARED", "value": "v"}, 409, "already a secret"),
    ([1, 2], 400, "JSON object"),
])
def test_bad_secrets_and_variables_are_refused_and_lose_nothing(gitd_harness, body, status, message):
    h = gitd_harness(SpacesPlugin, name="spaces")
    h.repo("alice/site", type="space", files={"README.md": card("static"), "index.html": "x"})
    base = "/api/spaces/alice/site"
    assert h.http("POST", f"{base}/secrets", user="alice", json_body={"key": "SHARED", "value": "1"}).status == 200
    response = h.http("POST", f"{base}/variables", user="alice", json_body=body)
    assert response.status == status and message in response.json()["error"]
    assert h.http("GET", f"{base}/variables", user="alice").json() == {}
    assert list(h.http("GET", f"{base}/secrets", user="alice").json()) == ["SHARED"]
    missing = h.http("DELETE", f"{base}/secrets", user="alice", json_body={"key": "NOPE"})
    assert missing.status == 404 and "no secret named NOPE" in missing.json()["error"]


def test_regression_logs_are_server_sent_events_for_writers_only_and_the_streams_are_bounded(gitd_harness):
    h = gitd_harness(SpacesPlugin, name="spaces", settings={"log_streams": 0})
    h.repo("alice/site", type="space", files={"README.md": card("static"), "index.html": "x"})
    h.repo("alice/hidden", type="space", private=True, files={"README.md": card("static"), "index.html": "x"})
    h.run_jobs()
    h.user("bob")
    assert h.http("GET", "/api/spaces/alice/site/logs/build", user="bob").status == 403  # logs need write
    assert h.http("GET", "/api/spaces/alice/hidden/logs/run", user="bob").status == 404  # private: as if missing
    assert h.http("GET", "/api/spaces/alice/site/logs/other", user="alice").status == 404
    refused = h.http("GET", "/api/spaces/alice/site/logs/build", user="alice")
    assert refused.status == 429 and "logs streams are open" in refused.json()["error"]
    h.plugin.settings = type(h.plugin.settings)(log_streams=1)
    built = h.http("GET", "/api/spaces/alice/site/logs/build", user="alice")
    assert built.status == 200 and built.headers["Content-Type"] == "text/event-stream"
    assert b'data: {"data": "[gitd] building alice/site' in built.body


def test_regression_a_space_host_name_keeps_the_spaces_access_rules(gitd_harness):
    h = gitd_harness(SpacesPlugin, name="spaces", settings={"host_domain": "Spaces.Test"})
    h.repo("alice/My_Site", type="space", files={"README.md": card("static"), "index.html": "home",
                                                "css/a.css": "h1{}"})
    h.repo("alice/hidden", type="space", private=True, files={"README.md": card("static"), "index.html": "secret"})
    h.run_jobs()
    h.user("bob")
    site = {"Host": "my-site--alice.spaces.test"}
    assert h.http("GET", "/", headers=site).body == b"home"
    assert h.http("GET", "/css/a.css?v=1", headers={"Host": "MY-SITE--ALICE.spaces.test:8080"}).body == b"h1{}"
    # an app's absolute links (its root path) work on its host as well
    assert h.http("GET", "/spaces/alice/My_Site/app/css/a.css", headers=site).body == b"h1{}"
    hidden = {"Host": "hidden--alice.spaces.test"}
    assert h.http("GET", "/", headers=hidden, user="alice").body == b"secret"
    assert h.http("GET", "/", headers=hidden, user="bob").status == 404  # as if missing
    assert h.http("GET", "/", headers=hidden).status in (401, 404)
    # a label that names no space, and other hosts, are served as they are
    assert h.http("GET", "/api/spaces/alice/My_Site/runtime", headers={"Host": "nothing.spaces.test"}).status == 200
    assert h.http("GET", "/api/spaces/alice/My_Site/runtime", headers={"Host": "a.b.spaces.test"}).status == 200
    info = h.http("GET", "/api/spaces/alice/My_Site").json()
    assert (info["subdomain"], info["host"]) == ("my-site--alice", "https://my-site--alice.spaces.test")
    # a second space with the same host label: neither has it (none takes another's host name)
    h.repo("alice/my.site", type="space", files={"README.md": card("static"), "index.html": "impostor"})
    h.run_jobs()
    assert h.http("GET", "/", headers=site).body not in (b"home", b"impostor")


def test_an_app_that_never_opens_its_port_is_a_runtime_error_that_says_so(gitd_harness):
    import time

    h = gitd_harness(SpacesPlugin, name="spaces", settings={"python": "daemon", "start_timeout": 1,
                                                            "max_restarts": 0})
    repo = h.repo("alice/mute", type="space", files={
        "README.md": card("gradio"), "app.py": "import time\nprint('loading a model', flush=True)\ntime.sleep(60)\n"})
    try:
        h.run_jobs()
        deadline = time.monotonic() + 30
        while (row := h.plugin.states.get(repo.id)).stage != "RUNTIME_ERROR" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert row.stage == "RUNTIME_ERROR" and "did not open its port within 1s" in row.error
        assert "loading a model" in row.error and row.pid is None  # its last words; the process is gone:
        assert not [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cwd(p) == row.build_dir]
        response = h.http("GET", "/spaces/alice/mute/app/", user="alice")
        assert response.status == 503 and response.json()["stage"] == "RUNTIME_ERROR"
    finally:
        h.plugin.runner.shutdown()


def _cwd(proc: Path) -> str | None:
    try:
        return os.readlink(proc / "cwd")
    except OSError:
        return None


def test_regression_a_stopped_space_stays_stopped_until_restarted(gitd_harness):
    """`gitd spaces stop` said "until it is restarted", but the next request woke it."""
    h = gitd_harness(SpacesPlugin, name="spaces")
    repo = h.repo("alice/site", type="space", files={"README.md": card("static"), "index.html": "x"})
    h.run_jobs()
    status, out = h.cli("spaces", "stop", "alice/site")
    assert status == 0 and "stop queued" in out
    assert h.plugin.states.get(repo.id).stage == "RUNNING"  # the daemon's workers do it
    h.run_jobs()
    assert h.plugin.states.get(repo.id).stage == "STOPPED"
    stopped = h.http("GET", "/spaces/alice/site/app/", user="alice")  # a request does not wake it
    assert stopped.status == 503 and "stopped; restart it" in stopped.json()["error"]
    assert h.cli("spaces", "restart", "alice/site")[0] == 0
    h.run_jobs()
    assert h.plugin.states.get(repo.id).stage == "RUNNING"
    assert h.http("GET", "/spaces/alice/site/app/", user="alice").body == b"x"
    assert h.cli("spaces", "stop", "alice/nothing")[0] != 0
