"""The facts a repository's card page shows beside the README: from the card's front matter
(license, base model, datasets, languages, task, library) and, where the metadata plugin
is installed, from what it derived (parameters, dtypes, GGUF quantisation)."""

from __future__ import annotations

from typing import Any

from gitd.names import is_valid_name


def human_count(n: int) -> str:
    for unit, size in (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= size:
            return f"{n / size:.1f}{unit}".replace(".0" + unit, unit)
    return str(n)


def _strings(value: Any, limit: int = 20) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [str(v)[:200] for v in values if isinstance(v, str | int | float) and not isinstance(v, bool)
            and str(v)][:limit]


def _repo_link(name: str) -> str | None:
    parts = name.split("/")
    return "/" + name if len(parts) == 2 and all(is_valid_name(p) for p in parts) else None


def card_facts(card: dict[str, Any], fields: dict[str, Any]) -> list[dict[str, Any]]:
    """[{"label", "values": [{"text", "url"?}]}] in the order the page shows them."""
    facts: list[dict[str, Any]] = []

    def add(label: str, values: list[str], links: bool = False) -> None:
        if values:
            facts.append({"label": label, "values": [{"text": v, "url": _repo_link(v) if links else None}
                                                     for v in values]})

    add("License", _strings(card.get("license")))
    bases = _strings(card.get("base_model")) or _strings(
        [b.get("id") if isinstance(b, dict) else b for b in fields.get("baseModels") or []]
        if isinstance(fields.get("baseModels"), list) else [])
    add("Base model", bases, links=True)
    safetensors, gguf = fields.get("safetensors"), fields.get("gguf")
    total = None
    if isinstance(safetensors, dict) and isinstance(safetensors.get("total"), int):
        total = safetensors["total"]
    elif isinstance(gguf, dict) and isinstance(gguf.get("total"), int):
        total = gguf["total"]
    if total:
        add("Parameters", [human_count(total)])
    dtypes: list[str] = []
    if isinstance(safetensors, dict) and isinstance(safetensors.get("parameters"), dict):
        dtypes = [str(k) for k in safetensors["parameters"]][:10]
    config = fields.get("config")
    if not dtypes and isinstance(config, dict) and isinstance(config.get("torch_dtype"), str):
        dtypes = [config["torch_dtype"]]
    add("Tensor type", dtypes)
    if isinstance(gguf, dict):
        add("Quantisation", _strings(gguf.get("file_type") or gguf.get("quantizations")))
        add("Architecture", _strings(gguf.get("architecture")))
    task = card.get("pipeline_tag") or fields.get("pipeline_tag")
    add("Task", _strings(task))
    add("Library", _strings(card.get("library_name") or fields.get("library_name")))
    add("Datasets", _strings(card.get("datasets")), links=False)
    add("Languages", _strings(card.get("language")))
    tags = _strings(fields.get("tags") or card.get("tags"), limit=30)
    add("Tags", tags)
    return facts
