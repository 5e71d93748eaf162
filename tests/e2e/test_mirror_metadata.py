"""A mirror sync reaches the other plugins as a push does: its publish goes through the hook
chain with via=mirror, so the built-in metadata plugin tags a mirrored model (its card, and
its safetensors header read from the LFS object the sync stored), and tags it again after an
incremental sync. The real daemon with its built-in plugins, a local bare upstream."""

from __future__ import annotations

import numpy as np
from huggingface_hub import HfApi

from tests.e2e.hook_helpers import wait_for
from tests.e2e.mirror_helpers import api, mirror_daemon, wait_sync
from tests.metadata_files import safetensors_bytes
from tests.mirror_support import Upstream
from tests.support import unique


def test_metadata_is_extracted_after_a_mirror_sync(make_daemon, git, tmp_path):
    d = mirror_daemon(make_daemon)
    user, token = d.user()
    repo = f"{user}/{unique('m')}"
    weights = safetensors_bytes({"w": np.zeros((32, 16), dtype=np.float16), "b": np.zeros((16,), dtype=np.float32)})
    up = Upstream(git, tmp_path, {".gitattributes": "*.safetensors filter=lfs diff=lfs merge=lfs -text\n"})
    head = up.commit({"README.md": "---\nlicense: apache-2.0\nlanguage: [en]\n---\n# mirrored\n",
                      "config.json": '{"model_type": "llama", "architectures": ["LlamaForCausalLM"]}'},
                     lfs={"model.safetensors": weights})
    assert d.cli("mirror", "add", repo, up.url)[0] == 0
    pull = wait_sync(d, repo, token)
    assert pull["last_error"] is None, pull

    def metadata_at(commit: str):
        code, body = api(d, "GET", f"/api/models/{repo}/metadata", token)
        return body if code == 200 and body.get("commit") == commit else None

    wait_for(lambda: metadata_at(head), timeout=90, what="the mirrored model tagged")
    hub = HfApi(endpoint=d.url, token=token)
    info = hub.model_info(repo)
    assert info.sha == head
    assert "license:apache-2.0" in info.tags and "safetensors" in info.tags and "llama" in info.tags
    assert info.safetensors.parameters == {"F16": 32 * 16, "F32": 16}  # read from the mirrored LFS object
    assert info.config["model_type"] == "llama"
    assert [m.id for m in hub.list_models(filter="license:apache-2.0", author=user)] == [repo]

    # An incremental sync that changes the card: the plugin sees that one as a push too.
    new = up.commit({"README.md": "---\nlicense: mit\n---\n# mirrored\n"})
    assert d.cli("mirror", "sync", repo, "--wait", "60")[0] == 0
    pull = wait_sync(d, repo, token, after=pull["last_attempt"])
    assert pull["last_error"] is None and pull["last_result"]["refs_changed"] == 1
    meta = wait_for(lambda: metadata_at(new), timeout=90, what="the mirrored model tagged again")
    assert meta["last_job"]["files_read"] == ["README.md"]
    tags = hub.model_info(repo).tags
    assert "license:mit" in tags and "license:apache-2.0" not in tags
