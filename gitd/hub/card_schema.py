"""What ``/api/validate-yaml`` checks of a card beyond its YAML, as the Hub does: the license
is one of the Hub's identifiers (an unknown one is an error: 400 with ``errors``, which
huggingface_hub raises as ValueError), list fields are lists of text, and a card without
metadata gets a warning (200 with ``warnings``, which huggingface_hub prints)."""

from __future__ import annotations

from typing import Any

# The Hub's license identifiers (the `license:` values its card schema accepts).
HUB_LICENSES = frozenset({
    "apache-2.0", "mit", "openrail", "bigscience-openrail-m", "creativeml-openrail-m", "bigscience-bloom-rail-1.0",
    "bigcode-openrail-m", "afl-3.0", "artistic-2.0", "bsl-1.0", "bsd", "bsd-2-clause", "bsd-3-clause",
    "bsd-3-clause-clear", "c-uda", "cc", "cc0-1.0", "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0",
    "cc-by-sa-3.0", "cc-by-sa-4.0", "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nd-4.0",
    "cc-by-nc-nd-3.0", "cc-by-nc-nd-4.0", "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0",
    "cdla-sharing-1.0", "cdla-permissive-1.0", "cdla-permissive-2.0", "wtfpl", "ecl-2.0", "epl-1.0", "epl-2.0",
    "etalab-2.0", "eupl-1.1", "eupl-1.2", "agpl-3.0", "gfdl", "gpl", "gpl-2.0", "gpl-3.0", "lgpl", "lgpl-2.1",
    "lgpl-3.0", "isc", "h-research", "intel-research", "lppl-1.3c", "ms-pl", "apple-ascl", "apple-amlr", "mpl-2.0",
    "odc-by", "odbl", "openrail++", "osl-3.0", "postgresql", "ofl-1.1", "ncsa", "unlicense", "zlib", "pddl",
    "lgpl-lr", "deepfloyd-if-license", "fair-noncommercial-research-license", "llama2", "llama3", "llama3.1",
    "llama3.2", "llama3.3", "llama4", "gemma", "unknown", "other"
})

TEXT_OR_LIST = ("tags", "language", "datasets", "base_model", "metrics", "library_name", "pipeline_tag")


def _texts(value: Any) -> list[str] | None:
    """``value`` as a list of strings (a string alone is a list of one); None when it is neither."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def check_card(card: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(errors, warnings) for a card's metadata."""
    if not card:
        return [], ["the README has no YAML metadata (the front matter between '---' lines is empty or missing)"]
    errors: list[str] = []
    warnings: list[str] = []
    if "license" in card:
        licenses = _texts(card["license"])
        if licenses is None:
            errors.append('"license" must be a license identifier or a list of them')
        else:
            for lid in licenses:
                if lid not in HUB_LICENSES:
                    errors.append(f'"license" must be one of the Hub\'s license identifiers, not {lid[:100]!r} '
                                  '(use "other" with license_name and license_link for any other license)')
            if "other" in licenses and not card.get("license_name"):
                warnings.append('license is "other": add license_name (and license_link) to the card')
    for key in TEXT_OR_LIST:
        if key in card and card[key] is not None and _texts(card[key]) is None:
            errors.append(f'"{key}" must be text or a list of text')
    return errors, warnings
