"""A tiny causal language model and tiny datasets, made on the spot for tests (nothing downloaded).

``make_tiny_model(directory)`` writes a loadable transformers model: random weights from a
small Llama config (2 layers, hidden size 32), a byte-level BPE tokenizer trained here with
the ``tokenizers`` package and wrapped as a transformers fast tokenizer, with a chat template,
all saved with ``save_pretrained`` (safetensors) plus a model card. Loading it and generating a
few tokens takes well under a second on a CPU.

``make_text_dataset``, ``make_chat_dataset`` and ``make_instruction_dataset`` write small
JSON Lines or CSV files: a ``text`` column, a ``messages`` column (chat), or ``instruction`` and
``output`` columns.

``upload_directory(api, repo_id, directory)`` pushes a directory made here with huggingface_hub.
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# A chat template in the form the Hub's tokenizers carry (tokenizer_config.json's
# "chat_template"): each message on its own turn, and the assistant's turn opened when asked.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

BOS, EOS, PAD, UNK = "<|bos|>", "<|eos|>", "<|pad|>", "<|unk|>"
ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"]

_WORDS = [
    "the",
    "a",
    "model",
    "hub",
    "git",
    "commit",
    "push",
    "branch",
    "token",
    "weight",
    "layer",
    "data",
    "set",
    "train",
    "tune",
    "serve",
    "request",
    "answer",
    "stream",
    "prompt",
    "chat",
    "user",
    "assistant",
    "system",
    "hello",
    "world",
    "small",
    "tiny",
    "fast",
    "slow",
    "red",
    "green",
    "blue",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "cat",
    "dog",
    "bird",
    "fish",
    "tree",
    "river",
    "stone",
    "cloud",
    "rain",
    "sun",
    "moon",
    "star",
    "light",
    "dark",
    "north",
    "south",
    "east",
    "west",
    "day",
    "night",
]


def corpus(lines: int = 400, seed: int = 0) -> list[str]:
    """Plain English-like sentences from a fixed word list (the tokenizer's training text)."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 14))).capitalize() + "." for _ in range(lines)]


@dataclass(frozen=True)
class TinyModelSpec:
    """What ``make_tiny_model`` builds; the defaults load and generate in milliseconds."""

    hidden_size: int = 32
    intermediate_size: int = 64
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    vocab_size: int = 512
    max_positions: int = 256
    seed: int = 0
    chat_template: str | None = CHAT_TEMPLATE
    card: bool = True


def train_tokenizer(vocab_size: int = 512, seed: int = 0) -> Any:
    """A byte-level BPE tokenizer trained on ``corpus()``, as a transformers fast tokenizer.

    Byte level: any text encodes (no unknown tokens) and decodes back unchanged.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS, UNK, *ROLE_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(seed=seed), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        additional_special_tokens=list(ROLE_TOKENS),
    )


def make_tiny_model(directory: str | Path, spec: TinyModelSpec | None = None, **overrides: Any) -> Path:
    """Write a tiny Llama-architecture causal LM with its tokenizer into ``directory``.

    ``overrides`` set ``TinyModelSpec`` fields (``layers=1``, ``max_positions=64``, ...).
    The files: config.json, generation_config.json, model.safetensors, tokenizer.json,
    tokenizer_config.json (with the chat template), special_tokens_map.json (where the
    transformers release writes one) and README.md (a model card, unless ``card=False``).
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    spec = TinyModelSpec(**{**(spec.__dict__ if spec else {}), **overrides})
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(spec.vocab_size, spec.seed)
    if spec.chat_template is not None:
        tokenizer.chat_template = spec.chat_template
    tokenizer.model_max_length = spec.max_positions
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.kv_heads,
        max_position_embeddings=spec.max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(spec.seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    if spec.card:
        (out / "README.md").write_text(
            "---\nlicense: apache-2.0\nlibrary_name: transformers\npipeline_tag: text-generation\n"
            "tags:\n- tiny\n---\n# A tiny test model\n\nRandom weights, for tests.\n"
        )
    return out


def parameter_count(directory: str | Path) -> int:
    """Parameters stored in the directory's safetensors files (as the metadata plugin counts them)."""
    from safetensors import safe_open

    total = 0
    for path in sorted(Path(directory).glob("*.safetensors")):
        with safe_open(str(path), framework="numpy") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                shape = f.get_slice(key).get_shape()
                n = 1
                for d in shape:
                    n *= d
                total += n
    return total


def _write_rows(path: Path, rows: list[dict], fmt: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        with path.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
    elif fmt == "csv":
        with path.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            for row in rows:
                writer.writerow({k: json.dumps(v) if not isinstance(v, str) else v for k, v in row.items()})
    else:
        raise ValueError(f"unknown format {fmt!r}: jsonl or csv")
    return path


def make_text_dataset(
    directory: str | Path, rows: int = 32, fmt: str = "jsonl", column: str = "text", seed: int = 1, name: str = "train"
) -> Path:
    """``directory/NAME.jsonl`` (or .csv) with one text column of short sentences; returns the file."""
    lines = corpus(rows, seed)
    return _write_rows(Path(directory) / f"{name}.{fmt}", [{column: line} for line in lines], fmt)


def make_chat_dataset(directory: str | Path, rows: int = 16, seed: int = 2, name: str = "train") -> Path:
    """``directory/NAME.jsonl`` with a ``messages`` column: [{role, content}, ...] conversations."""
    lines = corpus(rows * 2, seed)
    data = [
        {"messages": [{"role": "user", "content": lines[2 * i]}, {"role": "assistant", "content": lines[2 * i + 1]}]}
        for i in range(rows)
    ]
    return _write_rows(Path(directory) / f"{name}.jsonl", data, "jsonl")


def make_instruction_dataset(
    directory: str | Path, rows: int = 16, fmt: str = "jsonl", seed: int = 3, name: str = "train"
) -> Path:
    """``directory/NAME.jsonl`` (or .csv) with ``instruction`` and ``output`` columns."""
    lines = corpus(rows * 2, seed)
    data = [{"instruction": lines[2 * i], "output": lines[2 * i + 1]} for i in range(rows)]
    return _write_rows(Path(directory) / f"{name}.{fmt}", data, fmt)


def upload_directory(
    api: Any,
    repo_id: str,
    directory: str | Path,
    repo_type: str = "model",
    private: bool = False,
    message: str = "Add files",
) -> str:
    """Create ``repo_id`` (if needed) and push ``directory`` with a ``huggingface_hub.HfApi``;
    returns the new commit's id."""
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    info = api.upload_folder(repo_id=repo_id, folder_path=str(directory), repo_type=repo_type, commit_message=message)
    return info.oid
