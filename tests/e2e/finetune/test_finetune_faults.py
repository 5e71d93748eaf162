"""Bad input and faults: a repository that is not a model, a bad config, a dataset with no text
column, a training process killed mid-run, and csghub-cli's finetune list/stop/start on live jobs.
A job that does not finish leaves its target repository without any commit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.e2e.finetune.conftest import JOBS, World
from tests.support import unique


def csghub_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).parent / "csghub-cli"), *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "CSGHUB_DISABLE_XNET": "true"})


def no_commits(w: World, repo: str) -> bool:
    return w.api().list_repo_refs(repo).branches == []


def test_what_is_not_a_model_or_not_a_config_is_refused_before_anything_runs(world: World):
    w = world
    status, answer = w.http("POST", JOBS, {"model": w.dataset, "dataset": w.dataset})
    assert (status, answer["error"]) == (400, f"{w.dataset} is a dataset repository, not a model")
    readme_only = f"{w.user}/{unique('card')}"
    w.api().create_repo(readme_only)
    w.api().upload_file(path_or_fileobj=b"# just a card\n", path_in_repo="README.md", repo_id=readme_only)
    status, answer = w.http("POST", JOBS, {"model": readme_only, "dataset": w.dataset})
    assert status == 400 and "is not a transformers model: it has no config.json" in answer["error"]
    for config, words in (({"method": "qlora"}, "config.method: full or lora"),
                          ({"epochs": 0}, "config.epochs"), ({"learnin_rate": 1}, "unknown config field")):
        status, answer = w.http("POST", JOBS, {"model": w.model, "dataset": w.dataset, "config": config})
        assert status == 400 and words in answer["error"], answer
    status, answer = w.http("POST", JOBS, {"model": w.model, "dataset": w.dataset, "revision": "nope"})
    assert status == 400 and "'nope' is not a branch, tag or commit" in answer["error"]
    status, answer = w.http("POST", JOBS, {"model": w.model, "dataset": w.dataset, "target": "someone/else"})
    assert status == 403
    _, stranger = w.daemon.user()  # the dataset is private: another user cannot train on it
    status, answer = w.http("POST", JOBS, {"model": w.model, "dataset": w.dataset}, token=stranger)
    assert status == 404
    assert not any(r.id.endswith("-lora-9") for r in w.api().list_models(author=w.user))


def test_no_text_column_a_kill_and_csghub_cli_stop_and_start(world: World, tmp_path: Path):
    w = world
    numbers = f"{w.user}/{unique('nums')}"
    (tmp_path / "n").mkdir()
    (tmp_path / "n" / "train.csv").write_text("a,b\n1,2\n3,4\n5,6\n")
    w.api().create_repo(numbers, repo_type="dataset")
    w.api().upload_folder(repo_id=numbers, folder_path=str(tmp_path / "n"), repo_type="dataset")
    # queued with the command line; the daemon's workers start it
    _, said, _ = w.daemon.cli("finetune", "create", w.model, numbers, "--max-steps", "2", "--owner", w.user,
                              "--endpoint", w.daemon.url)
    bad = {"id": int(said.split()[1].rstrip(":")), "target": said.split()[-2]}
    endless = {"method": "full", "epochs": 1000, "batch_size": 1}
    killed = w.create(target=f"{w.user}/{unique('killed')}", config=endless)
    stopped = w.create(target=f"{w.user}/{unique('stopped')}", config=endless)

    failed = w.finished(bad["id"])
    assert failed["status"] == "failed"
    assert failed["reason"].startswith("the dataset has no usable text column: its columns are a, b")
    assert no_commits(w, bad["target"])
    _, listed, _ = w.daemon.cli("finetune", "list", "--owner", w.user)
    assert f"{bad['id']}\tfailed\t{w.user}\t{w.model}\t{numbers}\t{bad['target']}" in listed
    assert "no usable text column" in w.daemon.cli("finetune", "logs", str(bad["id"]))[1]
    status, _, err = w.daemon.cli("finetune", "cancel", str(bad["id"]), check=False)
    assert status != 0 and "has finished (failed)" in err

    training = w.wait(killed["id"], lambda j: j["step"] >= 1 and j["pid"])
    os.kill(training["pid"], signal.SIGKILL)
    gone = w.finished(killed["id"])
    assert gone["status"] == "failed" and "killed by SIGKILL" in gone["reason"], gone
    assert no_commits(w, killed["target"])  # nothing half-pushed

    listed = csghub_cli("finetune", "list", "-u", w.user, "-k", w.token, "-e", w.daemon.url)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()[2:]}
    assert rows[str(stopped["id"])][1:] == [stopped["target"], w.model, "running"]
    assert rows[str(bad["id"])][3] == "failed"
    w.wait(stopped["id"], lambda j: j["step"] >= 1)
    out = csghub_cli("finetune", "stop", w.model, str(stopped["id"]), "-k", w.token, "-e", w.daemon.url)
    assert "'msg': 'OK'" in out.stdout, out.stdout + out.stderr
    assert w.finished(stopped["id"])["status"] == "cancelled"
    assert no_commits(w, stopped["target"])
    out = csghub_cli("finetune", "start", w.model, str(stopped["id"]), "-k", w.token, "-e", w.daemon.url)
    assert "'status': 'running'" in out.stdout or "'status': 'pending'" in out.stdout, out.stdout
    w.wait(stopped["id"], lambda j: j["status"] == "running")
    out = csghub_cli("finetune", "stop", w.dataset, str(stopped["id"]), "-k", w.token, "-e", w.daemon.url)
    assert "'msg': 'OK'" not in out.stdout  # not the job's model: no such instance there
    assert w.http("GET", f"{JOBS}/{stopped['id']}")[1]["status"] == "running"
    assert w.http("POST", f"{JOBS}/{stopped['id']}/cancel")[0] == 200
    assert w.finished(stopped["id"])["status"] == "cancelled"
