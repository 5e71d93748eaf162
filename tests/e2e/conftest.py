"""Fixtures for the end-to-end tests: LFS backends.

* ``local_backend``: the session daemon (local-disk LFS storage);
* ``s3_backend``: a session daemon of its own on SeaweedFS S3, with presigned downloads;
* ``backend``: both of them, one after the other (parametrized).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lfs_support import Backend, write_settings
from tests.seaweed import SeaweedS3
from tests.support import Daemon, new_daemon


@pytest.fixture(scope="session")
def local_backend(daemon: Daemon) -> Backend:
    return Backend("local", daemon)


@pytest.fixture(scope="session")
def s3_backend(tmp_session: Path, seaweed: SeaweedS3) -> Iterator[Backend]:
    bucket = "gitd-e2e"
    d = new_daemon(tmp_session / "s3daemon", {"jobs.backoff_base": 0.2, "jobs.poll_interval": 0.2})
    write_settings(d.data, seaweed.gitd_settings(bucket))
    d.start()
    yield Backend("s3", d, seaweed, bucket)
    d.stop()


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def backend(request: pytest.FixtureRequest) -> Backend:
    return request.getfixturevalue(f"{request.param}_backend")
