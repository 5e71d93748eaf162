""".gitignore matching for preupload's ``shouldIgnore``, in time linear in the path.

The patterns come from the client (preupload's ``gitIgnore``) or from the repository, so
they are hostile input: a backtracking regex engine takes minutes on ``**a**a**a...b``
against a long path. ``pathspec`` translates git's rules and matches them with RE2
(``google-re2``), which never backtracks; pattern text, pattern count and path length are
capped as well. Callers run ``ignored`` off the event loop (``gitd.http.offload``).
"""

from __future__ import annotations

import pathspec
import re2

from gitd.errors import BadRequest

MAX_TEXT = 64 * 1024
MAX_PATTERNS = 1000
MAX_PATTERN = 1024
MAX_PATH = 4096


class GitIgnore:
    def __init__(self, text: str):
        if len(text) > MAX_TEXT:
            raise BadRequest(f"gitIgnore is longer than {MAX_TEXT} characters")
        lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
        if len(lines) > MAX_PATTERNS:
            raise BadRequest(f"gitIgnore has more than {MAX_PATTERNS} patterns")
        if any(len(line) > MAX_PATTERN for line in lines):
            raise BadRequest(f"a gitIgnore pattern is longer than {MAX_PATTERN} characters")
        try:
            self.spec = pathspec.GitIgnoreSpec.from_lines(lines, backend="re2")
        except (re2.error, ValueError, TypeError) as exc:
            raise BadRequest(f"gitIgnore patterns cannot be used: {exc}")

    def ignored(self, path: str) -> bool:
        """Whether ``path`` (a file) is ignored, counting rules that ignore one of its folders
        (git never looks inside an ignored folder, so no rule can bring a file back from one)."""
        if len(path) > MAX_PATH:
            raise BadRequest(f"path longer than {MAX_PATH} characters: {path[:64]}...")
        parts = path.split("/")
        for depth in range(1, len(parts)):
            if self.spec.match_file("/".join(parts[:depth]) + "/"):
                return True
        return self.spec.match_file(path)
