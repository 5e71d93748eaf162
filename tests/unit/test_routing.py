from gitd.http.routing import Router, split_raw_path


async def _h(request, m):  # pragma: no cover - never called
    raise AssertionError


def make_router():
    r = Router()
    r.add("GET", "/{repo}/info/refs", _h, name="refs")
    r.add("GET", "/api/{types}/{ns}/{name}/revision/{rev}", _h, name="rev")
    r.add("GET", "/{repo}/resolve/{rev}/{path*}", _h, name="resolve")
    return r


def test_raw_segments_are_decoded_after_splitting():
    assert split_raw_path("/a/refs%2Fpr%2F1/x?y=1") == ["a", "refs/pr/1", "x"]
    assert split_raw_path("/a/%ff") is None
    assert split_raw_path("/a/%00") is None


def test_repo_forms():
    r = make_router()
    for path, expected in [
        ("/alice/m/info/refs", ("model", "alice", "m", False)),
        ("/alice/m.git/info/refs", ("model", "alice", "m", True)),
        ("/datasets/alice/d.git/info/refs", ("dataset", "alice", "d", True)),
        ("/spaces/alice/s/info/refs", ("space", "alice", "s", False)),
        ("/codes/alice/c/info/refs", ("code", "alice", "c", False)),
    ]:
        m, _ = r.resolve("GET", path)
        assert m is not None and m.route.name == "refs"
        assert (m.repo.type, m.repo.namespace, m.repo.name, m.repo.git_suffix) == expected


def test_path_tricks_never_match_a_repo():
    r = make_router()
    for path in ["/../etc/info/refs", "/%2e%2e/x/info/refs", "/alice/%2e%2e/info/refs", "/alice/..%2f..%2fx/info/refs",
                 "//etc/passwd/info/refs", "/alice/caf%C3%A9/info/refs", "/alice/a..b/info/refs",
                 "/alice/x.git.git/info/refs"]:
        m, _ = r.resolve("GET", path)
        assert m is None, path


def test_percent_encoded_revision_stays_one_segment():
    m, _ = make_router().resolve("GET", "/api/models/alice/m/revision/refs%2Fpr%2F1")
    assert m.params == {"types": "models", "ns": "alice", "name": "m", "rev": "refs/pr/1"}
    m, _ = make_router().resolve("GET", "/alice/m/resolve/v1%2Fx/sub/dir/file.txt")
    assert m.params == {"rev": "v1/x", "path": "sub/dir/file.txt"}


def test_wrong_method_reports_allowed_methods():
    m, allowed = make_router().resolve("POST", "/alice/m/info/refs")
    assert m is None and allowed == {"GET", "HEAD"}


def test_first_segment_index_keeps_registration_order():
    calls: list[str] = []

    def handler(name: str):
        async def h(request, m):  # pragma: no cover - never awaited here
            calls.append(name)
        return h

    router = Router()
    router.add("GET", "/{repo}/resolve/{rev}/{path*}", handler("resolve"), name="resolve")
    router.add("GET", "/api/models/{ns}/{name}", handler("api-info"), name="api-info")
    router.add("GET", "/{a}/{b}", handler("two-open"), name="two-open")
    router.add("POST", "/api/thing", handler("api-post"), name="api-post")
    assert router.resolve("GET", "/api/models/a/b")[0].route.name == "api-info"
    assert router.resolve("GET", "/api/m/resolve/main/f")[0].route.name == "resolve"  # earlier open route wins
    assert router.resolve("GET", "/alice/m")[0].route.name == "two-open"
    assert router.resolve("GET", "/api/x")[0].route.name == "two-open"
    assert router.resolve("GET", "/api/thing")[0].route.name == "two-open"
    match, allowed = router.resolve("PUT", "/api/models/a/b")
    assert match is None and allowed == {"GET", "HEAD"}
    router.add("GET", "/late/{x*}", handler("late"), name="late")  # added after the index was built
    assert router.resolve("GET", "/late/1/2")[0].route.name == "late"


def test_remembered_answers_are_fresh_copies_and_forgotten_when_routes_change():
    r = make_router()
    first, _ = r.resolve("GET", "/alice/m/resolve/main/a/b.json")
    assert first is not None and first.params == {"rev": "main", "path": "a/b.json"}
    first.params["rev"] = "changed by a handler"
    again, _ = r.resolve("GET", "/alice/m/resolve/main/a/b.json?download=true")
    assert again is not None and again is not first and again.params == {"rev": "main", "path": "a/b.json"}
    none, allowed = r.resolve("POST", "/alice/m/info/refs")
    assert none is None and allowed == {"GET", "HEAD"}
    allowed.clear()
    assert r.resolve("POST", "/alice/m/info/refs")[1] == {"GET", "HEAD"}
    r.add("POST", "/{repo}/info/refs", _h, name="post-refs")
    posted, _ = r.resolve("POST", "/alice/m/info/refs")
    assert posted is not None and posted.route.name == "post-refs"
