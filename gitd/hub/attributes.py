"""Which paths a repository's ``.gitattributes`` sends through Git LFS, and which file samples
look binary: how preupload decides "lfs" the way the Hugging Face Hub does.

The attribute lines come from the repository (anyone who may push writes them), so the
text, pattern count and pattern length are capped and the patterns are matched with RE2
through ``pathspec`` (never backtracking), as for ``.gitignore`` (``gitd.hub.ignore``).
A path's ``filter`` is decided by the last line that sets or unsets it, as in git; only
``filter=lfs`` counts as LFS. Callers run this off the event loop (``gitd.http.offload``).
"""

from __future__ import annotations

import logging

import pathspec
import re2

log = logging.getLogger("gitd.hub")

MAX_TEXT = 64 * 1024
MAX_PATTERNS = 1000
MAX_PATTERN = 1024
# How many bytes of a file preupload's sample holds (huggingface_hub sends the first 512).
SAMPLE_SIZE = 512


class LfsAttributes:
    """The ``filter`` lines of one ``.gitattributes`` text (an unusable one matches nothing)."""

    def __init__(self, text: str):
        self.lfs: list[bool] = []  # per kept line: does it set filter=lfs (else it unsets it)
        patterns: list[str] = []
        for line in text[:MAX_TEXT].splitlines():
            fields = line.split()
            if not fields or fields[0].startswith("#") or fields[0].startswith("!") or len(fields[0]) > MAX_PATTERN:
                continue  # comments; negative patterns are not allowed in attribute files
            setting = None
            for attr in fields[1:]:
                if attr == "filter=lfs":
                    setting = True
                elif attr in ("-filter", "!filter") or attr.startswith("filter="):
                    setting = False
            if setting is None or fields[0].endswith("/"):
                continue  # no filter here; a pattern for folders matches no file in attribute files
            patterns.append(fields[0])
            self.lfs.append(setting)
            if len(patterns) >= MAX_PATTERNS:
                break
        self.spec: pathspec.PathSpec | None = None
        if patterns:
            try:
                self.spec = pathspec.GitIgnoreSpec.from_lines(patterns, backend="re2")
            except (re2.error, ValueError, TypeError) as exc:
                log.warning("a .gitattributes is not used for LFS decisions: %s", exc)
                self.lfs = []

    def is_lfs(self, path: str) -> bool:
        if self.spec is None:
            return False
        found = self.spec.check_file(path)
        return found.index is not None and self.lfs[found.index]


def looks_binary(sample: bytes, *, truncated: bool = True) -> bool:
    """Whether the start of a file is binary: a NUL byte, or bytes that are not UTF-8 (a
    character cut at the end of a ``truncated`` sample does not count)."""
    if b"\0" in sample:
        return True
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        return not (truncated and exc.reason == "unexpected end of data" and exc.start >= len(sample) - 3)
    return False
