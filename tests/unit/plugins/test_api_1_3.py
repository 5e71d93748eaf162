"""What plugin API 1.3 added: ``HostRoute`` and ``gitd_http_hosts``, a domain's host names
served as paths of the daemon's own routes (with their authentication and access checks)."""

from __future__ import annotations

import pytest

import gitd
from gitd.plugin_api import HostRoute, PluginContext, PluginRequest, Route, hookimpl


class Named:
    """Serves ``/api/plugins/named/echo/...`` at ``LABEL.named.test`` for the labels it knows."""

    def __init__(self, context: PluginContext):
        self.context = context

    @hookimpl
    def gitd_http_hosts(self) -> list:
        return [HostRoute("named.test", self.target),
                HostRoute("deep.named.test", lambda label: "/api/plugins/named/echo/deep")]

    @staticmethod
    def target(label: str) -> str | None:
        if label == "broken":
            raise RuntimeError("the plugin's lookup failed")
        return {"one": "/api/plugins/named/echo/one", "bad": "no-slash"}.get(label)

    @hookimpl
    def gitd_http_routes(self) -> list:
        return [Route("GET", "/echo/{rest*}", self.echo, signed_in=True)]

    def echo(self, request: PluginRequest) -> dict:
        return {"path": request.path, "user": request.user, "query": request.query}


def test_host_names_are_served_as_paths_with_the_daemons_authentication(gitd_harness):
    h = gitd_harness(Named, name="named")
    h.user("alice")
    one = {"Host": "one.named.test"}
    answer = h.http("GET", "/x/y?q=1", headers=one, user="alice").json()
    assert answer == {"path": "/api/plugins/named/echo/one/x/y", "user": "alice", "query": {"q": "1"}}
    assert h.http("GET", "/x", headers=one).status == 401  # the route's own rule: signed in
    assert h.http("GET", "/", headers={"Host": "any.deep.named.test"}, user="alice").json()["path"] \
        == "/api/plugins/named/echo/deep/"  # the longest domain wins
    # unknown labels, answers that are not paths, hosts outside the domain: served as they are
    for host in ("two.named.test", "bad.named.test", "named.test", "x.one.named.test", "elsewhere.test"):
        assert h.http("GET", "/api/plugins/named/echo/direct", headers={"Host": host},
                      user="alice").json()["path"] == "/api/plugins/named/echo/direct"
    assert h.http("GET", "/x", headers={"Host": "broken.named.test"}).status == 503  # not another route's answer


@pytest.mark.parametrize("domain", ["", "-x.test", "a..b", "white space.test", "x" * 64 + ".test", 5])
def test_a_host_route_needs_a_dns_name(domain):
    with pytest.raises(ValueError, match="DNS name"):
        HostRoute(domain, lambda label: None)
    assert HostRoute("Spaces.Example.COM", lambda label: None).domain == "spaces.example.com"
    assert tuple(int(n) for n in gitd.API_VERSION.split(".")) >= (1, 3)
