"""gitd's route patterns in aiohttp's dispatcher: repository forms, %2F inside a segment,
names that are not valid, undecodable paths, 404/405, and which route wins."""

from __future__ import annotations

import asyncio
import re

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from gitd.http.routing import _NAME, Match, Router
from gitd.names import is_valid_name


async def _h(request, m):  # pragma: no cover - never called: the runner below stands in
    raise AssertionError


class _Routed(web.StreamResponse):
    def __init__(self, match: Match | None, allowed: set[str]):
        super().__init__()
        self.match, self.allowed = match, allowed


async def _capture(request: web.Request, match: Match | None, allowed: set[str]) -> web.StreamResponse:
    return _Routed(match, allowed)


def resolve(router: Router, method: str, path: str) -> tuple[Match | None, set[str]]:
    """What the app's runner is handed for ``method path``: the Match, or None and the allowed methods."""
    async def go() -> tuple[Match | None, set[str]]:
        dispatcher = web.UrlDispatcher()
        router.install(dispatcher, _capture)
        request = make_mocked_request(method, path)
        info = await dispatcher.resolve(request)
        assert info.http_exception is None  # the catch-all takes every request no route matched
        request._match_info = info
        routed = await info.handler(request)
        return routed.match, routed.allowed
    return asyncio.run(go())


def make_router() -> Router:
    r = Router()
    r.add("GET", "/{repo}/info/refs", _h, name="refs")
    r.add("GET", "/api/{types}/{ns}/{name}/revision/{rev}", _h, name="rev")
    r.add("GET", "/{repo}/resolve/{rev}/{path*}", _h, name="resolve")
    return r


def test_repo_forms():
    r = make_router()
    for path, expected in [
        ("/alice/m/info/refs", ("model", "alice", "m", False)),
        ("/alice/m.git/info/refs", ("model", "alice", "m", True)),
        ("/datasets/alice/d.git/info/refs", ("dataset", "alice", "d", True)),
        ("/spaces/alice/s/info/refs", ("space", "alice", "s", False)),
        ("/codes/alice/c/info/refs", ("code", "alice", "c", False)),
        ("/datasets/datasets/d/info/refs", ("dataset", "datasets", "d", False)),
        ("/alice/caf%C3%A9s/info/refs", None),
    ]:
        m, _ = resolve(r, "GET", path)
        if expected is None:
            assert m is None, path
            continue
        assert m is not None and m.route.name == "refs", path
        assert (m.repo.type, m.repo.namespace, m.repo.name, m.repo.git_suffix) == expected


def test_path_tricks_never_match_a_repo():
    r = make_router()
    for path in ["/../etc/info/refs", "/%2e%2e/x/info/refs", "/alice/%2e%2e/info/refs", "/alice/..%2f..%2fx/info/refs",
                 "//etc/passwd/info/refs", "/alice/caf%C3%A9/info/refs", "/alice/a..b/info/refs",
                 "/alice/x.git.git/info/refs", "/alice/x.GIT/info/refs", "/datasets/x/info/refs",
                 "/alice/a%2Fb/info/refs", "/alice/%5C..%5Cx/info/refs"]:
        m, allowed = resolve(r, "GET", path)
        assert m is None and not allowed, path


def test_percent_encoded_revision_stays_one_segment():
    m, _ = resolve(make_router(), "GET", "/api/models/alice/m/revision/refs%2Fpr%2F1")
    assert m is not None and m.params == {"types": "models", "ns": "alice", "name": "m", "rev": "refs/pr/1"}
    m, _ = resolve(make_router(), "GET", "/alice/m/resolve/v1%2Fx/sub/dir/file%20a.txt")
    assert m is not None and m.params == {"rev": "v1/x", "path": "sub/dir/file a.txt"}
    m, _ = resolve(make_router(), "GET", "/alice/m/resolve/main/100%25%2Fdone")
    assert m is not None and m.params == {"rev": "main", "path": "100%/done"}


def test_the_rest_of_the_path_may_be_empty():
    for path in ("/alice/m/resolve/main", "/alice/m/resolve/main/"):
        m, _ = resolve(make_router(), "GET", path)
        assert m is not None and m.params == {"rev": "main", "path": ""}, path
    m, _ = resolve(make_router(), "GET", "/alice/m/resolve/main/a%0Ab")  # a newline is a character like any other
    assert m is not None and m.params == {"rev": "main", "path": "a\nb"}


def test_undecodable_paths_and_nul_match_nothing():
    r = make_router()
    for path in ("/alice/m/resolve/%ff/x", "/alice/m/resolve/main/%C3%28", "/alice/m/resolve/main/a%00b",
                 "/api/models/alice/m/revision/%e2%82"):
        for method in ("GET", "POST"):
            m, allowed = resolve(r, method, path)
            assert m is None and not allowed, (method, path)


def test_wrong_method_reports_allowed_methods():
    m, allowed = resolve(make_router(), "POST", "/alice/m/info/refs")
    assert m is None and allowed == {"GET", "HEAD"}
    m, allowed = resolve(make_router(), "HEAD", "/alice/m/info/refs")
    assert m is not None and m.route.name == "refs"


def test_routes_under_a_literal_prefix_win_then_the_first_added():
    router = Router()
    router.add("GET", "/{repo}/resolve/{rev}/{path*}", _h, name="resolve")
    router.add("GET", "/api/models/{ns}/{name}", _h, name="api-info")
    router.add("GET", "/{a}/{b}", _h, name="two-open")
    router.add("GET", "/{a}/{b}", _h, name="two-open-later")
    router.add("POST", "/api/thing", _h, name="api-post")
    assert resolve(router, "GET", "/api/models/a/b")[0].route.name == "api-info"
    assert resolve(router, "GET", "/api/m/resolve/main/f")[0].route.name == "resolve"
    assert resolve(router, "GET", "/alice/m")[0].route.name == "two-open"
    assert resolve(router, "GET", "/api/thing")[0].route.name == "two-open"
    match, allowed = resolve(router, "PUT", "/api/models/a/b")
    assert match is None and allowed == {"GET", "HEAD"}


def test_patterns_it_cannot_express_fail_when_added():
    with pytest.raises(ValueError):
        Router().add("GET", "/{rest*}", _h)
    with pytest.raises(ValueError):
        Router().add("GET", "/x/{rest*}/y", _h)
    with pytest.raises(ValueError):
        Router().add("GET", "/x", _h, style="fancy")


@pytest.mark.parametrize("name", [
    "a", "A.b_c-1", "x" * 96, "x" * 97, "7b", "model.v2.1", "..", "a..b", ".git", "x.git", "x.GIT", "x.gIt.y",
    "-lead", ".hidden", "_u", "caf\u00e9", "a b", "", "r\n", "a.", "a.git.x", "git", ".", "a-", "x" * 95 + ".",
])
def test_the_name_regex_is_is_valid_name(name):
    assert bool(re.fullmatch(_NAME, name)) == is_valid_name(name)
