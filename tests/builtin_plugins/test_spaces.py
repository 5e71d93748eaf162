"""The spaces plugin in-process (gitd's harness): cards, builds, only the newest commit,
the runtime API and commands. The apps themselves run end to end in tests/e2e/spaces."""

from __future__ import annotations

import pytest
from gitd_plugins.spaces import SpacesPlugin
from gitd_plugins.spaces.card import CardError, parse_card

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
    assert tuple(int(n) for n in gitd.API_VERSION.split(".")) >= (1, 2)  # 1.2 added these; later minors keep them
