"""How a file's content is shown: highlighted text with line numbers, an image, or a
summary for binary files. Pygments highlights with CSS classes (``pygments_css``), so the
pages need no inline styles; very long text is shown plain, and text past the view's
limit is cut (the page links to the whole file)."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from markupsafe import Markup, escape
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_for_filename
from pygments.lexers.special import TextLexer
from pygments.util import ClassNotFound

IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".webp": "image/webp", ".svg": "image/svg+xml", ".avif": "image/avif", ".bmp": "image/bmp",
               ".ico": "image/x-icon"}
MARKDOWN_EXTENSIONS = (".md", ".markdown")
# How much of a file is looked at to tell text from binary (as git does: a NUL byte).
SNIFF = 8000


@dataclass(frozen=True)
class TextView:
    html: Markup
    lines: int
    highlighted: bool


def image_type(path: str) -> str | None:
    return IMAGE_TYPES.get(posixpath.splitext(path)[1].lower())


def is_binary(head: bytes) -> bool:
    return b"\0" in head[:SNIFF]


_FORMATTER = HtmlFormatter(cssclass="hl", linespans="L")


def _lexer(path: str):
    try:
        return get_lexer_for_filename(posixpath.basename(path) or "x", stripnl=False, ensurenl=False)
    except ClassNotFound:
        return TextLexer(stripnl=False, ensurenl=False)


def _plain_lines(text: str) -> tuple[Markup, int]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    html = "".join(f'<span id="L-{n}">{escape(line)}\n</span>' for n, line in enumerate(lines, 1))
    return Markup(html), len(lines)


def render_text(text: str, path: str, *, max_highlight: int) -> TextView:
    """Lines of ``text``, each in ``<span id="L-N">`` (numbered by CSS), highlighted by the
    file name's language when ``text`` is at most ``max_highlight`` characters."""
    if len(text) > max_highlight:
        html, count = _plain_lines(text)
        return TextView(html, count, False)
    lexer = _lexer(path)
    if isinstance(lexer, TextLexer):
        html, count = _plain_lines(text)
        return TextView(html, count, False)
    out = highlight(text, lexer, _FORMATTER)
    # <div class="hl"><pre><span></span><span id="L-1">...</span>...</pre></div>: keep the lines only
    start, end = out.find("<pre>") + len("<pre>"), out.rfind("</pre>")
    body = out[start:end].removeprefix("<span></span>")
    return TextView(Markup(body), body.count('<span id="L-'), True)


def pygments_css() -> str:
    """The highlighting colours, light and dark (prefers-color-scheme)."""
    light = HtmlFormatter(style="default").get_style_defs(".hl")
    dark = HtmlFormatter(style="monokai").get_style_defs(".hl")
    return f"{light}\n@media (prefers-color-scheme: dark) {{\n{dark}\n}}\n"
