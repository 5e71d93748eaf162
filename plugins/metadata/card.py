"""A README's card metadata, parsed safely.

The YAML front matter is read from at most ``max_card`` bytes of README.md. YAML anchors
and aliases are refused (an alias bomb expands a few hundred bytes into gigabytes), as is
nesting deeper than ``max_depth``; values that JSON cannot hold (dates) become strings.
A README that is not UTF-8 text, or a card that does not parse, is a ``BadFile``: a
warning on the repository, never a failed job.
"""

from __future__ import annotations

import datetime
from typing import Any

import yaml

from .ranged import BadFile

# The card keys the Hub reads (and the plugin derives from), besides anything else kept in cardData.
CARD_KEYS = ("pipeline_tag", "library_name", "language", "license", "license_name", "license_link", "datasets",
             "base_model", "base_model_relation", "tags", "model-index", "widget", "configs")


class _CardLoader(yaml.SafeLoader):
    max_depth = 64

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise BadFile("README.md: the card uses a YAML alias (*name); cards may not")
        event = self.peek_event()
        if getattr(event, "anchor", None):
            raise BadFile("README.md: the card uses a YAML anchor (&name); cards may not")
        self._depth += 1
        try:
            if self._depth > self.max_depth:
                raise BadFile(f"README.md: the card nests deeper than {self.max_depth} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def front_matter(text: str) -> str | None:
    """The YAML between a first line '---' and the next '---' line; None without a first '---'
    line. BadFile if it is never closed."""
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            return "\n".join(lines[1:i])
    raise BadFile("README.md: the card's front matter is not closed by a '---' line")


def parse_card(data: bytes, *, complete: bool, max_depth: int = 64) -> dict[str, Any]:
    """The card of a README's first bytes (``complete``: the whole README was read)."""
    if b"\x00" in data:
        raise BadFile("README.md is binary, not text: no card read")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if complete or exc.start < len(data) - 4:  # a read cut inside a character is fine
            raise BadFile("README.md is not UTF-8 text: no card read") from None
        text = data[:exc.start].decode("utf-8")
    try:
        block = front_matter(text)
    except BadFile:
        if complete:
            raise
        raise BadFile(f"README.md: the card's front matter is not closed within its first {len(data)} bytes "
                      "(the limit)") from None
    if block is None:
        return {}
    loader = _CardLoader(block)
    loader.max_depth = max_depth
    try:
        data_ = loader.get_single_data()
    except yaml.YAMLError as exc:
        raise BadFile(f"README.md: the card is not valid YAML: {str(exc)[:200]}".replace("\n", " ")) from None
    except RecursionError:
        raise BadFile("README.md: the card nests too deeply") from None
    finally:
        loader.dispose()
    if data_ is None:
        return {}
    if not isinstance(data_, dict):
        raise BadFile("README.md: the card is not a YAML mapping")
    return {str(k): _jsonable(v) for k, v in data_.items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime.date | datetime.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None  # not JSON
    return value


def strings(value: Any) -> list[str]:
    """A card value that may be a string or a list of strings, as a list of strings."""
    values = value if isinstance(value, list) else [value]
    return [str(v).strip() for v in values
            if isinstance(v, str | int | float) and not isinstance(v, bool) and str(v).strip()]
