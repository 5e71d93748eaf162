"""Pure helpers of the SSH command runner (the commands themselves are driven end to end
with real clients in tests/e2e/test_ssh*.py)."""

from __future__ import annotations

from gitd.ssh.commands import lfs_http_base


def test_lfs_http_base_prefers_the_public_url_then_the_bound_address():
    assert lfs_http_base("https://hub.example.com/", "http://127.0.0.1:8080", "10.0.0.5") == "https://hub.example.com"
    assert lfs_http_base("", "http://127.0.0.1:8080", "10.0.0.5") == "http://127.0.0.1:8080"


def test_lfs_http_base_replaces_a_wildcard_with_the_address_the_client_reached():
    assert lfs_http_base("", "http://0.0.0.0:8080", "10.0.0.5") == "http://10.0.0.5:8080"
    assert lfs_http_base("", "http://[::]:8080", "fe80::1") == "http://[fe80::1]:8080"
