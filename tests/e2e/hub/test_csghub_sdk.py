"""csghub-sdk 0.9.3 (pycsghub) unchanged against gitd: its native downloads through CSGHub's
/csg routes, its huggingface_hub calls through /hf, and its git URL layout
(/models/{ns}/{name}.git)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from huggingface_hub import HfApi

from tests.support import unique


@pytest.mark.parametrize(("repo_type", "private"), [("model", False), ("dataset", True)])
def test_csghub_snapshot_download_through_csg_routes(hub, repo_type, private, tmp_path, monkeypatch):
    from pycsghub.snapshot_download import snapshot_download

    monkeypatch.chdir(tmp_path)  # the SDK writes next to the working directory when a download fails

    user, token = hub.user()
    api = hub.api(token)
    repo = f"{user}/{unique('csg')}"
    api.create_repo(repo, repo_type=repo_type, private=private)
    api.upload_file(path_or_fileobj=b"hello\n", path_in_repo="docs/a.txt", repo_id=repo, repo_type=repo_type)
    api.upload_file(path_or_fileobj=bytes(range(256)) * 8, path_in_repo="w.bin", repo_id=repo, repo_type=repo_type)
    out = Path(snapshot_download(repo, repo_type=repo_type, endpoint=hub.url, token=token,
                                 cache_dir=tmp_path / "cache", quiet=True))
    assert (out / "docs" / "a.txt").read_bytes() == b"hello\n"
    assert (out / "w.bin").read_bytes() == bytes(range(256)) * 8


def test_huggingface_hub_under_the_hf_prefix(hub, tmp_path):
    user, token = hub.user()
    api = HfApi(endpoint=f"{hub.url}/hf", token=token)
    repo = f"{user}/{unique('hf')}"
    api.create_repo(repo, repo_type="dataset")
    api.upload_file(path_or_fileobj=b"\x00binary", path_in_repo="x.dat", repo_id=repo, repo_type="dataset")
    assert api.list_repo_files(repo, repo_type="dataset") == [".gitattributes", "x.dat"]
    got = api.hf_hub_download(repo, "x.dat", repo_type="dataset", cache_dir=tmp_path)
    assert Path(got).read_bytes() == b"\x00binary"
    assert api.whoami()["name"] == user
    # The routes themselves answer under both prefixes (and nowhere else).
    for prefix, code in (("/hf", 200), ("/csg", 200), ("/xx", 404)):
        req = urllib.request.Request(f"{hub.url}{prefix}/api/datasets/{repo}/revision/main",
                                     headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                assert (resp.status, json.loads(resp.read())["id"]) == (code, repo)
        except urllib.error.HTTPError as exc:
            assert exc.code == code == 404, prefix


def test_git_clone_and_push_through_csghubs_url_layout(hub, git, tmp_path):
    user, token = hub.user()
    repo = f"{user}/{unique('lay')}"
    hub.api(token).create_repo(repo)
    url = hub.url.replace("://", f"://u:{token}@") + f"/models/{repo}.git"
    git("clone", "-q", url, str(tmp_path / "w"))
    git.commit(tmp_path / "w", {"b.txt": "b\n"})
    git("push", "-q", url, "main", cwd=tmp_path / "w")
    assert hub.api(token).list_repo_files(repo) == [".gitattributes", "b.txt"]


@pytest.mark.parametrize("repo_type", ["model", "dataset"])
def test_csghub_repository_upload_creates_clones_and_pushes(hub, repo_type, tmp_path, monkeypatch):
    from pycsghub.repository import Repository

    monkeypatch.chdir(tmp_path)
    user, token = hub.user()
    folder = tmp_path / "up"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.txt").write_text("a\n")
    (folder / "w.safetensors").write_bytes(bytes(range(256)) * 64)
    repo = f"{user}/{unique('sdk')}"
    Repository(repo_id=repo, upload_path=str(folder), token=token, endpoint=hub.url, repo_type=repo_type,
               work_dir=str(tmp_path / "work")).upload()
    api = hub.api(token)
    files = {e.path: e for e in api.list_repo_tree(repo, repo_type=repo_type, recursive=True)
             if type(e).__name__ == "RepoFile"}
    assert "sub/a.txt" in files and "w.safetensors" in files and ".gitattributes" in files
    assert files["w.safetensors"].lfs is not None and files["w.safetensors"].lfs.size == 256 * 64
    assert api.repo_info(repo, repo_type=repo_type).private is True  # the SDK creates private repositories
    assert hub.api().repo_exists(repo, repo_type=repo_type) is False


def csghub_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).parent / "csghub-cli"), *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "CSGHUB_DISABLE_XNET": "true"})


@pytest.mark.parametrize("kind", ["inference", "finetune"])
def test_csghub_cli_inference_and_finetune_answer(hub, kind):
    user, token = hub.user()
    _, other = hub.user()
    listed = csghub_cli(kind, "list", "-u", user, "-k", token, "-e", hub.url)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0].split() == ["ID", "Name", "Model", "Status"]
    assert len(listed.stdout.splitlines()) == 2  # the header and its rule: no instances yet
    assert csghub_cli(kind, "list", "-u", user, "-k", other, "-e", hub.url).returncode != 0  # not theirs
    repo = f"{user}/{unique('run')}"
    hub.api(token).create_repo(repo)
    for action in ("start", "stop"):
        done = csghub_cli(kind, action, repo, "7", "-k", token, "-e", hub.url)
        out = done.stdout + done.stderr
        # finetune prints the answer (the message); inference start first GETs the instance and
        # stops at its 404
        assert "instance 7 does not exist" in out or "404 Client Error" in out, (action, out)


def csghub_cli_as(tmp_path: Path):
    """csghub-cli run from ``tmp_path``, with a git identity for its git-based folder upload."""
    env = {**os.environ, "CSGHUB_DISABLE_XNET": "true", "GIT_AUTHOR_NAME": "csg", "GIT_AUTHOR_EMAIL": "csg@example.com",
           "GIT_COMMITTER_NAME": "csg", "GIT_COMMITTER_EMAIL": "csg@example.com"}

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(Path(sys.executable).parent / "csghub-cli"), *args], capture_output=True,
                              text=True, timeout=120, cwd=tmp_path, env=env)
        assert (done.returncode == 0) == ok, (args, done.stdout[-2000:], done.stderr[-2000:])
        return done

    return run


def upload_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "up"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.txt").write_text("a\n")
    (folder / "w.safetensors").write_bytes(bytes(range(256)) * 64)
    return folder


def test_csghub_cli_upload_and_download_a_public_model(hub, tmp_path):
    """`upload` of a folder (CSGHub's git URL layout, with LFS) and of a file (the multipart
    upload_file route), then `download` of the snapshot (/csg routes)."""
    user, token = hub.user()
    repo = f"{user}/{unique('cli')}"
    hub.api(token).create_repo(repo)
    run = csghub_cli_as(tmp_path)
    one = tmp_path / "one.txt"
    one.write_text("one\n")
    auth = ("-k", token, "-e", hub.url)
    run("upload", repo, str(upload_folder(tmp_path)), *auth)  # the SDK's git upload: the repo becomes the folder
    run("upload", repo, str(one), "docs", *auth)  # lands at docs/one.txt
    files = {e.path: e for e in hub.api(token).list_repo_tree(repo, recursive=True) if type(e).__name__ == "RepoFile"}
    assert {"docs/one.txt", "sub/a.txt", "w.safetensors"} <= set(files)
    assert files["w.safetensors"].lfs is not None  # pushed with git-lfs
    run("download", repo, "-e", hub.url, "--local-dir", str(tmp_path / "all"))  # public: no token needed
    assert (tmp_path / "all" / "w.safetensors").read_bytes() == bytes(range(256)) * 64
    assert (tmp_path / "all" / "docs" / "one.txt").read_text() == "one\n"


def test_csghub_cli_upload_large_folder_and_download_a_private_dataset(hub, tmp_path):
    """`upload-large-folder` (the native preupload and commit routes) into a private dataset, then
    `download` of one file with the token, and nothing without it."""
    user, token = hub.user()
    repo = f"{user}/{unique('large')}"
    hub.api(token).create_repo(repo, repo_type="dataset", private=True)
    run = csghub_cli_as(tmp_path)
    run("upload-large-folder", repo, str(upload_folder(tmp_path)), "-t", "dataset", "-k", token, "-e", hub.url)
    assert {"sub/a.txt", "w.safetensors"} <= set(hub.api(token).list_repo_files(repo, repo_type="dataset"))
    run("download", repo, "sub/a.txt", "-t", "dataset", "-k", token, "-e", hub.url, "--local-dir",
        str(tmp_path / "one"))
    assert (tmp_path / "one" / "sub" / "a.txt").read_text() == "a\n"
    run("download", repo, "-t", "dataset", "-e", hub.url, "--local-dir", str(tmp_path / "denied"), ok=False)
    assert not (tmp_path / "denied" / "w.safetensors").exists()
