"""The fine-tune job's program: download a model and a dataset from gitd, train, push the result.

Run as ``python train.py SPEC.json`` by the local runtime (a supervised subprocess of the
daemon) and by the Kubernetes Job the operator renders; it imports nothing from gitd, only
torch, transformers, peft (LoRA), datasets and huggingface_hub, so any image with those runs
it. Everything comes from gitd (``spec["endpoint"]``): the model and the dataset at the
commits the job pinned, each read with its own token (``GITD_MODEL_TOKEN``,
``GITD_DATASET_TOKEN``: scoped to that repository alone, from the environment, never from
the spec), and the result goes back as **one** commit (``GITD_TARGET_TOKEN`` writes the
target repository only): a job killed before that commit leaves the target without any.

The spec (JSON): endpoint, model, model_revision, dataset, dataset_revision, target,
method (``full`` or ``lora``), epochs, learning_rate, max_steps (0: the epochs decide),
batch_size, max_length, text_column ("" = the first of text/content/messages/
instruction+output), lora_r, lora_alpha, seed, and ``state_dir``, where it writes
``progress.json`` (phase, step, total, loss; replaced atomically), and on a failure it
can explain, ``error.json`` ({"reason": ...}, exit status 2).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

AUTO_COLUMNS = ("text", "content", "messages")
REPORT_EVERY = 0.5  # seconds between progress reports


class JobError(Exception):
    """A failure the job explains to its owner (bad input, not a crash)."""


class Progress:
    def __init__(self, state_dir: Path):
        self.path = state_dir / "progress.json"
        self.state: dict[str, Any] = {"phase": "starting", "step": 0, "total": 0, "loss": None}

    def update(self, **fields: Any) -> None:
        self.state.update(fields, at=time.time())
        tmp = self.path.with_name("progress.json.tmp")
        tmp.write_text(json.dumps(self.state))
        os.replace(tmp, self.path)


def say(text: str) -> None:
    print(text, flush=True)


# -- the data -----------------------------------------------------------------------------------
def text_rows(dataset: Any, column: str, tokenizer: Any) -> tuple[str, list[str]]:
    """The training texts and where they came from; JobError when no column holds text."""
    names = list(dataset.column_names)
    if column:
        if column not in names:
            raise JobError(f"the dataset has no column {column!r}; its columns are {', '.join(names)}")
        candidates = [column]
    else:
        candidates = [c for c in AUTO_COLUMNS if c in names]
        if not candidates and "instruction" in names and ("output" in names or "response" in names):
            candidates = ["instruction"]
    for name in candidates:
        texts = _texts(dataset, name, tokenizer, names)
        if texts:
            return name, texts
    raise JobError(f"the dataset has no usable text column: its columns are {', '.join(names) or 'none'}; "
                   f"name one with text_column (strings, or chat messages)")


def _texts(dataset: Any, name: str, tokenizer: Any, names: list[str]) -> list[str]:
    out = []
    answer = "output" if "output" in names else "response"
    for row in dataset:
        value = row[name]
        if name == "instruction" and isinstance(value, str) and isinstance(row.get(answer), str):
            value = f"{value}\n{row[answer]}"
        elif isinstance(value, list) and value and all(isinstance(m, dict) and "content" in m for m in value):
            if getattr(tokenizer, "chat_template", None):
                value = tokenizer.apply_chat_template(value, tokenize=False)
            else:
                value = "\n".join(str(m["content"]) for m in value)
        if isinstance(value, str) and value.strip():
            out.append(value)
        elif value is not None and not isinstance(value, str | list):
            return []  # numbers, say: not a text column
    return out


def batches(tokenizer: Any, texts: list[str], batch_size: int, max_length: int) -> list[dict[str, Any]]:
    """Tokenised, padded batches with labels (padding masked out of the loss)."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    out = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(texts[i:i + batch_size], truncation=True, max_length=max_length, padding=True,
                        return_tensors="pt")
        labels = enc["input_ids"].clone()
        labels[enc["attention_mask"] == 0] = -100
        out.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels})
    return out


# -- the training loop (bench/finetune.py runs it in-process too) -------------------------------
def schedule(n_batches: int, epochs: int, max_steps: int) -> Iterator[tuple[int, int]]:
    """(epoch, batch index) for each step: ``epochs`` passes, cut at ``max_steps`` (0: no cut)."""
    step = 0
    for epoch in range(max(1, epochs)):
        for index in range(n_batches):
            if max_steps and step >= max_steps:
                return
            step += 1
            yield epoch, index


def train_loop(model: Any, data: list[dict[str, Any]], *, epochs: int, max_steps: int, learning_rate: float,
               report: Any = None) -> dict[str, Any]:
    """Plain supervised training (AdamW, causal LM loss) on the CPU; ``report(step, total,
    loss, epoch)`` after each step. Returns the steps run and the last loss."""
    import torch

    total = len(list(schedule(len(data), epochs, max_steps)))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=learning_rate)
    model.train()
    loss_value = None
    step = 0
    for epoch, index in schedule(len(data), epochs, max_steps):
        out = model(**data[index])
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        loss_value = float(out.loss.detach())
        if report is not None:
            report(step, total, loss_value, epoch)
    return {"steps": step, "loss": loss_value}


# -- the job --------------------------------------------------------------------------------------
def download(repo: str, revision: str, repo_type: str, token: str, endpoint: str, local: Path) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    try:
        return Path(snapshot_download(repo, revision=revision, repo_type=repo_type, token=token, endpoint=endpoint,
                                      local_dir=str(local)))
    except HfHubHTTPError as exc:
        raise JobError(f"cannot download the {repo_type} {repo} at {revision[:12]} from gitd: {exc}") from None


