#!/usr/bin/env python3
"""Fine-tune jobs: training steps per second of a local job vs the same loop in one process.

    .venv/bin/python bench/finetune.py [--steps 600] [--batch-size 8] [--method full|lora] [--hidden 64]

Starts a daemon on a fresh data dir, pushes a small model (random weights, a tokenizer
trained on the spot: tests/tiny_model.py) and a text dataset, and runs one fine-tune job
through the plugin's API (the local runtime: a supervised ``train.py`` subprocess that
downloads both from gitd and pushes the result). Its training rate is what the job logs
("trained N steps in S s"). Then the same loop (``train.train_loop``, the same model files,
rows, batches and settings) runs directly in this process. Reported: steps/s of each, the
ratio job/direct (1.0 = no cost of running it as a job), and the job's wall time with its
parts (queue to start, download and load, training, save and push).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gitd_plugins.finetune import train  # noqa: E402

from tests.support import new_daemon, unique  # noqa: E402
from tests.tiny_model import make_text_dataset, make_tiny_model, upload_directory  # noqa: E402

JOBS = "/api/plugins/finetune/jobs"


def call(url: str, token: str, method: str = "GET", body: dict | None = None) -> object:
    req = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        raw = resp.read()
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode()


def run_job(url: str, token: str, model: str, dataset: str, config: dict) -> tuple[dict, dict[str, float], str]:
    started = time.monotonic()
    job = call(url + JOBS, token, "POST", {"model": model, "dataset": dataset, "config": config})
    marks: dict[str, float] = {}
    while job["status"] in ("pending", "running"):
        time.sleep(1.0)  # a light poll: the job and the daemon share the CPUs
        job = call(f"{url}{JOBS}/{job['id']}", token)
        phase = job.get("phase") or job["status"]
        marks.setdefault(phase, time.monotonic() - started)
    marks["done"] = time.monotonic() - started
    log = call(f"{url}{JOBS}/{job['id']}/logs", token)
    if job["status"] != "succeeded":
        raise SystemExit(f"the job {job['status']}: {job['reason']}\n{log}")
    return job, marks, log


def direct(model_dir: Path, data_dir: Path, spec: dict) -> tuple[int, float]:
    model, tokenizer = train.load_model(spec, model_dir)
    _, texts = train.load_texts(spec, data_dir, tokenizer)
    data = train.batches(tokenizer, texts, spec["batch_size"], spec["max_length"])
    started = time.perf_counter()
    result = train.train_loop(model, data, epochs=spec["epochs"], max_steps=spec["max_steps"],
                              learning_rate=spec["learning_rate"])
    return result["steps"], time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--method", choices=("full", "lora"), default="full")
    parser.add_argument("--hidden", type=int, default=64, help="the model's hidden size")
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads, for the job (plugins.finetune.threads) and the direct run alike; on a "
                             "busy two-core machine two threads wait on each other more than they compute")
    args = parser.parse_args()
    config = {"method": args.method, "epochs": 1000, "max_steps": args.steps, "batch_size": args.batch_size,
              "learning_rate": 1e-3, "max_length": 64}
    with tempfile.TemporaryDirectory(prefix="gitd-bench-finetune-") as tmp_name:
        tmp = Path(tmp_name)
        d = new_daemon(tmp / "d", {"plugins.finetune.max_running": 1, "plugins.finetune.threads": args.threads}).start()
        try:
            from huggingface_hub import HfApi, constants

            constants.HF_HUB_DISABLE_XET = True
            user, token = d.user()
            api = HfApi(endpoint=d.url, token=token)
            model, dataset = f"{user}/{unique('m')}", f"{user}/{unique('d')}"
            model_dir = make_tiny_model(tmp / "model", hidden_size=args.hidden, intermediate_size=2 * args.hidden)
            upload_directory(api, model, model_dir)
            make_text_dataset(tmp / "data", rows=args.rows)
            upload_directory(api, dataset, tmp / "data", repo_type="dataset")
            job, marks, log = run_job(d.url, token, model, dataset, config)
        finally:
            d.stop()
        found = re.search(r"trained (\d+) steps in ([0-9.]+)s", log)
        assert found, log
        job_steps, job_seconds = int(found.group(1)), float(found.group(2))
        spec = {"model": model, "dataset": dataset, "text_column": "", **config}
        import torch

        torch.set_num_threads(args.threads)
        steps, seconds = direct(model_dir, tmp / "data", spec)
    job_rate, direct_rate = job_steps / job_seconds, steps / seconds
    print(f"model: hidden {args.hidden}, {args.method}, batch {args.batch_size}, {args.steps} steps, "
          f"{args.threads} torch thread(s)")
    print(f"job (local runtime):  {job_steps} steps in {job_seconds:.2f}s = {job_rate:.2f} steps/s")
    print(f"direct, one process:  {steps} steps in {seconds:.2f}s = {direct_rate:.2f} steps/s")
    print(f"ratio job/direct:     {job_rate / direct_rate:.2f}")
    parts = ", ".join(f"{name} at {at:.1f}s" for name, at in sorted(marks.items(), key=lambda kv: kv[1]))
    print(f"job wall time {marks['done']:.1f}s (first seen: {parts})")
    print(f"pushed {job['target']}@{job['result_commit'][:12]}")


if __name__ == "__main__":
    main()
