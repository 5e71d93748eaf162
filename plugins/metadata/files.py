"""What a file says about its repository.

Every file counts, by its path alone, towards *kinds* (``fmt:safetensors``,
``data:parquet``, ``media:image``, a custom rule's tag): the plugin keeps per repository
how many files of each kind it has, so presence tags follow additions and deletions
without listing the repository again. A few files are also *read*, each within its own
cap: README.md (the card), config.json and its siblings, safetensors and GGUF headers,
Parquet footers; what they say is stored per file, as JSON facts.
"""

from __future__ import annotations

import json
import posixpath
import struct
from typing import Any

from .card import parse_card
from .ranged import BadFile, Ranged
from .settings import Settings
from .weights import gguf_facts, safetensors_facts

# extension -> kind, by path alone
_EXTENSIONS = {
    ".safetensors": "fmt:safetensors", ".gguf": "fmt:gguf", ".onnx": "fmt:onnx", ".ort": "fmt:onnx",
    ".pt": "fmt:pytorch", ".pth": "fmt:pytorch", ".h5": "fmt:tf", ".tflite": "fmt:tflite", ".keras": "fmt:keras",
    ".msgpack": "fmt:jax", ".npz": "fmt:mlx", ".mlmodel": "fmt:coreml", ".nemo": "fmt:nemo",
    ".parquet": "data:parquet", ".csv": "data:csv", ".tsv": "data:csv", ".json": "data:json",
    ".jsonl": "data:json", ".ndjson": "data:json", ".arrow": "data:arrow", ".tar": "data:webdataset",
    ".txt": "data:text", ".jpg": "media:image", ".jpeg": "media:image", ".png": "media:image",
    ".webp": "media:image", ".gif": "media:image", ".bmp": "media:image", ".tif": "media:image",
    ".tiff": "media:image", ".wav": "media:audio", ".mp3": "media:audio", ".flac": "media:audio",
    ".ogg": "media:audio", ".opus": "media:audio", ".m4a": "media:audio", ".mp4": "media:video",
    ".avi": "media:video", ".mkv": "media:video", ".webm": "media:video", ".mov": "media:video",
}
# file name (anywhere) -> kind
_NAMES = {
    "pytorch_model.bin": "fmt:pytorch", "saved_model.pb": "fmt:tf", "tf_model.h5": "fmt:tf",
    "flax_model.msgpack": "fmt:jax", "weights.npz": "fmt:mlx",
    "tokenizer.json": "cfg:tokenizer", "tokenizer_config.json": "cfg:tokenizer", "tokenizer.model": "cfg:tokenizer",
    "preprocessor_config.json": "cfg:preprocessor", "processor_config.json": "cfg:processor",
    "modules.json": "cfg:sentence-transformers", "config_sentence_transformers.json": "cfg:sentence-transformers",
    "adapter_config.json": "cfg:adapter", "adapter_model.safetensors": "cfg:adapter",
    "adapter_model.bin": "cfg:adapter", "model_index.json": "cfg:diffusers",
}
# Files the repository's own configuration names: not data files.
_NOT_DATA = {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
             "special_tokens_map.json", "preprocessor_config.json", "processor_config.json", "modules.json",
             "config_sentence_transformers.json", "adapter_config.json", "model_index.json", "vocab.json",
             "added_tokens.json", "dataset_infos.json", "dataset_info.json", "state.json", "sentence_bert_config.json",
             "model.safetensors.index.json", "pytorch_model.bin.index.json", "requirements.txt", "merges.txt",
             "vocab.txt", "license.txt"}

# Root files read as JSON, by name.
_ROOT_JSON = {"config.json": "config", "adapter_config.json": "adapter", "model_index.json": "diffusers"}


def kinds(path: str) -> set[str]:
    """The kinds a file counts towards, by its path."""
    name = posixpath.basename(path).lower()
    out = set()
    if name in _NAMES:
        out.add(_NAMES[name])
    if name.startswith("pytorch_model") and name.endswith(".bin"):
        out.add("fmt:pytorch")
    ext = posixpath.splitext(name)[1]
    kind = _EXTENSIONS.get(ext)
    if kind is not None and not (kind.startswith("data:") and name in _NOT_DATA):
        out.add(kind)
    return out


def reader(path: str, repo_type: str) -> str | None:
    """Which reader extracts facts from this file, if any (by its path and the repository's type)."""
    lower = path.lower()
    if path == "README.md":
        return "card"
    if repo_type == "model":
        if path in _ROOT_JSON:
            return _ROOT_JSON[path]
        if lower.endswith(".safetensors"):
            return "safetensors"
        if lower.endswith(".gguf"):
            return "gguf"
    if repo_type == "dataset" and lower.endswith(".parquet"):
        return "parquet"
    return None


