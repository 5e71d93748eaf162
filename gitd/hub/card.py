"""Repository cards: the YAML front matter of README.md (tags, pipeline_tag, library_name, ...).

Cards come from anyone who can push, and ``/api/validate-yaml`` parses YAML from
anyone at all, so parsing is bounded: the YAML block has a size cap, anchors and
aliases are refused (a few hundred bytes of nested aliases expand to gigabytes), nesting
is capped, and what comes out is plain JSON data. libyaml parses when it is installed.
Callers run ``parse_card`` off the event loop (``gitd.http.offload``).
"""

from __future__ import annotations

import base64
import datetime
import math
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.events import AliasEvent, NodeEvent

try:  # libyaml's parser: several times faster than the pure-Python one
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

# Largest README read for its card, and default cap on its YAML front matter.
README_MAX = 1024 * 1024
CARD_YAML_MAX = 256 * 1024
MAX_DEPTH = 64


class CardError(ValueError):
    pass


class CardLoader(Composer, _SafeLoader):  # type: ignore[misc, valid-type]
    """A safe loader that composes nodes itself, so it can refuse anchors, aliases and deep nesting
    (libyaml's own composer would expand aliases before anyone could look)."""

    def __init__(self, stream: str):
        _SafeLoader.__init__(self, stream)
        Composer.__init__(self)
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(AliasEvent):
            raise CardError("YAML aliases (*name) are not allowed in cards")
        event = self.peek_event()
        if isinstance(event, NodeEvent) and event.anchor is not None:
            raise CardError("YAML anchors (&name) are not allowed in cards")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise CardError(f"the card is nested more than {MAX_DEPTH} levels deep")
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def split_front_matter(text: str) -> str | None:
    """The YAML between a leading '---' line and the next '---' line, or None."""
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            return "\n".join(lines[1:i])
    return None


def _plain(value: Any) -> Any:
    """YAML values as JSON can carry them: dates as ISO strings, binary as base64, sets as lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | set | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime.date | datetime.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def parse_card(text: str, *, max_yaml: int = CARD_YAML_MAX) -> dict[str, Any]:
    """The card metadata of a README; {} without front matter. Raises CardError on YAML that is
    invalid, too big, nested too deep or uses anchors/aliases."""
    block = split_front_matter(text)
    if block is None:
        return {}
    if len(block) > max_yaml:
        raise CardError(f"the README front matter is larger than {max_yaml} characters")
    loader = CardLoader(block)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        raise CardError(f"invalid YAML in the README front matter: {exc}".replace("\n", " ")[:500])
    except RecursionError:
        raise CardError("the README front matter is nested too deeply")
    finally:
        loader.dispose()
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CardError("the README front matter must be a YAML mapping")
    return _plain(data)


def card_tags(card: dict[str, Any]) -> list[str]:
    """Tags as the Hub lists them: the card's tags plus library, pipeline, language, license, datasets."""
    tags: dict[str, None] = {}  # ordered, and a set: a card may list many thousands of tags

    def add(value: Any, prefix: str = "") -> None:
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, str | int | float) and not isinstance(v, bool) and str(v):
                tags.setdefault(f"{prefix}{v}")

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
    return list(tags)
