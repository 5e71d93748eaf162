"""A daemon of the fine-tune tests' own, shared by this package (jobs run side by side), a tiny model and tiny datasets
made on the spot (tests/tiny_model.py) and pushed to it with huggingface_hub, and the plugin's
routes called over HTTP."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import Daemon, new_daemon, unique
from tests.tiny_model import make_text_dataset, make_tiny_model, upload_directory

JOBS = "/api/plugins/finetune/jobs"


@dataclass
class World:
    daemon: Daemon
    user: str
    token: str
    model: str
    dataset: str
    tmp: Path

    def api(self, token: str | None = None) -> Any:
        from huggingface_hub import HfApi

        return HfApi(endpoint=self.daemon.url, token=token or self.token)

    def http(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.daemon.url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {token or self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                raw, status = resp.read(), resp.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode()

    def create(self, **body: Any) -> dict:
        status, job = self.http("POST", JOBS, {"model": self.model, "dataset": self.dataset, **body})
        assert status == 201, job
        return job

    def wait(self, job_id: int, until: Any, timeout: float = 180.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            status, job = self.http("GET", f"{JOBS}/{job_id}")
            assert status == 200, job
            if until(job):
                return job
            assert time.monotonic() < deadline, (job, self.http("GET", f"{JOBS}/{job_id}/logs")[1])
            time.sleep(0.3)

    def finished(self, job_id: int) -> dict:
        return self.wait(job_id, lambda j: j["status"] not in ("pending", "running"))


@pytest.fixture(scope="package")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from huggingface_hub import constants

    root = tmp_path_factory.mktemp("finetune")
    daemon = new_daemon(root, {"plugins.finetune.max_running": 3, "jobs.poll_interval": 0.2,
                               "jobs.backoff_base": 0.2}).start()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(constants, "HF_HUB_DISABLE_XET", True)  # the README's advice for uploads to gitd
            mp.setenv("HF_HUB_DISABLE_XET", "1")
            user, token = daemon.user()
            w = World(daemon, user, token, f"{user}/tiny-{unique('m')}", f"{user}/texts-{unique('d')}", root)
            api = w.api()
            upload_directory(api, w.model, make_tiny_model(root / "tiny-model"))
            data = root / "tiny-dataset"
            make_text_dataset(data, rows=24)
            (data / "README.md").write_text("---\nlicense: mit\n---\n# Tiny texts\n")
            upload_directory(api, w.dataset, data, repo_type="dataset", private=True)  # read through the job's token
            yield w
    finally:
        daemon.stop()