def extract(kind: str, r: Ranged, settings: Settings) -> dict[str, Any]:
    """The facts of one file; BadFile when it is not what its name says or is over a cap."""
    if kind == "card":
        size = min(r.size, settings.max_card)
        return {"card": parse_card(r.read(0, size), complete=size == r.size, max_depth=settings.max_card_depth)}
    if kind in ("config", "adapter", "diffusers"):
        return _json_facts(kind, r, settings.max_json)
    if kind == "safetensors":
        return safetensors_facts(r, max_header=settings.max_safetensors_header)
    if kind == "gguf":
        return gguf_facts(r, max_keys=settings.max_gguf_keys, max_tensors=settings.max_gguf_tensors)
    if kind == "parquet":
        return parquet_facts(r, max_footer=settings.max_parquet_footer)
    raise ValueError(f"no reader {kind!r}")


def budget(kind: str, settings: Settings) -> int:
    """The most bytes a reader may read of one file."""
    return {"card": settings.max_card, "safetensors": settings.max_safetensors_header + 8 + 16 * 1024,
            "gguf": settings.max_gguf_metadata, "parquet": settings.max_parquet_footer + 8}.get(kind, settings.max_json)


def _json_facts(kind: str, r: Ranged, cap: int) -> dict[str, Any]:
    if r.size > cap:
        raise BadFile(f"{r.name} is {r.size} bytes, over the limit of {cap}: not read")
    try:
        data = json.loads(r.read(0, r.size))
    except (ValueError, RecursionError):
        raise BadFile(f"{r.name} is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadFile(f"{r.name} is not a JSON object")
    if kind == "config":
        out: dict[str, Any] = {}
        if isinstance(data.get("model_type"), str):
            out["model_type"] = data["model_type"][:64]
        archs = data.get("architectures")
        if isinstance(archs, list):
            out["architectures"] = [a[:128] for a in archs[:8] if isinstance(a, str)]
        dtype = data.get("torch_dtype", data.get("dtype"))
        if isinstance(dtype, str):
            out["torch_dtype"] = dtype[:32]
        quant = data.get("quantization_config")
        if isinstance(quant, dict):
            out["quantization"] = {k: quant[k] for k in ("quant_method", "bits", "load_in_4bit", "load_in_8bit")
                                   if isinstance(quant.get(k), str | int | bool)}
        return {"config": out}
    if kind == "adapter":
        return {"adapter": {k: str(data[k])[:200] for k in ("base_model_name_or_path", "peft_type", "task_type")
                            if isinstance(data.get(k), str)}}
    return {"diffusers": {"class_name": str(data.get("_class_name", ""))[:128]}}


def parquet_facts(r: Ranged, *, max_footer: int) -> dict[str, Any]:
    """{"rows": n, "modalities": [...]} from a Parquet file's footer (two ranged reads)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if r.size < 12:
        raise BadFile(f"{r.name}: {r.size} bytes is too short for a Parquet file")
    tail = r.read(r.size - 8, r.size)
    if tail[4:] != b"PAR1":
        raise BadFile(f"{r.name}: not a Parquet file (no PAR1 at its end)")
    (length,) = struct.unpack("<I", tail[:4])
    if length > max_footer:
        raise BadFile(f"{r.name}: the Parquet footer claims {length} bytes, over the limit of {max_footer}")
    if length + 12 > r.size:
        raise BadFile(f"{r.name}: truncated: the Parquet footer claims {length} bytes, the file has {r.size}")
    footer = r.read(r.size - 8 - length, r.size)
    try:
        meta = pq.read_metadata(pa.BufferReader(b"PAR1" + footer))
        schema = meta.schema.to_arrow_schema()
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise BadFile(f"{r.name}: the Parquet footer does not parse: {str(exc)[:160]}") from None
    return {"rows": int(meta.num_rows), "modalities": sorted(_modalities(schema))}


def _modalities(schema: Any) -> set[str]:
    import pyarrow as pa

    out = set()
    for f in schema:
        t, name = f.type, f.name.lower()
        if pa.types.is_struct(t) and {"bytes", "path"} <= {c.name for c in t}:
            out.add("audio" if "audio" in name else "video" if "video" in name else "image")
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            out.add("text")
        elif pa.types.is_integer(t) or pa.types.is_floating(t):
            out.add("tabular")
    return out
