"""From stored facts to what the Hub shows: tags in the Hub's namespaced form, the info
fields (``safetensors``, ``gguf``, ``config``, ``transformersInfo``, ...), the index
entries listings filter by, lineage links and flags. Pure: it reads nothing but its
arguments, so a re-derivation (new rules, a base model's new license) never touches
the repository."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import licenses
from .card import strings
from .settings import Tagging

# config.json architecture suffix -> (AutoModel class, pipeline tag)
_HEADS = [
    ("ForCausalLM", "AutoModelForCausalLM", "text-generation"),
    ("ForImageTextToText", "AutoModelForImageTextToText", "image-text-to-text"),
    ("ForSpeechSeq2Seq", "AutoModelForSpeechSeq2Seq", "automatic-speech-recognition"),
    ("ForCTC", "AutoModelForCTC", "automatic-speech-recognition"),
    ("ForConditionalGeneration", "AutoModelForSeq2SeqLM", "text2text-generation"),
    ("ForSequenceClassification", "AutoModelForSequenceClassification", "text-classification"),
    ("ForTokenClassification", "AutoModelForTokenClassification", "token-classification"),
    ("ForQuestionAnswering", "AutoModelForQuestionAnswering", "question-answering"),
    ("ForMaskedLM", "AutoModelForMaskedLM", "fill-mask"),
    ("ForImageClassification", "AutoModelForImageClassification", "image-classification"),
    ("ForObjectDetection", "AutoModelForObjectDetection", "object-detection"),
    ("ForSemanticSegmentation", "AutoModelForSemanticSegmentation", "image-segmentation"),
    ("Model", "AutoModel", "feature-extraction"),
]
_FORMAT_TAGS = {"fmt:safetensors": "safetensors", "fmt:gguf": "gguf", "fmt:pytorch": "pytorch", "fmt:onnx": "onnx",
                "fmt:tf": "tf", "fmt:tflite": "tflite", "fmt:keras": "keras", "fmt:jax": "jax", "fmt:mlx": "mlx",
                "fmt:coreml": "coreml", "fmt:nemo": "nemo"}
_DATA_FORMATS = {"data:parquet": "parquet", "data:csv": "csv", "data:json": "json", "data:arrow": "arrow",
                 "data:webdataset": "webdataset", "data:text": "text"}
RELATIONS = ("finetune", "adapter", "quantized", "merge")
SIZE_CATEGORIES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10**7, "1M<n<10M"), (10**8, "10M<n<100M"), (10**9, "100M<n<1B"), (10**10, "1B<n<10B"),
                   (10**11, "10B<n<100B"), (10**12, "100B<n<1T")]


@dataclass
class Stored:
    """What the plugin holds about one repository: its read files' facts and warnings, and
    how many files of each kind it has."""

    repo_type: str
    files: dict[str, tuple[str, dict[str, Any] | None, str | None]]  # path -> (reader, facts, warning)
    counts: dict[str, int]
    notes: list[str] = field(default_factory=list)  # the job's own warnings (limits reached)


@dataclass
class Derived:
    info: dict[str, Any]
    index: list[tuple[str, str]]  # (key, value) listings filter by
    lineage: list[tuple[str, str]]  # (base "org/name", relation)
    licenses: list[str]
    flags: list[dict[str, Any]]


def size_category(rows: int) -> str:
    return next((name for bound, name in SIZE_CATEGORIES if rows < bound), "n>1T")


def derive(s: Stored, tagging: Tagging, *, check_licenses: bool = True,
           base_license: Callable[[str], list[str] | None] = lambda name: None) -> Derived:
    card = _facts(s, "README.md", "card") or {}
    has = {k for k, n in s.counts.items() if n > 0}
    tags: list[str] = []

    def tag(*values: str) -> None:
        tags.extend(v for v in values if v and v not in tags)

    info: dict[str, Any] = {}
    flags = [{"kind": "file", "path": path, "message": warning}
             for path, (_, _, warning) in sorted(s.files.items()) if warning]
    flags += [{"kind": "limit", "path": None, "message": note} for note in s.notes]
    pipeline = card.get("pipeline_tag") if isinstance(card.get("pipeline_tag"), str) else None
    library = card.get("library_name") if isinstance(card.get("library_name"), str) else None
    tag(*strings(card.get("tags")))
    formats = [t for k, t in _FORMAT_TAGS.items() if k in has]
    if s.repo_type == "model":
        pipeline, library = _model(s, card, has, info, tag, pipeline, library)
    elif s.repo_type == "dataset":
        _dataset(s, card, has, tag)
    if library:
        tag(library)
    tag(*formats)
    if pipeline:
        tag(pipeline)
        info["pipeline_tag"] = pipeline
    if library:
        info["library_name"] = library
    languages = strings(card.get("language"))
    tag(*languages)
    card_licenses = [lid.lower() for lid in strings(card.get("license"))]
    tag(*(f"license:{lid}" for lid in card_licenses))
    tag(*(f"dataset:{d}" for d in strings(card.get("datasets"))))
    for key in ("task_categories", "task_ids", "size_categories", "language_creators", "multilinguality"):
        tag(*(f"{key}:{v}" for v in strings(card.get(key))))
    if card.get("model-index"):
        tag("model-index")
    lineage = _lineage(s, card, has) if s.repo_type == "model" else []
    for base, relation in lineage:
        tag(f"base_model:{base}", f"base_model:{relation}:{base}")
    if lineage:
        info["baseModels"] = {"relation": lineage[0][1], "models": [{"id": base} for base, _ in lineage]}
    rule_tags = [r.tag for i, r in enumerate(tagging.file_rules) if s.counts.get(f"rule:{i}", 0) > 0]
    rule_tags += [r.tag for r in tagging.card_rules if r.card_match(card)]
    tag(*rule_tags)
    if check_licenses and s.repo_type in ("model", "dataset") and "README.md" in s.files:
        flags += _license_flags(card, card_licenses, lineage, base_license)
    elif check_licenses and s.repo_type in ("model", "dataset"):
        flags.append({"kind": "license", "path": None, "message": "no README.md: the repository names no license"})
    categories = _categories(tagging, pipeline, [library, *formats] if library else formats, languages,
                             card_licenses, rule_tags)
    info["tags"] = tags
    if categories:
        info["metadataCategories"] = categories
    info["metadataFlags"] = flags
    index = [("tag", t) for t in tags]
    index += [("pipeline_tag", pipeline)] if pipeline else []
    index += [("library", lib) for lib in dict.fromkeys([library, *formats]) if lib]
    index += [("language", lang) for lang in languages] + [("license", lid) for lid in card_licenses]
    return Derived(info, sorted(set(index)), lineage, card_licenses, flags)


def _facts(s: Stored, path: str, reader: str) -> dict[str, Any] | None:
    found = s.files.get(path)
    if found is None or found[0] != reader or found[1] is None:
        return None
    return found[1].get(reader) if reader in ("card", "config", "adapter", "diffusers") else found[1]


def _model(s: Stored, card: dict[str, Any], has: set[str], info: dict[str, Any], tag: Callable[..., None],
           pipeline: str | None, library: str | None) -> tuple[str | None, str | None]:
    config = _facts(s, "config.json", "config")
    if config:
        info["config"] = {k: config[k] for k in ("architectures", "model_type", "torch_dtype") if k in config}
        if config.get("model_type"):
            tag(config["model_type"])
        quant = config.get("quantization") or {}
        method = quant.get("quant_method")
        if isinstance(method, str):
            tag(method)
        bits = quant.get("bits") or (4 if quant.get("load_in_4bit") else 8 if quant.get("load_in_8bit") else None)
        if bits in (2, 3, 4, 8):
            tag(f"{bits}-bit")
    head = _head((config or {}).get("architectures") or [])
    if library is None:
        library = ("peft" if "cfg:adapter" in has else "diffusers" if "cfg:diffusers" in has
                   else "sentence-transformers" if "cfg:sentence-transformers" in has
                   else "transformers" if config and config.get("model_type")
                   else "gguf" if "fmt:gguf" in has else "mlx" if "fmt:mlx" in has else None)
    if pipeline is None:
        pipeline = (head[1] if head and library == "transformers"
                    else "sentence-similarity" if library == "sentence-transformers" else None)
    if head and library == "transformers":
        processor = ("AutoProcessor" if "cfg:processor" in has else "AutoTokenizer" if "cfg:tokenizer" in has
                     else "AutoImageProcessor" if "cfg:preprocessor" in has else None)
        info["transformersInfo"] = {"auto_model": head[0], "pipeline_tag": pipeline,
                                    **({"processor": processor} if processor else {})}
    weights = [f for path, (reader, f, _) in sorted(s.files.items()) if reader == "safetensors" and f]
    if weights:
        parameters: dict[str, int] = {}
        for w in weights:
            for dtype, n in w["parameters"].items():
                parameters[dtype] = parameters.get(dtype, 0) + n
        info["safetensors"] = {"parameters": parameters, "total": sum(parameters.values())}
    ggufs = [f for path, (reader, f, _) in sorted(s.files.items()) if reader == "gguf" and f]
    if ggufs:
        first = ggufs[0]
        info["gguf"] = {k: first[k] for k in ("total", "architecture", "context_length", "file_type") if k in first}
        info["gguf"]["quantizations"] = sorted({g["file_type"] for g in ggufs if "file_type" in g})
    return pipeline, library


def _head(architectures: list[str]) -> tuple[str, str] | None:
    for arch in architectures:
        for suffix, auto, pipeline in _HEADS:
            if arch.endswith(suffix):
                return auto, pipeline
    return None


def _dataset(s: Stored, card: dict[str, Any], has: set[str], tag: Callable[..., None]) -> None:
    formats = [f for k, f in _DATA_FORMATS.items() if k in has]
    if not formats and "media:image" in has:
        formats.append("imagefolder")
    if not formats and "media:audio" in has:
        formats.append("audiofolder")
    tag(*(f"format:{f}" for f in formats))
    modalities = set()
    parquet = [f for path, (reader, f, _) in s.files.items() if reader == "parquet" and f]
    for f in parquet:
        modalities.update(f.get("modalities", []))
    modalities.update(m for k, m in (("media:image", "image"), ("media:audio", "audio"), ("media:video", "video"),
                                     ("data:text", "text"), ("data:json", "text"), ("data:csv", "tabular"))
                      if k in has)
    tag(*(f"modality:{m}" for m in sorted(modalities)))
    if parquet and not card.get("size_categories"):
        tag(f"size_categories:{size_category(sum(int(f.get('rows', 0)) for f in parquet))}")
    if formats:
        tag("library:datasets")
    if {"parquet", "csv", "json"} & set(formats):
        tag("library:pandas")


def _lineage(s: Stored, card: dict[str, Any], has: set[str]) -> list[tuple[str, str]]:
    bases = [b for b in strings(card.get("base_model")) if b.count("/") == 1]
    if not bases:
        adapter = _facts(s, "adapter_config.json", "adapter") or {}
        name = adapter.get("base_model_name_or_path", "")
        bases = [name] if name.count("/") == 1 and not name.startswith((".", "/")) else []
    relation = card.get("base_model_relation")
    if relation not in RELATIONS:
        config = _facts(s, "config.json", "config") or {}
        relation = ("merge" if len(bases) > 1 else "adapter" if "cfg:adapter" in has
                    else "quantized" if "fmt:gguf" in has or config.get("quantization") else "finetune")
    return [(b, relation) for b in dict.fromkeys(bases)]


def _license_flags(card: dict[str, Any], card_licenses: list[str], lineage: list[tuple[str, str]],
                   base_license: Callable[[str], list[str] | None]) -> list[dict[str, Any]]:
    name = card.get("license_name") if isinstance(card.get("license_name"), str) else None
    flags = [{"kind": "license", "path": "README.md", "message": m} for m in licenses.check(card_licenses, name)]
    for base, _relation in lineage:
        theirs = base_license(base)
        if not theirs:
            continue
        why = licenses.incompatible(card_licenses, theirs)
        if why:
            flags.append({"kind": "license", "path": "README.md",
                          "message": f"the base model {base} is licensed {why}"})
    return flags


def _categories(tagging: Tagging, pipeline: str | None, frameworks: list[str], languages: list[str],
                card_licenses: list[str], rule_tags: list[str]) -> dict[str, list[str]]:
    built_in = {"task": [pipeline] if pipeline else [], "framework": frameworks, "language": languages,
                "license": card_licenses}
    out: dict[str, list[str]] = {}
    for category in tagging.categories:
        values = list(built_in.get(category, []))
        values += [t.split(":", 1)[1] for t in rule_tags if t.split(":", 1)[0] == category]
        if values:
            out[category] = list(dict.fromkeys(values))
    return out
