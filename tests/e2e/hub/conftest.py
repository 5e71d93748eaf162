"""Fixtures for the Hub API tests: the pinned huggingface_hub / transformers / datasets clients,
pointed at the session's gitd daemon.

Uploads go through Git LFS (HF_HUB_DISABLE_XET=1, as the README asks); tests of a client
with Xet enabled undo that themselves. The clients read HF_ENDPOINT and their cache
directories once, at import time, so
besides the environment the fixture also sets the module constants they already read
(for the whole session, then restores them).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import Daemon


@dataclass
class HubClients:
    daemon: Daemon
    home: Path

    @property
    def url(self) -> str:
        return self.daemon.url

    def api(self, token: str | bool | None = None):
        from huggingface_hub import HfApi

        return HfApi(endpoint=self.url, token=token if token is not None else False)

    def user(self) -> tuple[str, str]:
        return self.daemon.user()


@pytest.fixture(scope="session")
def hub(daemon: Daemon, tmp_session: Path) -> Iterator[HubClients]:
    home = tmp_session / "hf-home"
    home.mkdir(exist_ok=True)
    env = {
        "HF_ENDPOINT": daemon.url,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_DATASETS_CACHE": str(home / "datasets"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "DISABLE_SAFETENSORS_CONVERSION": "1",
        "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
        # What the README asks of every uploading machine: gitd does not speak Xet, and
        # preupload answers "lfs" for binary and LFS-tracked files whatever their size.
        "HF_HUB_DISABLE_XET": "1",
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        from huggingface_hub import constants

        mp.setattr(constants, "ENDPOINT", daemon.url)
        mp.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", daemon.url + "/{repo_id}/resolve/{revision}/{filename}")
        mp.setattr(constants, "HF_URL_HOSTS", constants.HF_URL_HOSTS | {"127.0.0.1"})
        mp.setattr(constants, "HF_HOME", str(home))
        mp.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
        mp.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
        mp.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
        mp.setattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", True)
        mp.setattr(constants, "HF_HUB_DISABLE_XET", True)
        try:
            import datasets.config as dconfig
        except ImportError:  # pragma: no cover - datasets is in the test extra
            dconfig = None
        if dconfig is not None:
            mp.setattr(dconfig, "HF_ENDPOINT", daemon.url)
            mp.setattr(dconfig, "HUB_DATASETS_URL", daemon.url + "/datasets/{repo_id}/resolve/{revision}/{path}")
            mp.setattr(dconfig, "HF_CACHE_HOME", str(home))
            mp.setattr(dconfig, "HF_DATASETS_CACHE", home / "datasets")
            mp.setattr(dconfig, "HF_MODULES_CACHE", home / "modules")
            mp.setattr(dconfig, "DOWNLOADED_DATASETS_PATH", home / "datasets" / "downloads")
            mp.setattr(dconfig, "EXTRACTED_DATASETS_PATH", home / "datasets" / "downloads" / "extracted")
        os.environ.pop("HF_TOKEN", None)
        yield HubClients(daemon, home)
