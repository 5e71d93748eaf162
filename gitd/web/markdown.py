"""Markdown (model cards, discussions) to sanitised HTML.

markdown-it-py renders CommonMark with tables, strikethrough and bare links; raw HTML
in the text is passed on, and then everything goes through nh3 (the ammonia
sanitiser): only an allow-list of tags and attributes survives, ``<script>``, ``<style>``,
event handlers, ``javascript:``/``data:`` URLs and SVG are dropped, and links get
``rel="noopener noreferrer nofollow"``. Relative links and images in a repository's
README are pointed at its file views (``link_base``, ``raw_base``). Code blocks are
highlighted with Pygments' CSS classes (only its token classes are kept).
"""

from __future__ import annotations

import posixpath
from urllib.parse import quote, urlsplit

import nh3
from markdown_it import MarkdownIt
from pygments import highlight as _pygments_highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

# Longest Markdown text rendered; a longer one is cut there (with a note).
MAX_MARKDOWN = 512 * 1024
TAGS = {"a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "div", "dl", "dt", "em", "h1", "h2",
        "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp",
        "small", "span", "strike", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th",
        "thead", "tr", "tt", "u", "ul", "var"}
ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title", "width", "height"}, "ol": {"start"},
              "td": {"align", "colspan", "rowspan"}, "th": {"align", "colspan", "rowspan"}, "details": {"open"}}
_TOKEN_CLASSES = {c for c in STANDARD_TYPES.values() if c}
CLASSES = {"span": _TOKEN_CLASSES, "pre": {"hl"}, "div": {"hl"}}
SCHEMES = {"http", "https", "mailto"}
_FORMATTER = HtmlFormatter(nowrap=True)


def _highlight(code: str, lang: str, attrs: str) -> str:
    if not lang or len(code) > 64 * 1024:
        return ""
    try:
        lexer = get_lexer_by_name(lang.split()[0], stripnl=False)
    except ClassNotFound:
        return ""
    return '<pre class="hl"><code>' + _pygments_highlight(code, lexer, _FORMATTER) + "</code></pre>"


_MD = MarkdownIt("commonmark", {"html": True, "linkify": True, "typographer": False, "highlight": _highlight})
_MD.enable(["table", "strikethrough", "linkify"])


def strip_front_matter(text: str) -> str:
    """The text after a leading YAML front matter block (``---`` ... ``---``), if it has one."""
    body = text.lstrip("\ufeff")
    if not body.startswith("---"):
        return text
    lines = body.split("\n")
    if lines[0].strip() != "---":
        return text
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            return "\n".join(lines[i + 1:])
    return text


def _resolve(base_dir: str, target: str) -> str | None:
    """A relative link's path in the repository (None when it climbs out of it)."""
    path = posixpath.normpath(posixpath.join(base_dir, target)) if base_dir else posixpath.normpath(target)
    if path.startswith("../") or path == "..":
        return None
    return path.lstrip("/") if path != "." else ""


def sanitise(html: str, *, link_base: str | None = None, raw_base: str | None = None, base_dir: str = "") -> str:
    """Untrusted HTML made safe to put in a page (see the module's docstring)."""

    def attribute_filter(tag: str, attr: str, value: str) -> str | None:
        if attr not in ("href", "src") or link_base is None:
            return value
        parts = urlsplit(value)
        if parts.scheme or parts.netloc or value.startswith(("/", "#", "?")):
            return value
        path = _resolve(base_dir, parts.path)
        if path is None:
            return None
        base = raw_base if attr == "src" and raw_base is not None else link_base
        tail = f"#{parts.fragment}" if parts.fragment else ""
        return f"{base}/{quote(path)}{tail}"

    return nh3.clean(html, tags=TAGS, attributes=ATTRIBUTES, url_schemes=SCHEMES, allowed_classes=CLASSES,
                     link_rel="noopener noreferrer nofollow", attribute_filter=attribute_filter,
                     clean_content_tags={"script", "style"}, strip_comments=True)


def render_markdown(text: str, *, link_base: str | None = None, raw_base: str | None = None,
                    base_dir: str = "") -> tuple[str, bool]:
    """(sanitised HTML, whether the text was cut at MAX_MARKDOWN characters)."""
    cut = len(text) > MAX_MARKDOWN
    if cut:
        text = text[:MAX_MARKDOWN]
    return sanitise(_MD.render(text), link_base=link_base, raw_base=raw_base, base_dir=base_dir), cut
