"""Markdown from repositories and discussions is rendered, then sanitised: what a card or a
comment may carry never runs in a reader's browser."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from gitd.web.markdown import MAX_MARKDOWN, render_markdown, sanitise, strip_front_matter


def render(text: str, **kw) -> str:
    return render_markdown(text, **kw)[0]


@pytest.mark.parametrize("hostile", [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    '<a href="jav&#x09;ascript:alert(1)">x</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
    "<svg><script>alert(1)</script></svg>",
    '<svg onload="alert(1)"><circle r="1"/></svg>',
    '<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>',
    '<iframe src="https://evil.example"></iframe>',
    '<object data="x.swf"></object><embed src="x.swf">',
    '<form action="https://evil.example"><input name=x></form>',
    '<div style="background:url(javascript:alert(1))">x</div>',
    '<style>body{display:none}</style>',
    '<meta http-equiv="refresh" content="0;url=https://evil.example">',
    '<base href="https://evil.example/">',
    '<p onclick="alert(1)" onmouseover="alert(1)">x</p>',
    '<a href="vbscript:msgbox(1)">x</a>',
])
def test_hostile_markup_loses_everything_that_could_run(hostile):
    html = render(f"# Card\n\n{hostile}\n\nend")
    tags, attributes = parsed(html)
    assert tags <= ALLOWED, (hostile, html)
    for _tag, name, value in attributes:
        assert not name.startswith("on") and name != "style", (hostile, html)
        if name in ("href", "src"):
            assert urlsplit(value).scheme in ("", "http", "https", "mailto"), (hostile, html)
    assert "<script" not in html.lower()


ALLOWED = {"h1", "p", "a", "img", "em", "strong", "code", "pre", "span", "div", "br", "table", "thead", "tbody",
           "tr", "td", "th", "ul", "ol", "li"}


def parsed(html: str) -> tuple[set[str], list[tuple[str, str, str]]]:
    """The tags and (tag, attribute, value) of a fragment, as a browser's parser reads them."""
    tags: set[str] = set()
    attributes: list[tuple[str, str, str]] = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            tags.add(tag)
            attributes.extend((tag, name, value or "") for name, value in attrs)

    Collect().feed(html)
    return tags, attributes


def test_plain_markdown_keeps_its_structure():
    html = render("# Title\n\n*em* **strong** `code`\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- item\n\n"
                  "https://example.com and [link](https://example.org)")
    for piece in ("<h1>Title</h1>", "<em>em</em>", "<strong>strong</strong>", "<code>code</code>", "<table>",
                  "<td>1</td>", "<li>item</li>", 'href="https://example.com"', 'href="https://example.org"'):
        assert piece in html
    assert 'rel="noopener noreferrer nofollow"' in html


def test_code_blocks_are_highlighted_with_token_classes_only():
    html = render('```python\nimport os\n```\n\n<span class="btn danger k">x</span>')
    assert '<span class="kn">import</span>' in html
    assert "btn" not in html and "danger" not in html  # classes outside Pygments' tokens are dropped


def test_relative_links_and_images_point_at_the_repository():
    html = render("[guide](docs/guide.md#setup) ![cat](../img/cat.png) [up](../../../../etc/passwd) "
                  "[abs](/other/page) [anchor](#x)",
                  link_base="/alice/m/blob/main", raw_base="/alice/m/raw/main", base_dir="notes")
    assert 'href="/alice/m/blob/main/notes/docs/guide.md#setup"' in html
    assert 'src="/alice/m/raw/main/img/cat.png"' in html
    assert "etc/passwd" not in html  # a link that climbs out of the repository is dropped
    assert 'href="/other/page"' in html and 'href="#x"' in html


def test_front_matter_is_not_rendered_and_long_text_is_cut():
    assert strip_front_matter("---\nlicense: mit\n---\n# Hi\n") == "# Hi\n"
    assert strip_front_matter("# no front matter\n---\n") == "# no front matter\n---\n"
    html, cut = render_markdown("a" * (MAX_MARKDOWN + 10))
    assert cut and html.count("a") <= MAX_MARKDOWN + 10


def test_sanitise_alone_refuses_unknown_schemes_and_keeps_text():
    assert sanitise('<a href="file:///etc/passwd">f</a>') == '<a rel="noopener noreferrer nofollow">f</a>'
    assert sanitise("<b>&lt;b&gt;</b>") == "<b>&lt;b&gt;</b>"
