"""License checks against the SPDX list and the Hub's identifiers (licenses.json, shipped
with the plugin: no network), and whether a fine-tune may carry its license given its
base model's."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class LicenseData:
    known: frozenset[str]  # lowercased
    families: dict[str, frozenset[str]]
    may_use: dict[str, str | None]

    def family(self, license_id: str) -> str | None:
        lid = license_id.lower()
        return next((name for name, ids in self.families.items() if lid in ids), None)


@cache
def data() -> LicenseData:
    raw = json.loads(resources.files(__package__).joinpath("licenses.json").read_text(encoding="utf-8"))
    known = frozenset(i.lower() for i in raw["spdx"] + raw["hub"])
    families = {k: frozenset(v) for k, v in raw["families"].items()}
    return LicenseData(known, families, raw["derivatives_may_use_family"])


def check(licenses: list[str], license_name: str | None) -> list[str]:
    """Problems with a card's licenses: missing, unknown, ``other`` without a name."""
    if not licenses:
        return ["the card names no license (add `license:` to README.md's front matter)"]
    out = []
    known = data().known
    for lid in licenses:
        if lid.lower() == "other":
            if not license_name:
                out.append("license is `other` but the card gives no `license_name`")
        elif lid.lower() == "unknown":
            out.append("license is `unknown`")
        elif lid.lower() not in known:
            out.append(f"license `{lid}` is neither an SPDX identifier nor one the Hub knows")
    return out


def incompatible(child: list[str], base: list[str]) -> str | None:
    """Why a derivative licensed ``child`` may not derive from a base licensed ``base``
    (None when it may, or when it cannot be told)."""
    d = data()
    child_ids = {c.lower() for c in child}
    for b in base:
        family = d.family(b)
        if family is None or b.lower() in child_ids:
            continue
        if family == "no-derivatives":
            return f"{b} allows no derivatives"
        allowed_family = d.may_use.get(family)
        if allowed_family and child_ids and all(d.family(c) == allowed_family for c in child_ids):
            continue
        if family == "model-terms" and child_ids == {"other"}:
            continue  # custom terms: they may well pass the base's on
        what = {"noncommercial": "non-commercial", "copyleft": "copyleft", "share-alike": "share-alike",
                "model-terms": "with its own terms of use"}.get(family, family)
        return f"{b} is {what}: a derivative keeps that license, not {', '.join(sorted(child_ids)) or 'none'}"
    return None
