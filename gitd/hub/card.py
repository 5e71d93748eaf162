"""Repository cards: the YAML front matter of README.md (tags, pipeline_tag, library_name, ...)."""

from __future__ import annotations

from typing import Any

import yaml


class CardError(ValueError):
    pass


def split_front_matter(text: str) -> str | None:
    """The YAML between a leading '---' line and the next '---' line, or None."""
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            return "\n".join(lines[1:i])
    return None


def parse_card(text: str) -> dict[str, Any]:
    """The card metadata of a README; {} without front matter. Raises CardError on bad YAML."""
    block = split_front_matter(text)
    if block is None:
        return {}
    try:
        data = yaml.safe_load(block)
    except yaml.YAMLError as exc:
        raise CardError(f"invalid YAML in the README front matter: {exc}".replace("\n", " "))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CardError("the README front matter must be a YAML mapping")
    return {str(k): v for k, v in data.items()}


def card_tags(card: dict[str, Any]) -> list[str]:
    """Tags as the Hub lists them: the card's tags plus library, pipeline, language, license, datasets."""
    tags: list[str] = []

    def add(value: Any, prefix: str = "") -> None:
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, str | int | float) and not isinstance(v, bool) and str(v):
                tag = f"{prefix}{v}"
                if tag not in tags:
                    tags.append(tag)

    add(card.get("tags", []))
    for key in ("library_name", "pipeline_tag"):
        if card.get(key):
            add(card[key])
    if card.get("language"):
        add(card["language"])
    if card.get("license"):
        add(card["license"], "license:")
    if card.get("datasets"):
        add(card["datasets"], "dataset:")
    for key in ("task_categories", "task_ids", "size_categories"):
        if card.get(key):
            add(card[key], f"{key}:")
    return tags
