"""The metadata plugin's settings (``[plugins.metadata]``) and its tagging rules.

    [plugins.metadata]
    categories = ["task", "framework", "language", "license", "industry"]
    rules = ["file:*.gguf -> framework:llama.cpp",
             "card:tags=medical -> industry:healthcare",
             "card:extra_gated_prompt -> industry:gated"]

Any change of these settings makes the next job of each repository read it whole again.

A rule maps the files of a commit (a ``file:`` glob, in .gitignore syntax) or a card key
(``card:KEY``: the key is set; ``card:KEY=VALUE``: it is, or lists, VALUE) to a tag
``CATEGORY:VALUE`` whose category is one of ``categories``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import pathspec

from gitd.plugin_api import SettingsError, Size

MIB = Size(1024 * 1024)
CARD_BYTES, HEADER_BYTES, GGUF_BYTES, FOOTER_BYTES = Size(256 * 1024), Size(16 * MIB), Size(32 * MIB), Size(16 * MIB)
DEFAULT_CATEGORIES = ["task", "framework", "language", "license", "industry"]
# Bumped when the plugin derives tags differently: every repository is then re-read once.
DERIVATION_VERSION = 1

_RULE = re.compile(r"^\s*(file|card):(.+?)\s*->\s*([a-z0-9][a-z0-9_.-]*):(\S+)\s*$")
_CATEGORY = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


@dataclass(frozen=True)
class Settings:
    categories: list[str] = field(default_factory=lambda: list(DEFAULT_CATEGORIES))
    rules: list[str] = field(default_factory=list)
    check_licenses: bool = True
    # Caps: what one file, or one job, may cost. A file over a cap is flagged, not read.
    max_card: Size = CARD_BYTES  # bytes of README.md read for its front matter
    max_card_depth: int = 64  # nesting of the card's YAML
    max_json: Size = MIB  # config.json, adapter_config.json, model_index.json
    max_safetensors_header: Size = HEADER_BYTES
    max_gguf_metadata: Size = GGUF_BYTES  # bytes of a GGUF's metadata and tensor table
    max_gguf_keys: int = 4096
    max_gguf_tensors: int = 100_000
    max_parquet_footer: Size = FOOTER_BYTES
    max_files: int = 1_000_000  # files a commit's diff may list
    max_read_files: int = 10_000  # files whose content one job reads


@dataclass(frozen=True)
class Rule:
    source: str  # "file" or "card"
    pattern: str  # a glob, or KEY / KEY=VALUE
    tag: str  # CATEGORY:VALUE
    spec: pathspec.PathSpec | None = None

    def card_match(self, card: dict[str, Any]) -> bool:
        key, _, value = self.pattern.partition("=")
        found = card.get(key.strip())
        if not value:
            return found not in (None, "", [], {})
        values = found if isinstance(found, list) else [found]
        want = value.strip().lower()
        return any(isinstance(v, str | int | float) and str(v).lower() == want for v in values)


@dataclass(frozen=True)
class Tagging:
    """The parsed settings that decide tags, and their fingerprint (a change re-reads
    every repository once)."""

    categories: tuple[str, ...]
    file_rules: tuple[Rule, ...]
    card_rules: tuple[Rule, ...]
    fingerprint: str

    def file_tags(self, path: str) -> list[str]:
        return [f"rule:{i}" for i, r in enumerate(self.file_rules) if r.spec is not None and r.spec.match_file(path)]


def parse_tagging(settings: Settings) -> Tagging:
    where = "plugins.metadata"
    for c in settings.categories:
        if not _CATEGORY.match(c):
            raise SettingsError(f"{where}.categories: {c!r} is not a category name (lowercase letters, digits, -_.)")
    files, cards = [], []
    for i, text in enumerate(settings.rules):
        m = _RULE.match(text)
        if m is None:
            raise SettingsError(f"{where}.rules[{i}]: {text!r} is not 'file:GLOB -> CATEGORY:VALUE' "
                                "or 'card:KEY[=VALUE] -> CATEGORY:VALUE'")
        source, pattern, category, value = m.groups()
        if category not in settings.categories:
            raise SettingsError(f"{where}.rules[{i}]: category {category!r} is not one of categories "
                                f"({', '.join(settings.categories)})")
        if source == "file":
            try:
                spec = pathspec.GitIgnoreSpec.from_lines([pattern])
            except (ValueError, TypeError) as exc:
                raise SettingsError(f"{where}.rules[{i}]: bad glob {pattern!r}: {exc}") from None
            files.append(Rule(source, pattern, f"{category}:{value}", spec))
        else:
            cards.append(Rule(source, pattern, f"{category}:{value}"))
    raw = json.dumps([DERIVATION_VERSION, dataclasses.asdict(settings)], sort_keys=True)
    return Tagging(tuple(settings.categories), tuple(files), tuple(cards),
                   hashlib.sha256(raw.encode()).hexdigest()[:16])
