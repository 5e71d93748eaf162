"""Shared fixtures.

* ``daemon``: one real gitd daemon for the whole session, on random loopback ports
  (tests make their own users and repos with ``unique()`` names);
* ``make_daemon``: a factory for tests that need a daemon of their own (other config,
  restarts, SIGKILL);
* ``git``: the real git client with an isolated HOME and no credential helpers;
* ``seaweed``: one SeaweedFS S3 server for the whole session, started on first use.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.seaweed import SeaweedS3, start_seaweed
from tests.support import Daemon, Git, new_daemon


@pytest.fixture(scope="session")
def tmp_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("session")


@pytest.fixture(scope="session")
def daemon(tmp_session: Path) -> Iterator[Daemon]:
    # Every web test logs in from 127.0.0.1: the login rate limit (tests/unit/web) is not
    # what they test.
    d = new_daemon(tmp_session / "shared", {"jobs.backoff_base": 0.2, "jobs.poll_interval": 0.2,
                                             "web.login_attempts": 10_000})
    d.start()
    yield d
    d.stop()


@pytest.fixture
def make_daemon(tmp_path: Path) -> Iterator:
    """Factory: make_daemon(settings={"hooks.enabled": False}, env={...}) -> a started Daemon of its own."""
    made: list[Daemon] = []

    def factory(settings: dict[str, object] | None = None, env: dict[str, str] | None = None, start: bool = True,
                args: list[str] | None = None) -> Daemon:
        d = new_daemon(tmp_path / f"d{len(made)}", settings, env, args)
        made.append(d)
        return d.start() if start else d

    yield factory
    for d in made:
        d.stop()


@pytest.fixture
def git(tmp_path: Path) -> Git:
    return Git(tmp_path / "home")


@pytest.fixture(scope="session")
def have_tool():
    def check(name: str) -> None:
        if shutil.which(name) is None:
            pytest.fail(f"{name} is not installed; run the README's test command, which installs it")
    return check


@pytest.fixture(scope="session")
def seaweed(tmp_session: Path) -> Iterator[SeaweedS3]:
    """A real S3 server (SeaweedFS ``weed mini``) on loopback ports, under the session's temp dir."""
    server = start_seaweed(tmp_session / "seaweed")
    yield server
    server.stop()
