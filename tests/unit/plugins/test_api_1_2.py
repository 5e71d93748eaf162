"""What plugin API 1.2 added: ``context.cache_dir``, ``context.progress``, ``request.base_url``
and ``format_lfs_pointer``."""

from __future__ import annotations

import gitd
from gitd.plugin_api import PluginContext, PluginRequest, Route, hookimpl


class Reporter:
    def __init__(self, context: PluginContext):
        self.context = context

    @hookimpl
    def gitd_post_receive(self, event: gitd.PushEvent) -> None:
        (self.context.cache_dir / "seen").write_text(event.updates[0].new)
        assert self.context.progress("halfway there")
        assert self.context.progress("done:  3 files\n  indexed")

    @hookimpl
    def gitd_http_routes(self) -> list:
        return [Route("GET", "/where", self.where)]

    def where(self, request: PluginRequest) -> dict:
        return {"base": request.base_url, "outside_a_job": self.context.progress("nothing to record")}


def test_the_cache_dir_is_the_plugins_own_and_progress_is_shown_by_jobs_list(gitd_harness):
    h = gitd_harness(Reporter, name="reporter")
    repo = h.repo("alice/m", files={"a.txt": "a"})
    h.run_jobs()
    assert h.context.cache_dir == h.root / "plugins" / "reporter"
    head = h.view(repo).head()
    assert (h.context.cache_dir / "seen").read_text() == head
    [job] = [j for j in h.jobs() if j.plugin == "reporter"]
    assert job.state == "done" and job.progress == "done: 3 files indexed"  # one line, kept after the end
    status, listing = h.cli("jobs", "list")
    assert status == 0 and "PROGRESS" in listing.splitlines()[0]
    assert "done: 3 files indexed" in next(line for line in listing.splitlines() if " reporter " in line)


def test_base_url_and_progress_outside_a_job(gitd_harness):
    h = gitd_harness(Reporter, name="reporter")
    answer = h.http("GET", "/api/plugins/reporter/where").json()
    assert answer["outside_a_job"] is False
    assert answer["base"].startswith("http://127.0.0.1:") and not answer["base"].endswith("/")
    h2 = gitd_harness(Reporter, name="reporter", config={"server.public_url": "https://hub.example.org/"})
    assert h2.http("GET", "/api/plugins/reporter/where").json()["base"] == "https://hub.example.org"


def test_format_lfs_pointer_is_parse_lfs_pointers_inverse():
    oid = "a" * 64
    assert gitd.parse_lfs_pointer(gitd.format_lfs_pointer(oid, 12)) == (oid, 12)
    assert tuple(int(n) for n in gitd.API_VERSION.split(".")) >= (1, 2)