def load_texts(spec: dict[str, Any], data_dir: Path, tokenizer: Any) -> tuple[str, list[str]]:
    import datasets

    try:
        loaded = datasets.load_dataset(str(data_dir))
    except Exception as exc:  # no data files, a format datasets cannot read
        raise JobError(f"the dataset {spec['dataset']} cannot be read: {exc}") from None
    split = loaded["train"] if "train" in loaded else loaded[next(iter(loaded))]
    return text_rows(split, spec.get("text_column") or "", tokenizer)


def load_model(spec: dict[str, Any], model_dir: Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (model_dir / "config.json").is_file():
        raise JobError(f"{spec['model']} is not a transformers model: it has no config.json")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    except (OSError, ValueError, KeyError) as exc:
        raise JobError(f"{spec['model']} does not load as a causal language model: {exc}") from None
    if spec["method"] == "lora":
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(r=int(spec.get("lora_r") or 8), lora_alpha=int(spec.get("lora_alpha") or 16),
                            target_modules="all-linear", lora_dropout=0.0, task_type="CAUSAL_LM")
        model = get_peft_model(model, config)
    return model, tokenizer


def card(spec: dict[str, Any], result: dict[str, Any], column: str, rows: int) -> str:
    from huggingface_hub import ModelCardData

    lora = spec["method"] == "lora"
    data = ModelCardData(base_model=spec["model"], base_model_relation="adapter" if lora else "finetune",
                         datasets=[spec["dataset"]], library_name="peft" if lora else "transformers",
                         pipeline_tag="text-generation", tags=["gitd-finetune", *(["lora"] if lora else [])])
    loss = "-" if result["loss"] is None else f"{result['loss']:.4f}"
    return (f"---\n{data.to_yaml()}\n---\n\n# {spec['target'].split('/')[-1]}\n\n"
            f"{'A LoRA adapter for' if lora else 'A fine-tune of'} [{spec['model']}](/{spec['model']}) "
            f"(commit {spec['model_revision'][:12]}), trained by gitd on the dataset "
            f"[{spec['dataset']}](/datasets/{spec['dataset']}) (commit {spec['dataset_revision'][:12]}, "
            f"column `{column}`, {rows} rows).\n\n"
            f"| setting | value |\n|---|---|\n| method | {spec['method']} |\n| epochs | {spec['epochs']} |\n"
            f"| learning rate | {spec['learning_rate']} |\n| steps | {result['steps']} |\n| final loss | {loss} |\n")


def run(spec: dict[str, Any], progress: Progress) -> str:
    import torch

    endpoint = spec["endpoint"].rstrip("/")
    work = Path(spec["state_dir"])
    torch.manual_seed(int(spec.get("seed") or 0))
    progress.update(phase="downloading")
    say(f"downloading the dataset {spec['dataset']} at {spec['dataset_revision'][:12]}")
    data_dir = download(spec["dataset"], spec["dataset_revision"], "dataset", os.environ["GITD_DATASET_TOKEN"],
                        endpoint, work / "dataset")
    say(f"downloading the model {spec['model']} at {spec['model_revision'][:12]}")
    model_dir = download(spec["model"], spec["model_revision"], "model", os.environ["GITD_MODEL_TOKEN"], endpoint,
                         work / "model")
    model, tokenizer = load_model(spec, model_dir)
    column, texts = load_texts(spec, data_dir, tokenizer)
    say(f"training ({spec['method']}) on {len(texts)} rows of column {column!r}")
    data = batches(tokenizer, texts, int(spec.get("batch_size") or 4), int(spec.get("max_length") or 256))

    last = [0.0]

    def report(step: int, total: int, loss: float, epoch: int) -> None:
        # At most a few writes a second, whatever the step rate (and always the last step):
        # a tiny model takes hundreds of steps a second.
        now = time.monotonic()
        if now - last[0] < REPORT_EVERY and step != total:
            return
        last[0] = now
        progress.update(phase="training", step=step, total=total, loss=loss, epoch=epoch)
        say(f"step {step}/{total} epoch {epoch} loss {loss:.4f}")

    progress.update(phase="training", total=len(list(schedule(len(data), int(spec["epochs"]),
                                                              int(spec.get("max_steps") or 0)))))
    started = time.perf_counter()
    result = train_loop(model, data, epochs=int(spec["epochs"]), max_steps=int(spec.get("max_steps") or 0),
                        learning_rate=float(spec["learning_rate"]), report=report)
    seconds = time.perf_counter() - started
    say(f"trained {result['steps']} steps in {seconds:.3f}s ({result['steps'] / max(seconds, 1e-9):.3f} steps/s)")
    progress.update(phase="saving")
    out = work / "output"
    out.mkdir(exist_ok=True)
    if spec["method"] == "lora":
        model.peft_config["default"].base_model_name_or_path = spec["model"]  # the hub name, not a local path
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    (out / "README.md").write_text(card(spec, result, column, len(texts)))
    progress.update(phase="pushing")
    say(f"pushing to {spec['target']}")
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint, token=os.environ["GITD_TARGET_TOKEN"])
    commit = api.upload_folder(repo_id=spec["target"], folder_path=str(out), commit_message=(
        f"Fine-tune {spec['model']} on {spec['dataset']} ({spec['method']}, {result['steps']} steps)"))
    progress.update(phase="done", commit=commit.oid, loss=result["loss"], step=result["steps"])
    say(f"pushed {commit.oid}")
    return commit.oid


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: train.py SPEC.json", file=sys.stderr)
        return 64
    spec = json.loads(Path(argv[1]).read_text())
    state = Path(spec["state_dir"])
    progress = Progress(state)
    try:
        run(spec, progress)
    except JobError as exc:
        (state / "error.json").write_text(json.dumps({"reason": str(exc)}))
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
    sys.exit(main(sys.argv))
