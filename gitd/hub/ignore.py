"""A small .gitignore matcher for preupload's ``shouldIgnore`` (patterns, '!', '/', '**')."""

from __future__ import annotations

import re


def _translate(pattern: str) -> str:
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("/**", i) and i + 3 == len(pattern):
            out.append("/.*")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:j].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


class GitIgnore:
    def __init__(self, text: str):
        self.rules: list[tuple[bool, bool, re.Pattern[str]]] = []  # (negated, dir_only, regex)
        for raw in text.splitlines():
            line = raw.rstrip()
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            if negated:
                line = line[1:]
            line = line.replace("\\#", "#").replace("\\!", "!")
            dir_only = line.endswith("/")
            line = line.rstrip("/")
            if not line:
                continue
            anchored = "/" in line
            body = _translate(line.lstrip("/"))
            regex = f"^{body}$" if anchored else f"^(?:.*/)?{body}$"
            self.rules.append((negated, dir_only, re.compile(regex)))

    def ignored(self, path: str) -> bool:
        """Whether ``path`` (a file) is ignored, counting rules that ignore one of its folders."""
        parts = path.split("/")
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            is_dir = depth < len(parts)
            state = None
            for negated, dir_only, regex in self.rules:
                if dir_only and not is_dir:
                    continue
                if regex.match(prefix):
                    state = not negated
            if state and is_dir:
                return True  # git never looks inside an ignored folder
            if depth == len(parts):
                return bool(state)
        return False
